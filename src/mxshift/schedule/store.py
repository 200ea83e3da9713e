"""Reading and writing the timeline in the state database.

Why claims are INSERTs: two schedulers (a restart racing a stale process, or two machines
by mistake) must never both run a slot. ``schedule_run`` is unique on (project, kind,
slot); whoever inserts the row runs the slot, the other gets an IntegrityError and moves on.
An interrupted run is resumed by flipping its status back to ``running`` with an UPDATE
guarded by the old status, which only one process can win as well.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from mxshift.project import OpenProject
from mxshift.schedule.plan import Outlook, Plan, Run, Slot, outlook
from mxshift.state.models import Event, Mailbox, Pass, Project
from mxshift.state.schedule_models import ScheduleRun, Timeline


def utc(dt: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; they were stored in UTC."""
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _row(s, project_id: int) -> Timeline:  # type: ignore[no-untyped-def]
    row = s.get(Timeline, project_id)
    if row is None:
        row = Timeline(project_id=project_id)
        s.add(row)
        s.flush()
    return row


def load_plan(proj: OpenProject) -> Plan:
    cfg = proj.config.schedule
    with proj.db.session() as s:
        t = s.get(Timeline, proj.project_id)
        # The prestage's start anchors the delta slots: the scheduler's own clock when it ran
        # it, else the first pass anyone ran (a manual `mxshift sync` is a prestage too).
        first = s.scalar(select(func.min(ScheduleRun.started_at)).where(
            ScheduleRun.project_id == proj.project_id, ScheduleRun.kind == "prestage"))
        first = first or (t.prestage_at if t else None) or s.scalar(
            select(func.min(Pass.started_at)).join(Mailbox).where(
                Mailbox.project_id == proj.project_id))
        created = s.scalar(select(Project.created_at).where(Project.id == proj.project_id))
    return Plan(
        start_at=cfg.prestage_at or utc(created),
        delta_interval=timedelta(seconds=t.delta_interval_s) if t and t.delta_interval_s
        else cfg.delta_interval,
        cutover_at=utc(t.cutover_at) if t and t.cutover_at else cfg.cutover_at,
        sweep_interval=timedelta(seconds=t.sweep_interval_s) if t and t.sweep_interval_s
        else cfg.sweep_interval,
        sweep_window=timedelta(seconds=t.sweep_window_s) if t and t.sweep_window_s
        else cfg.sweep_window,
        first_pass_at=utc(first),
        cutover_done_at=utc(t.cutover_done_at) if t else None,
        sweep_ended_at=utc(t.sweep_ended_at) if t else None,
    )


def load_runs(proj: OpenProject) -> list[Run]:
    with proj.db.session() as s:
        rows = list(s.scalars(select(ScheduleRun).where(
            ScheduleRun.project_id == proj.project_id).order_by(ScheduleRun.id)))
    return [Run(r.kind, utc(r.slot_at), r.status, utc(r.started_at),  # type: ignore[arg-type]
                utc(r.finished_at), r.trigger) for r in rows]


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class TimelineView:
    """What ``mxshift schedule`` and the dashboard show."""

    phase: str
    prestage_at: datetime | None
    cutover_at: datetime | None
    cutover_done_at: datetime | None
    cutover_forced_by: str | None
    delta_interval: timedelta
    sweep_interval: timedelta
    sweep_window: timedelta
    sweep_until: datetime | None
    sweep_left: timedelta | None
    slots: list[Slot] = field(default_factory=list)
    next_due: Slot | None = None
    next_at: datetime | None = None
    now: datetime | None = None

    def as_json(self) -> dict:
        def t(x: datetime | None) -> str | None:
            return x.isoformat() if x else None

        return {
            "phase": self.phase, "prestage_at": t(self.prestage_at),
            "cutover_at": t(self.cutover_at), "cutover_done_at": t(self.cutover_done_at),
            "cutover_forced_by": self.cutover_forced_by,
            "delta_interval_s": int(self.delta_interval.total_seconds()),
            "sweep_interval_s": int(self.sweep_interval.total_seconds()),
            "sweep_window_s": int(self.sweep_window.total_seconds()),
            "sweep_until": t(self.sweep_until),
            "sweep_left_s": int(self.sweep_left.total_seconds()) if self.sweep_left else None,
            "next_due": ({"kind": self.next_due.kind, "due_at": t(self.next_due.due_at)}
                         if self.next_due else None),
            "next_at": t(self.next_at),
            "slots": [{"kind": s.kind, "due_at": t(s.due_at), "status": s.status,
                       "ran_at": t(s.ran_at), "trigger": s.trigger} for s in self.slots],
        }


def current(proj: OpenProject, now: datetime | None = None) -> tuple[Plan, list[Run], Outlook]:
    now = now or now_utc()
    plan, runs = load_plan(proj), load_runs(proj)
    return plan, runs, outlook(plan, runs, now)


