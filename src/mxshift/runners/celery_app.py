"""The Celery application: one task, a pass of one mailbox.

Why these settings: a task is an idempotent unit (the journal and the lease make a pass
resumable and exclusive), so a task is acknowledged only after it finished
(``acks_late``), handed back when its worker process dies (``reject_on_worker_lost``),
and each worker process reserves one task at a time (prefetch 1) so a slow mailbox never
holds others hostage. A worker *machine* that dies acknowledges nothing: Redis hands its
task to another worker after ``MXSHIFT_VISIBILITY_TIMEOUT`` seconds. A task delivered
twice while its first delivery still runs (a pass longer than that timeout) waits for
the first one's lease and then runs a pass that finds nothing left to do.

The worker opens the project (its ``-C`` directory: mxshift.toml, the secret key) once
per process, on first use, and installs the Redis connection limiter and rate limits there.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path
from typing import Any

from celery import Celery

from mxshift.engine import lease
from mxshift.errors import MxshiftError
from mxshift.project import OpenProject, open_project
from mxshift.runners.redis_limits import use_shared_limiter
from mxshift.runners.redis_rates import use_shared_rates
from mxshift.runners.settings import RunnerSettings, runner_settings

TASK = "mxshift.pass"
#: Seconds between looks at a lease held by another delivery of the same task.
LEASE_POLL = 1.0

app = Celery("mxshift")

_proj: OpenProject | None = None
_proj_pid: int | None = None
_proj_lock = threading.Lock()


def configure(settings: RunnerSettings, *, for_worker: bool = False) -> Celery:
    broker = settings.worker_broker() if for_worker else settings.broker_url
    app.conf.update(
        broker_url=broker,
        result_backend=settings.result_backend or broker,
        task_default_queue=settings.queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        task_serializer="json", result_serializer="json", accept_content=["json"],
        result_expires=7 * 24 * 3600,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            # look for tasks of dead workers every second, not every ~100 s
            "unacked_restore_interval": 1, "unacked_restore_throttle": 1,
        },
        result_backend_transport_options={"visibility_timeout": settings.visibility_timeout},
    )
    return app


def set_project_directory(directory: Path) -> None:
    """The worker's project (``mxshift -C DIR worker``), opened lazily per process."""
    os.environ["MXSHIFT_WORKER_PROJECT"] = str(Path(directory).absolute())


def _project() -> OpenProject:
    """This process's open project; reopened after a fork (a prefork child must not
    share its parent's database connections)."""
    global _proj, _proj_pid
    with _proj_lock:
        if _proj is None or _proj_pid != os.getpid():
            directory = Path(os.environ.get("MXSHIFT_WORKER_PROJECT", "."))
            _proj = open_project(directory)
            _proj_pid = os.getpid()
            use_shared_limiter(runner_settings())
            use_shared_rates(runner_settings())
        return _proj


@app.task(name=TASK, acks_late=True, reject_on_worker_lost=True)
def run_pass(mailbox_id: int, kind: str | None = None,
             allow_mass_delete: bool = False) -> dict[str, Any]:
    """One pass of one mailbox; returns the PassResult as a dict (plus ``mailbox_id``)."""
    from mxshift import sync as sync_mod

    try:
        proj = _project()
        while True:
            while lease.held_elsewhere(proj.db, mailbox_id):
                time.sleep(LEASE_POLL)  # a redelivery while the first delivery runs
            results = sync_mod.sync(proj, mailbox_ids=[mailbox_id], kind=kind,
                                    allow_mass_delete=allow_mass_delete)
            if not results:
                return {"mailbox_id": mailbox_id, "mailbox": str(mailbox_id),
                        "kind": kind or "", "status": "failed",
                        "error": "no such mailbox in this worker's project"}
            r = results[0]
            if r.status == "failed" and (r.error or "").startswith(lease.BUSY):
                continue  # lost the race for the lease: wait for that pass, then run
            return {"mailbox_id": mailbox_id, **dataclasses.asdict(r)}
    except MxshiftError as exc:
        return {"mailbox_id": mailbox_id, "mailbox": str(mailbox_id), "kind": kind or "",
                "status": "failed", "error": str(exc)}
