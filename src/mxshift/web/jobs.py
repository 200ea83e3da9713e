"""Long actions started from the dashboard, run in background threads.

Why threads in the server process: a pass, a verification or a DNS check takes seconds to
hours; the request that starts one must return at once. The library functions already do
their own locking (a pass holds its mailbox's lease in the ``pass`` table; every write is a
short ``BEGIN IMMEDIATE`` transaction), so running them here is the same as running the
CLI beside the dashboard. Jobs are remembered in memory only (the last 50), for the
"recent actions" list; what they did is in the state database like any pass.
"""

from __future__ import annotations

import itertools
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from mxshift.errors import MxshiftError

_KEEP = 50


@dataclass
class Job:
    id: int
    kind: str                  # sync|verify|dns-check|cutover
    label: str
    actor: str
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    finished_at: datetime | None = None
    status: str = "running"    # running|ok|failed
    message: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "label": self.label, "actor": self.actor,
                "started_at": self.started_at.isoformat(),
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
                "status": self.status, "message": self.message}


class Jobs:
    """Runs callables in the background; each returns ``(ok, message)``."""

    def __init__(self, workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mxshift-web")
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, kind: str, label: str, actor: str,
              work: Callable[[], tuple[bool, str]]) -> Job:
        job = Job(next(self._ids), kind, label, actor)
        with self._lock:
            self._jobs[job.id] = job
            for old in sorted(self._jobs)[:-_KEEP]:
                del self._jobs[old]
        self._pool.submit(self._run, job, work)
        return job

    def _run(self, job: Job, work: Callable[[], tuple[bool, str]]) -> None:
        try:
            ok, message = work()
            job.status, job.message = ("ok" if ok else "failed"), message
        except MxshiftError as exc:  # a refusal or a domain error: one line, no traceback
            job.status, job.message = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the worker silently
            job.status, job.message = "failed", f"internal error: {exc!r}"
            traceback.print_exc()
        job.finished_at = datetime.now(timezone.utc)

    def get(self, job_id: int) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def recent(self, n: int = 10) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.id, reverse=True)[:n]

    def running(self, kind: str) -> bool:
        with self._lock:
            return any(j.kind == kind and j.status == "running" for j in self._jobs.values())

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
