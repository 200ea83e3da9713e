"""Start and stop a real, throwaway PostgreSQL server on loopback.

Used by the distributed tests and bench/workers.py: the state store at scale is
PostgreSQL, so it is tested on the real thing (Debian's ``postgresql`` package), never on
SQLite pretending. The facts this module hides:

* ``initdb`` and ``postgres`` refuse to run as root, so when we are root both run as the
  package's ``postgres`` system user (``Popen(user=...)``: the PID we hold is the
  postmaster itself, so we stop exactly what we started);
* the data directory lives in a temp dir owned by that user; the Unix socket goes there
  too (not /var/run/postgresql, which may not exist when the service was never started);
* durability is switched off (``fsync``, ``full_page_writes``, ``synchronous_commit``):
  a test server measures mxshift, not the virtual disk.

``start_postgres`` returns once a client connects; ``new_database`` gives each test its
own empty database (a SQLAlchemy URL) on the one server.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from mxshift.testbed.dovecot import free_port
from mxshift.testbed.knot import stop_process

__all__ = ["PostgresServer", "PostgresStartError", "postgres_bin", "start_postgres"]

SUPERUSER = "mxshift"
START_TIMEOUT = 30.0


class PostgresStartError(RuntimeError):
    """The server could not be initialised or did not come up (log tail attached)."""


def postgres_bin() -> Path | None:
    """Directory holding ``initdb`` and ``postgres`` (Debian hides them), or None."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(Path(p).parent.parent.name))
    return Path(versions[-1]).parent if versions else None


@dataclass(eq=False)
class PostgresServer:
    base_dir: Path
    host: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    _databases: list[str] = field(default_factory=list)

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def new_database(self, name: str) -> str:
        """Create an empty database ``name`` (dropped first if it exists); its URL."""
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=SUPERUSER,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        self._databases.append(name)
        return self.url(name)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM (PostgreSQL's "smart" shutdown waits for clients: we use SIGINT, the
        "fast" one that disconnects them), then SIGKILL if needed. Safe twice."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.send_signal(2)  # SIGINT = fast shutdown
            proc.wait(10)
        except subprocess.TimeoutExpired:
            stop_process(proc)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _run_as() -> dict[str, object]:
    """Popen arguments to drop root for the ``postgres`` user (no-op when not root)."""
    if os.geteuid() != 0:
        return {}
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresStartError("no `postgres` system user: run scripts/install-system-deps")
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def _chown(path: Path, as_user: dict[str, object]) -> None:
    if as_user:
        os.chown(path, int(as_user["user"]), int(as_user["group"]))  # type: ignore[arg-type]


def start_postgres(base_dir: Path, *, host: str = "127.0.0.1",
                   port: int | None = None) -> PostgresServer:
    """initdb into ``base_dir/data`` and start ``postgres`` on ``host:port``."""
    bindir = postgres_bin()
    if bindir is None:
        raise PostgresStartError("PostgreSQL not found: run scripts/install-system-deps")
    base_dir = Path(base_dir).absolute()
    base_dir.mkdir(parents=True, exist_ok=True)
    as_user = _run_as()
    # the postgres user must reach its data dir through every parent (tmp dirs are 0700)
    for parent in [base_dir, *base_dir.parents]:
        if parent == Path("/"):
            break
        if as_user and parent.stat().st_uid == 0:
            os.chmod(parent, parent.stat().st_mode | 0o001)
    _chown(base_dir, as_user)
    data = base_dir / "data"
    log = base_dir / "postgres.log"
    log.touch()
    _chown(log, as_user)
    if not (data / "PG_VERSION").exists():
        done = subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER,
                               "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              cwd=base_dir, check=False, **as_user)  # type: ignore[call-overload]
        if done.returncode != 0:
            raise PostgresStartError(f"initdb failed: {done.stderr.strip()[-2000:]}")
    port = port or free_port(host)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [str(bindir / "postgres"), "-D", str(data), "-h", host, "-p", str(port),
             "-k", str(data), "-c", "fsync=off", "-c", "full_page_writes=off",
             "-c", "synchronous_commit=off", "-c", "max_connections=200",
             "-c", "shared_buffers=32MB"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=base_dir,
            **as_user)  # type: ignore[call-overload]
    server = PostgresServer(base_dir, host, port, proc)
    _wait_ready(server)
    return server


def _wait_ready(server: PostgresServer) -> None:
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        assert server.proc is not None
        if server.proc.poll() is not None:
            raise PostgresStartError(f"postgres exited with {server.proc.returncode}:\n"
                                     f"{server.log_tail()}")
        try:
            with psycopg.connect(host=server.host, port=server.port, user=SUPERUSER,
                                 dbname="postgres", connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                server.stop()
                raise PostgresStartError(f"postgres not answering on {server.host}:"
                                         f"{server.port}:\n{server.log_tail()}")
            time.sleep(0.05)
