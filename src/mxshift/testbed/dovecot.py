"""Start and stop real, throwaway Dovecot IMAP servers on loopback.

Used by the pytest fixtures, the README demo and the benchmarks: every test talks to a
real server, so this module hides the handful of facts needed to run one unprivileged
instance per directory (see ``/work/shared/notes/dovecot-testbed.md``):

* one standalone config file per instance, started as ``dovecot -c FILE`` with its
  standard streams redirected to the log (otherwise the daemon keeps the caller's pipes);
* mail processes run as the system user ``vmail`` (Dovecot refuses root), so the homes
  and the directories above them must be traversable by that user;
* passwords live in plain ``passwd-file`` databases, one file per user: Dovecot re-reads
  a changed passwd-file at most once a second, but a new per-user file at once, so
  users added while the server runs can log in immediately.

Layout of ``base_dir``::

    dovecot.conf  dovecot.log  users/<user>  master-users  ca.pem server.pem server.key
    home/<user>/Maildir        run/ (Dovecot's own base_dir)  state/

``start_dovecot`` returns only once the server greets *and* a probe user can log in.

What an instance is told (:class:`DovecotConfig`, the standard variants, and the files it
reads: ``dovecot.conf``, the passwd-files, the TLS certificates) is written by
:mod:`mxshift.testbed.dovecot_config`; this module runs instances: start, wait until
ready, users, clients, introspection, stop.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from imapclient import IMAPClient

from mxshift.testbed.dovecot_config import (
    VARIANTS,
    DovecotConfig,
    DovecotStartError,
    check_passwd_field,
    check_user_name,
    make_certs,
    read_users,
    render_config,
    write_passwd,
)

__all__ = [
    "DovecotServer",
    "DovecotStartError",
    "start_dovecot",
    "free_port",
    "ensure_mail_user",
    "stop_servers",
    "ServerPool",
]

MAIL_USER = "vmail"
PROBE_USER = "mxshift-probe"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
# Unix socket paths are limited to 107 bytes; Dovecot's longest socket name is ~26.
_MAX_RUN_DIR_LEN = 70


@dataclass(eq=False)
class DovecotServer:
    """A running Dovecot instance. ``stop()`` it (it is idempotent)."""

    name: str
    host: str
    port: int
    base_dir: Path
    config: DovecotConfig
    ca_file: Path | None = None
    master_user: tuple[str, str] | None = None
    pid: int | None = field(default=None, repr=False)
    _run_dir_tmp: Path | None = field(default=None, repr=False)
    _users: dict[str, str] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _counter: itertools.count = field(default_factory=lambda: itertools.count(1), repr=False)

    # -- paths ------------------------------------------------------------------------
    @property
    def conf_file(self) -> Path:
        return self.base_dir / "dovecot.conf"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "dovecot.log"

    @property
    def users_dir(self) -> Path:
        """One passwd-file per user (``users/<name>``): Dovecot re-reads a changed
        passwd-file at most once per second, but opens a new per-user file at once."""
        return self.base_dir / "users"

    def home(self, user: str) -> Path:
        return self.base_dir / "home" / user

    def maildir(self, user: str) -> Path:
        return self.home(user) / "Maildir"

    # -- users ------------------------------------------------------------------------
    def add_user(self, user: str, password: str) -> None:
        """Add a user; it can log in immediately."""
        check_user_name(user)
        check_passwd_field(password)
        with self._lock:
            if user in self._users:
                raise ValueError(f"user {user!r} already exists on {self.name}")
            write_passwd(self.users_dir / user, user, password)
            self._users[user] = password

    def new_user(self, prefix: str = "u") -> tuple[str, str]:
        """Create a fresh, unique user and return ``(user, password)``."""
        with self._lock:
            while True:
                user = f"{prefix}{next(self._counter)}"
                if user not in self._users:
                    break
        password = secrets.token_urlsafe(12)
        self.add_user(user, password)
        return user, password

    def password(self, user: str) -> str:
        return self._users[user]

    # -- clients ----------------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's throwaway CA."""
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)

    def client(self, *, ssl_context: ssl.SSLContext | None = None,
               timeout: float = 30.0) -> IMAPClient:
        """A connected, not yet authenticated client (TLS or STARTTLS done as configured)."""
        tls = self.config.tls
        if tls is not None and ssl_context is None:
            ssl_context = self.ssl_context()
        client = IMAPClient(self.host, port=self.port, ssl=(tls == "tls"),
                            ssl_context=ssl_context, timeout=timeout)
        if tls == "starttls":
            try:
                client.starttls(ssl_context)
            except BaseException:
                _close_quietly(client)
                raise
        return client

    def connect(self, user: str, password: str | None = None, **kwargs) -> IMAPClient:
        """A logged-in client; ``password`` defaults to the one this object created."""
        if password is None:
            password = self._users[user]
        client = self.client(**kwargs)
        try:
            client.login(user, password)
        except BaseException:
            _close_quietly(client)
            raise
        return client

    # -- introspection ------------------------------------------------------------------
    def doveadm(self, *args: str) -> str:
        """Run ``doveadm -c CONF ARGS`` and return its stdout."""
        proc = subprocess.run(["doveadm", "-c", str(self.conf_file), *args],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=30, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed ({proc.returncode}): "
                               f"{proc.stderr.strip()}")
        return proc.stdout

    def connection_count(self, user: str | None = None) -> int:
        """Logged-in IMAP connections right now (all users, or one), from ``doveadm who``."""
        count = 0
        for line in self.doveadm("who", "-1").splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 2 and fields[1] == "imap" and (user is None or fields[0] == user):
                count += 1
        return count

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self.pid is not None and _alive(self.pid)

    # -- lifecycle --------------------------------------------------------------------
    def stop(self) -> None:
        """SIGTERM the master process and wait until it is gone. Safe to call twice.

        Takes about a second: Dovecot's master waits for its log process."""
        stop_servers(self)

    def _signal_stop(self) -> int | None:
        pid, self.pid = self.pid, None
        _RUNNING.pop(id(self), None)
        if pid is None or not _alive(pid) or not _is_dovecot(pid):
            return None
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return None
        return pid

    def _cleanup(self) -> None:
        if self._run_dir_tmp is not None:
            shutil.rmtree(self._run_dir_tmp, ignore_errors=True)
            self._run_dir_tmp = None

    def __enter__(self) -> DovecotServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------
