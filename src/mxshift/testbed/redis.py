"""Start and stop a real, throwaway redis-server on loopback.

Redis is the Celery broker and the shared connection limiter at scale; tests and
bench/workers.py run the real server (Debian's ``redis-server``). Persistence is off
(``--save ""``, no AOF): a test broker holds nothing worth keeping.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from mxshift.testbed.dovecot import free_port
from mxshift.testbed.knot import stop_process

__all__ = ["RedisServer", "RedisStartError", "start_redis"]

START_TIMEOUT = 15.0


class RedisStartError(RuntimeError):
    """redis-server is missing or did not answer PING (log tail attached)."""


@dataclass(eq=False)
class RedisServer:
    base_dir: Path
    host: str
    port: int
    proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "redis.log"

    def flush(self) -> None:
        """Empty every database: each test starts with no queued task and no lease."""
        assert _command(self.host, self.port, b"FLUSHALL") == b"+OK"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _command(host: str, port: int, command: bytes) -> bytes:
    """One inline command, its first reply line (enough for PING and FLUSHALL)."""
    with socket.create_connection((host, port), timeout=2) as s:
        s.sendall(command + b"\r\n")
        return s.recv(256).split(b"\r\n", 1)[0]


def start_redis(base_dir: Path, *, host: str = "127.0.0.1",
                port: int | None = None) -> RedisServer:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RedisStartError("redis-server not found: run scripts/install-system-deps")
    base_dir = Path(base_dir).absolute()
    base_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    log = base_dir / "redis.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [exe, "--bind", host, "--port", str(port), "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(base_dir), "--protected-mode", "no"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    server = RedisServer(base_dir, host, port, proc)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RedisStartError(f"redis-server exited with {proc.returncode}:\n"
                                  f"{server.log_tail()}")
        try:
            if _command(host, port, b"PING") == b"+PONG":
                return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RedisStartError(f"redis-server not answering on {host}:{port}:\n"
                                  f"{server.log_tail()}")
        time.sleep(0.02)
