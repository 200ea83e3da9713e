"""The Celery application: two tasks, a pass of one mailbox and a part of a split pass.

Why these settings: a task is an idempotent unit (the journal and the lease make a pass
resumable and exclusive), so a task is acknowledged only after it finished
(``acks_late``), handed back when its worker process dies (``reject_on_worker_lost``),
and each worker process reserves one task at a time (prefetch 1) so a slow mailbox never
holds others hostage. A worker *machine* that dies acknowledges nothing: the lease
watcher (runners/requeue.py, in every worker's main process) sees its pass's lease die
and puts its task back on the queue within seconds; it also keeps a live pass's task
from being redelivered, however long it runs. ``MXSHIFT_VISIBILITY_TIMEOUT`` is only the
safety net. A task delivered twice anyway waits for the first one's lease and then runs
a pass that finds nothing left to do.

A pass with much to copy (``[distributed] split_mailbox_above``) is split: the mailbox
task (the plan) enqueues one ``mxshift.part`` task per group of folder pairs and returns
their ids, which the runner waits for too (engine/folder_tasks.py).

The worker opens the project (its ``-C`` directory: mxshift.toml, the secret key) once
per process, on first use, and installs the Redis connection limiter and rate limits there.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from mxshift.engine import lease
from mxshift.engine.pass_result import PassResult
from mxshift.errors import MxshiftError
from mxshift.project import OpenProject, open_project
from mxshift.runners import worker_passes
from mxshift.runners.requeue import LeaseWatcher, kombu_restore
from mxshift.runners.redis_limits import use_shared_limiter
from mxshift.runners.redis_rates import use_shared_rates
from mxshift.runners.settings import RunnerSettings, runner_settings
from mxshift.state.db import StateDB

TASK = "mxshift.pass"
PART_TASK = "mxshift.part"
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
            if _watcher is not None and _watcher_pid != os.getpid():
                # a pool process forked from the main one: its copy of the watcher's
                # connections must not be used or closed here (SQLAlchemy's fork rule)
                _watcher_db.engine.dispose(close=False)  # type: ignore[union-attr]
            directory = Path(os.environ.get("MXSHIFT_WORKER_PROJECT", "."))
            _proj = open_project(directory)
            _proj_pid = os.getpid()
            use_shared_limiter(runner_settings())
            use_shared_rates(runner_settings())
        return _proj


def _send_parts(mailbox_id: int, allow_mass_delete: bool
                ) -> Callable[[int, str, list[frozenset[int]]], list[str]]:
    def send(plan_id: int, kind: str, groups: list[frozenset[int]]) -> list[str]:
        return [app.send_task(PART_TASK, args=[mailbox_id, kind, allow_mass_delete, plan_id,
                                               sorted(g)],
                              queue=app.conf.task_default_queue).id for g in groups]
    return send


def _leased(mailbox_id: int, kind: str | None, folders: frozenset[int] | None,
            run: Callable[[OpenProject], tuple[PassResult | None, list[str]]]
            ) -> dict[str, Any]:
    """Run a pass once nobody else holds its lease; the task's return value."""
    try:
        proj = _project()
        while True:
            while lease.held_elsewhere(proj.db, mailbox_id, folders):
                time.sleep(LEASE_POLL)  # a redelivery while the first delivery runs
            r, parts = run(proj)
            if r is None:
                return {"mailbox_id": mailbox_id, "mailbox": str(mailbox_id),
                        "kind": kind or "", "status": "failed",
                        "error": "no such mailbox in this worker's project"}
            if r.status == "failed" and (r.error or "").startswith(lease.BUSY):
                continue  # lost the race for the lease: wait for that pass, then run
            out = {"mailbox_id": mailbox_id, **dataclasses.asdict(r)}
            if parts:
                out["parts"] = parts
            return out
    except MxshiftError as exc:
        return {"mailbox_id": mailbox_id, "mailbox": str(mailbox_id), "kind": kind or "",
                "status": "failed", "error": str(exc)}


@app.task(name=TASK, acks_late=True, reject_on_worker_lost=True)
def run_pass(mailbox_id: int, kind: str | None = None,
             allow_mass_delete: bool = False) -> dict[str, Any]:
    """One pass of one mailbox; returns the PassResult as a dict (plus ``mailbox_id``, and
    ``parts``: the part tasks' ids when the pass was split)."""
    def run(proj: OpenProject) -> tuple[PassResult | None, list[str]]:
        outcome = worker_passes.run_mailbox(
            proj, mailbox_id, kind, allow_mass_delete=allow_mass_delete,
            send_parts=_send_parts(mailbox_id, allow_mass_delete))
        return outcome.result, outcome.parts
    return _leased(mailbox_id, kind, None, run)


@app.task(name=PART_TASK, acks_late=True, reject_on_worker_lost=True)
def run_part(mailbox_id: int, kind: str, allow_mass_delete: bool, plan_id: int,
             folders: list[int]) -> dict[str, Any]:
    """One part of the split pass ``plan_id``: the folder pairs ``folders``."""
    mine = frozenset(folders)

    def run(proj: OpenProject) -> tuple[PassResult | None, list[str]]:
        return worker_passes.run_part(proj, mailbox_id, kind, plan_id, mine,
                                      allow_mass_delete=allow_mass_delete), []
    return _leased(mailbox_id, kind, mine, run)


_watcher: LeaseWatcher | None = None
_watcher_db: StateDB | None = None
_watcher_pid: int | None = None


@worker_ready.connect
def _start_lease_watcher(sender: Any = None, **_: Any) -> None:
    """In the worker's main process (the one that takes tasks from the broker)."""
    global _watcher, _watcher_db, _watcher_pid
    settings = runner_settings()
    broker = settings.worker_broker()
    if settings.lease_check <= 0 or not broker.startswith(("redis://", "rediss://")):
        return
    _watcher_db = db = open_project(Path(os.environ.get("MXSHIFT_WORKER_PROJECT", "."))).db
    _watcher_pid = os.getpid()
    _watcher = LeaseWatcher(
        redis_url=broker, queue=settings.queue, interval=settings.lease_check,
        holder=lambda t: lease.holder(db, t.mailbox_id, t.folders),
        restore=kombu_restore(app))
    _watcher.start()


@worker_shutdown.connect
def _stop_lease_watcher(sender: Any = None, **_: Any) -> None:
    if _watcher is not None:
        _watcher.stop.set()