_RUNNING: dict[int, DovecotServer] = {}  # started by this process and not yet stopped


def stop_servers(*servers: DovecotServer) -> None:
    """Stop several servers at once (SIGTERM all, then wait): ~1 s in total, not each."""
    pids = [(server, server._signal_stop()) for server in servers]
    deadline = time.monotonic() + STOP_TIMEOUT
    for server, pid in pids:
        if pid is not None:
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        server._cleanup()


@atexit.register
def _stop_leftovers() -> None:
    # safety net for scripts that forget stop(); pytest fixtures stop explicitly
    stop_servers(*list(_RUNNING.values()))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ensure_mail_user() -> tuple[int, int]:
    """uid/gid that mail processes run as: system user ``vmail`` (created if root)."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    try:
        pw = pwd.getpwnam(MAIL_USER)
    except KeyError:
        subprocess.run(["useradd", "-r", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin",
                        MAIL_USER], stdin=subprocess.DEVNULL, capture_output=True, check=False)
        pw = pwd.getpwnam(MAIL_USER)  # KeyError here means useradd really failed
    return pw.pw_uid, pw.pw_gid


def start_dovecot(base_dir: Path, *, name: str, port: int | None = None,
                  config: DovecotConfig = DovecotConfig(),
                  host: str = "127.0.0.1") -> DovecotServer:
    """Write a config under ``base_dir``, start Dovecot, wait until a login works.

    Starting again on the same ``base_dir`` (and ``port``) after ``stop()`` keeps the
    mail and the users (their passwords are read back), e.g. to simulate an outage."""
    if shutil.which("dovecot") is None:
        raise DovecotStartError("dovecot not found: run scripts/install-system-deps")
    for attempt in range(3):
        try:
            return _start(Path(base_dir).absolute(), name=name, port=port or free_port(host),
                          config=config, host=host)
        except DovecotStartError as exc:
            # a free_port() pick can be taken by someone else before Dovecot binds it
            if port is not None or attempt == 2 or "Address already in use" not in str(exc):
                raise
    raise AssertionError("unreachable")


def _start(base_dir: Path, *, name: str, port: int, config: DovecotConfig,
           host: str) -> DovecotServer:
    base_dir.mkdir(parents=True, exist_ok=True)
    uid, gid = ensure_mail_user()
    root = os.geteuid() == 0

    # Dovecot's runtime dir holds unix sockets: keep its path short.
    run_dir_tmp = None
    run_dir = base_dir / "run"
    if len(str(run_dir)) > _MAX_RUN_DIR_LEN:
        run_dir = run_dir_tmp = Path(tempfile.mkdtemp(prefix=f"mxdc-{name[:8]}-"))
    state_dir = base_dir / "state"
    home_dir = base_dir / "home"
    for d in (state_dir, home_dir):
        d.mkdir(exist_ok=True)
    if root:
        os.chown(home_dir, uid, gid)
        _grant_traverse(base_dir)
    os.chmod(home_dir, 0o700)

    server = DovecotServer(name=name, host=host, port=port, base_dir=base_dir, config=config,
                           _run_dir_tmp=run_dir_tmp)
    server.users_dir.mkdir(exist_ok=True)
    os.chmod(server.users_dir, 0o750)
    if root:
        shutil.chown(server.users_dir, group="dovecot")
    server._users.update(read_users(server.users_dir))  # a restart keeps its users
    server._users.pop(PROBE_USER, None)
    master_file = base_dir / "master-users"
    if config.master_users:
        server.master_user = ("mxadmin", secrets.token_urlsafe(12))
        write_passwd(master_file, *server.master_user)
    if config.tls:
        server.ca_file = make_certs(base_dir, host)

    server.conf_file.write_text(render_config(server, run_dir=run_dir, state_dir=state_dir,
                                              master_file=master_file, uid=uid, gid=gid))
    os.chmod(server.conf_file, 0o600)
    probe_password = secrets.token_urlsafe(12)
    server.add_user(PROBE_USER, probe_password)

    with open(server.log_file, "ab") as log:
        proc = subprocess.run(["dovecot", "-c", str(server.conf_file)],
                              stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=False)
    if proc.returncode != 0:
        server.stop()
        raise DovecotStartError(f"dovecot {name} exited with {proc.returncode}:\n"
                                f"{server.log_tail()}")
    try:
        server.pid = _read_pid(run_dir / "master.pid")
        _RUNNING[id(server)] = server
        _wait_ready(server, PROBE_USER, probe_password)
    except BaseException as exc:
        server.stop()
        if isinstance(exc, DovecotStartError):
            raise
        raise DovecotStartError(f"dovecot {name} on {host}:{port} did not become ready: "
                                f"{exc!r}\n{server.log_tail()}") from exc
    return server


class ServerPool:
    """Starts each named variant on first use, under ``base_dir/<name>``; ``stop_all()``."""

    def __init__(self, base_dir: Path, variants: dict[str, DovecotConfig] = VARIANTS) -> None:
        self.base_dir = Path(base_dir)
        self.variants = variants
        self._servers: dict[str, DovecotServer] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> DovecotServer:
        with self._lock:
            server = self._servers.get(name)
            if server is None:
                server = start_dovecot(self.base_dir / name, name=name,
                                       config=self.variants[name])
                self._servers[name] = server
            return server

    def stop_all(self) -> None:
        with self._lock:
            stop_servers(*self._servers.values())
            self._servers.clear()


def _wait_ready(server: DovecotServer, user: str, password: str) -> None:
    """Until the server greets and ``user`` can log in (and the master is alive)."""
    deadline = time.monotonic() + START_TIMEOUT
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if not server.running:
            raise DovecotStartError(f"dovecot {server.name} died during start:\n"
                                    f"{server.log_tail()}")
        try:
            client = server.connect(user, password, timeout=5)
        except (OSError, ssl.SSLError) as exc:  # not listening yet / greeting not sent
            last = exc
            time.sleep(0.02)
            continue
        # any other error (bad login, TLS verification) is a real failure: let it out
        try:
            client.noop()
        finally:
            client.logout()
        return
    raise DovecotStartError(f"dovecot {server.name} not ready after {START_TIMEOUT}s "
                            f"({last!r}):\n{server.log_tail()}")


def _close_quietly(client: IMAPClient) -> None:
    # after a failed STARTTLS handshake the socket is already gone (EBADF)
    try:
        client.shutdown()
    except OSError:
        pass


def _read_pid(path: Path) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            text = path.read_text().strip()
            if text:
                return int(text)
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise DovecotStartError(f"{path} never appeared")
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie (our PID 1 may not reap daemons)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _is_dovecot(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == "dovecot"
    except OSError:
        return True  # no /proc: trust the pid we recorded ourselves


def _grant_traverse(path: Path) -> None:
    """Let ``vmail`` and ``dovecot`` reach ``path``: add o+x (search only, no listing)
    on it and on each ancestor we own that lacks it (e.g. pytest's 0700 temp dirs)."""
    for d in [path, *path.parents]:
        st = d.stat()
        if st.st_mode & stat.S_IXOTH:
            continue
        if st.st_uid != os.geteuid():
            raise DovecotStartError(f"{d} is not traversable by the mail user; "
                                    "choose a base_dir elsewhere")
        os.chmod(d, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