def timeline_view(proj: OpenProject, now: datetime | None = None) -> TimelineView:
    now = now or now_utc()
    plan, runs, look = current(proj, now)
    with proj.db.session() as s:
        t = s.get(Timeline, proj.project_id)
        forced = t.cutover_forced_by if t else None
        project_phase = s.scalar(select(Project.phase).where(Project.id == proj.project_id))
    until = plan.sweep_until
    return TimelineView(
        phase="complete" if project_phase == "complete" else look.phase,
        prestage_at=plan.first_pass_at, cutover_at=plan.cutover_at,
        cutover_done_at=plan.cutover_done_at, cutover_forced_by=forced,
        delta_interval=plan.delta_interval, sweep_interval=plan.sweep_interval,
        sweep_window=plan.sweep_window, sweep_until=until,
        sweep_left=max(until - now, timedelta(0)) if until else None,
        slots=look.slots, next_due=look.due, next_at=look.next_at, now=now)


# -- writes -------------------------------------------------------------------------------
def claim(proj: OpenProject, slot: Slot, trigger: str, now: datetime) -> int | None:
    """Take a slot; None if another process holds or finished it."""
    owner = owner_id()
    with proj.db.session() as s:
        if slot.trigger == "resume":
            with s.begin():
                res = s.execute(update(ScheduleRun).where(
                    ScheduleRun.project_id == proj.project_id, ScheduleRun.kind == slot.kind,
                    ScheduleRun.slot_at == slot.due_at, ScheduleRun.status == "interrupted")
                    .values(status="running", owner=owner, trigger="resume", started_at=now))
                if res.rowcount != 1:  # type: ignore[attr-defined]
                    return None
                return s.scalar(select(ScheduleRun.id).where(
                    ScheduleRun.project_id == proj.project_id, ScheduleRun.kind == slot.kind,
                    ScheduleRun.slot_at == slot.due_at))
        try:
            with s.begin():
                run = ScheduleRun(project_id=proj.project_id, kind=slot.kind,
                                  slot_at=slot.due_at, trigger=trigger, owner=owner,
                                  started_at=now, status="running")
                s.add(run)
                s.flush()
                return run.id
        except IntegrityError:
            return None


def finish(proj: OpenProject, run_id: int, status: str, now: datetime, *, mailboxes: int = 0,
           copied: int = 0, note: str | None = None) -> None:
    with proj.db.session() as s, s.begin():
        s.execute(update(ScheduleRun).where(ScheduleRun.id == run_id).values(
            status=status, finished_at=now, mailboxes=mailboxes, copied=copied, note=note))


def release_dead_runs(proj: OpenProject) -> list[int]:
    """Runs left ``running`` by a scheduler that is gone become ``interrupted`` (resumable).

    Only runs of this host can be judged (their pid is checked); another host's run is
    left alone, as the mailbox lease does."""
    from mxshift.engine.lease import _alive

    host = socket.gethostname()
    done = []
    with proj.db.session() as s, s.begin():
        for r in s.scalars(select(ScheduleRun).where(
                ScheduleRun.project_id == proj.project_id, ScheduleRun.status == "running")):
            if (r.owner or "").split(":")[0] == host and not _alive(r.owner, 0):
                r.status = "interrupted"
                done.append(r.id)
    return done


def set_plan(proj: OpenProject, *, cutover_at: datetime | None = None,
             delta_interval: timedelta | None = None, sweep_interval: timedelta | None = None,
             sweep_window: timedelta | None = None, extend_sweeps: timedelta | None = None,
             end_sweeps_at: datetime | None = None, by: str | None = None) -> None:
    """Record the operator's changes to the plan (they win over mxshift.toml)."""
    plan = load_plan(proj)
    changes = []
    with proj.db.session() as s, s.begin():
        t = _row(s, proj.project_id)
        if cutover_at is not None:
            if t.cutover_done_at is not None:
                from mxshift.errors import MxshiftError
                raise MxshiftError("the cutover already ran; its time cannot be changed")
            t.cutover_at = cutover_at
            changes.append(f"cutover at {cutover_at:%Y-%m-%d %H:%M} UTC")
        if delta_interval is not None:
            t.delta_interval_s = int(delta_interval.total_seconds())
            changes.append(f"delta every {delta_interval}")
        if sweep_interval is not None:
            t.sweep_interval_s = int(sweep_interval.total_seconds())
            changes.append(f"sweep every {sweep_interval}")
        window = sweep_window or plan.sweep_window
        if extend_sweeps is not None:
            window = window + extend_sweeps
            t.sweep_ended_at = None
            changes.append(f"sweep window extended by {extend_sweeps}")
        if sweep_window is not None or extend_sweeps is not None:
            t.sweep_window_s = int(window.total_seconds())
            if sweep_window is not None:
                changes.append(f"sweep window {sweep_window}")
        if end_sweeps_at is not None:
            t.sweep_ended_at = end_sweeps_at
            changes.append("sweep window ended early")
        if changes:
            s.add(Event(level="info", text="schedule: " + "; ".join(changes)
                        + (f" (by {by})" if by else "")))
