"""A fleet of real ``mxshift worker`` processes, for tests and bench/workers.py.

Why subprocesses and not in-process Celery workers: what is tested is what an admin runs
(the CLI, Celery's prefork pool, a real broker), and a worker must be killable with
SIGKILL like a machine that dies. Each worker starts in a session of its own, so killing
its process group takes its pool children with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["WorkerFleet", "WorkerStartError"]

START_TIMEOUT = 60.0


class WorkerStartError(RuntimeError):
    """A worker exited or did not report ready (log tail attached)."""


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class WorkerFleet:
    directory: Path          # the project (mxshift -C)
    env: dict[str, str]      # MXSHIFT_* for the workers (database, broker, ...)
    log_dir: Path
    workers: list[Worker] = field(default_factory=list)

    def start(self, n: int, *, concurrency: int = 1, pool: str = "prefork") -> list[Worker]:
        """Start ``n`` workers and wait until each says it is ready."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        new = []
        for _ in range(n):
            log = self.log_dir / f"worker-{len(self.workers)}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "mxshift", "-C", str(self.directory), "worker",
                     "--concurrency", str(concurrency), "--pool", pool,
                     "--name", f"w{len(self.workers)}-{os.getpid()}@%h"],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    env=env, start_new_session=True)
            w = Worker(proc, log)
            self.workers.append(w)
            new.append(w)
        deadline = time.monotonic() + START_TIMEOUT
        for w in new:
            while " ready." not in w.log_text():
                if w.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop_all()
                    raise WorkerStartError(f"worker did not start:\n{w.log_text()[-3000:]}")
                time.sleep(0.05)
        return new

    def alive(self) -> list[Worker]:
        return [w for w in self.workers if w.proc.poll() is None]

    def worker_of(self, pid: int) -> Worker | None:
        """The worker whose process group holds ``pid`` (a pool child or the worker)."""
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            return None
        for w in self.alive():
            if w.proc.pid == pgid:
                return w
        return None

    def kill(self, w: Worker) -> None:
        """SIGKILL the worker and its pool children at once: a machine that died."""
        try:
            os.killpg(w.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        w.proc.wait(10)

    def stop_all(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL what is left. Safe twice."""
        for w in self.alive():
            try:
                os.killpg(w.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        for w in self.workers:
            try:
                w.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill(w)
        for w in self.workers:  # pool children outliving their parent
            try:
                os.killpg(w.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def __enter__(self) -> WorkerFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
