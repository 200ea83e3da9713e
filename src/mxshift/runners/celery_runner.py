"""The Celery runner: one task per mailbox, then wait and collect the results.

Why one task per mailbox: a mailbox pass is the unit the journal and the lease make
idempotent, so it is the unit a queue may deliver twice. A mailbox task whose pass was
split (engine/folder_tasks.py) returns the ids of its part tasks; the runner waits for
those too and merges them into the mailbox's one PassResult. The results come back in
the shape the local runner returns (PassResult), so callers print them the same way.
Interrupting the caller (Ctrl-C) leaves the queued passes to the workers.
"""

from __future__ import annotations

import dataclasses
import time

from typing import Callable

from celery import Celery
from celery.result import AsyncResult, ResultSet

from mxshift.completion import ensure_not_complete
from mxshift.engine.folder_tasks import COUNTERS, roll_up
from mxshift.engine.pass_result import NoProgress, PassResult, Progress
from mxshift.errors import MxshiftError
from mxshift.project import OpenProject
from mxshift.runners.celery_app import TASK, configure
from mxshift.runners.settings import RunnerSettings

_FIELDS = {f.name for f in dataclasses.fields(PassResult)}
POLL = 0.2
PING_TIMEOUT = 3.0


def result_from_task(value: object, label: str, kind: str | None) -> PassResult:
    """A task's return value (or its exception) as a PassResult (pure)."""
    if isinstance(value, BaseException):
        return PassResult(mailbox=label, kind=kind or "", status="failed",
                          error=f"worker error: {type(value).__name__}: {value}")
    if not isinstance(value, dict):
        return PassResult(mailbox=label, kind=kind or "", status="failed",
                          error=f"worker returned {type(value).__name__}")
    data = {k: v for k, v in value.items() if k in _FIELDS}
    data["mailbox"] = label
    data.setdefault("kind", kind or "")
    return PassResult(**data)


def merge_parts(plan: PassResult, parts: list[PassResult]) -> PassResult:
    """The logical pass of a split mailbox (pure): the plan's result plus its parts'."""
    out = dataclasses.replace(plan, notes=list(plan.notes))
    for part in parts:
        for name in COUNTERS:
            setattr(out, name, getattr(out, name) + getattr(part, name))
        out.notes.extend(part.notes)
        out.seconds = max(out.seconds, part.seconds)
        out.error = out.error or part.error
    out.status = roll_up([p.status for p in parts], plan.errors)
    return out


def run_celery(proj: OpenProject, mailbox_ids: list[int] | None, kind: str | None,
               settings: RunnerSettings, *, allow_mass_delete: bool = False,
               progress: Progress | None = None) -> list[PassResult]:
    ensure_not_complete(proj)  # refuse here, not once per worker
    progress = progress or NoProgress()
    mailboxes = proj.mailboxes()
    if mailbox_ids is not None:
        wanted = set(mailbox_ids)
        mailboxes = [m for m in mailboxes if m.id in wanted]
    app = configure(settings)
    try:
        # a queue nobody reads would make the caller wait forever: say so instead
        if not app.control.ping(timeout=PING_TIMEOUT, limit=1):
            raise MxshiftError(f"no mxshift worker answers on the broker (queue "
                               f"{settings.queue}): start `mxshift worker` on a worker machine")
        pending = {}
        for m in mailboxes:
            ar = app.send_task(TASK, args=[m.id, kind, allow_mass_delete],
                               queue=settings.queue)
            pending[m.id] = (m.source_user, ar)
    except MxshiftError:
        raise
    except Exception as exc:  # noqa: BLE001 - kombu raises many kinds for "no broker"
        raise MxshiftError(f"cannot enqueue passes on the broker: {exc}") from None
    done: dict[int, PassResult] = {}
    by_task = {ar.id: mb_id for mb_id, (_, ar) in pending.items()}
    plans: dict[int, PassResult] = {}                # split mailboxes: the plan's result
    parts: dict[int, dict[str, PassResult | None]] = {}  # ... and its parts' (by task id)
    handles = {ar.id: ar for _, ar in pending.values()}
    later: list[AsyncResult] = []

    def collect(task_id: str, value: object) -> None:
        mb_id = by_task[task_id]
        label = pending[mb_id][0]
        handles.pop(task_id).forget()
        result = result_from_task(value, label, kind)
        if mb_id in parts:  # a part of a split pass
            parts[mb_id][task_id] = result
            if any(r is None for r in parts[mb_id].values()):
                return
            result = merge_parts(plans.pop(mb_id), list(parts.pop(mb_id).values()))  # type: ignore[arg-type]
        elif isinstance(value, dict) and value.get("parts"):
            plans[mb_id] = result
            parts[mb_id] = {}
            for part_id in value["parts"]:
                parts[mb_id][part_id] = None
                by_task[part_id] = mb_id
                handles[part_id] = ar = app.AsyncResult(part_id)
                later.append(ar)
            return
        done[mb_id] = result
        progress.finish(label, result)

    batch = [ar for _, ar in pending.values()]
    while batch:  # the mailbox tasks, then the parts of those that were split
        _join(app, batch, collect)
        batch, later[:] = list(later), []
    return [done[m.id] for m in mailboxes]


def _join(app: Celery, results: list[AsyncResult],
          collect: Callable[[str, object], None]) -> None:
    """Call ``collect(task_id, value)`` for each of ``results`` as it finishes."""
    if app.backend.supports_native_join:  # Redis: one MGET per round, not one GET per task
        ResultSet(results).join_native(callback=collect, propagate=False, interval=POLL,
                                       disable_sync_subtasks=False)
        return
    left = list(results)
    while left:
        for ar in [a for a in left if a.ready()]:
            left.remove(ar)
            collect(ar.id, ar.get(propagate=False, disable_sync_subtasks=False))
        time.sleep(POLL)
