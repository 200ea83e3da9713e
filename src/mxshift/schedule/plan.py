"""The project's timeline as pure logic: which slot is due now, and what each slot became.

Why pure: the scheduler, ``mxshift schedule`` and the dashboard all ask the same questions
("what ran, what is due, when is the next thing"), and the answers must not depend on who
asks or on the wall clock: ``now`` is always an argument, so a 48-hour sweep window is
tested in milliseconds.

The timeline (defaults in brackets):

    prestage (at ``start_at``) -> a delta every ``delta_interval`` [24 h], anchored at the
    first pass -> the final pass at ``cutover_at`` (through the DNS gate) -> a sweep every
    ``sweep_interval`` [60 min] for ``sweep_window`` [48 h] after the cutover ran.

Catch-up rule: only the *latest* slot that fell due is run. A scheduler that was down for
five delta slots runs one catch-up pass and marks the four before it ``missed``; running
all of them would only repeat the same work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

DONE = ("ok", "partial")
FINISHED = ("ok", "partial", "failed")
MAX_LISTED = 200  # slots listed for display; a 1-minute sweep interval must not list 2880


@dataclass(frozen=True)
class Plan:
    start_at: datetime | None              # prestage due from here (None: when asked)
    delta_interval: timedelta
    cutover_at: datetime | None            # planned final pass
    sweep_interval: timedelta
    sweep_window: timedelta
    first_pass_at: datetime | None = None  # anchor of the delta slots
    cutover_done_at: datetime | None = None
    sweep_ended_at: datetime | None = None  # the operator closed the window early

    @property
    def sweep_until(self) -> datetime | None:
        if self.cutover_done_at is None:
            return None
        end = self.cutover_done_at + self.sweep_window
        return min(end, self.sweep_ended_at) if self.sweep_ended_at else end


@dataclass(frozen=True)
class Run:
    """A slot some scheduler claimed (see ``schedule_run``)."""

    kind: str
    slot_at: datetime
    status: str              # running | ok | partial | failed | interrupted
    started_at: datetime
    finished_at: datetime | None = None
    trigger: str = "scheduler"


@dataclass(frozen=True)
class Slot:
    kind: str                # prestage | delta | final | sweep
    due_at: datetime
    status: str              # done | failed | running | interrupted | due | upcoming | missed
    ran_at: datetime | None = None
    trigger: str | None = None


@dataclass
class Outlook:
    phase: str
    slots: list[Slot] = field(default_factory=list)
    due: Slot | None = None            # what to run now
    catch_up: bool = False             # due was preceded by missed slots
    next_at: datetime | None = None    # when the next slot falls due (after ``due``)


def _every(first: datetime, step: timedelta, until: datetime | None,
           inclusive: bool) -> list[datetime]:
    """first, first+step, ... up to ``until`` (bounded for display)."""
    out: list[datetime] = []
    t = first
    while (until is None or t < until or (inclusive and t == until)) and len(out) < 10_000:
        out.append(t)
        t = t + step
    return out


def _delta_times(plan: Plan, now: datetime) -> list[datetime]:
    if plan.first_pass_at is None:
        return []
    until = plan.cutover_done_at or plan.cutover_at
    first = plan.first_pass_at + plan.delta_interval
    if until is None:  # no cutover planned: deltas forever; list up to the next one
        times = _every(first, plan.delta_interval, now + plan.delta_interval, False)
        return times
    return _every(first, plan.delta_interval, until, False)


def _sweep_times(plan: Plan) -> list[datetime]:
    if plan.cutover_done_at is None:
        return []
    return _every(plan.cutover_done_at + plan.sweep_interval, plan.sweep_interval,
                  plan.sweep_until, True)


def _by_slot(runs: list[Run]) -> dict[tuple[str, datetime], Run]:
    return {(r.kind, r.slot_at): r for r in runs}


def _series(kind: str, times: list[datetime], runs: dict[tuple[str, datetime], Run],
            now: datetime) -> tuple[list[Slot], Slot | None, bool]:
    """Slots of one kind; the latest fallen-due slot not yet run is the one due."""
    fallen = [t for t in times if t <= now]
    latest = fallen[-1] if fallen else None
    slots: list[Slot] = []
    due: Slot | None = None
    missed = False
    for t in times:
        run = runs.get((kind, t))
        if run is not None and run.status != "interrupted":
            status = {"ok": "done", "partial": "done"}.get(run.status, run.status)
            slots.append(Slot(kind, t, status, run.started_at, run.trigger))
        elif t == latest:
            due = Slot(kind, t, "due", None, "resume" if run else None)
            slots.append(due)
        elif t < now:
            missed = True
            slots.append(Slot(kind, t, "missed"))
        else:
            slots.append(Slot(kind, t, "upcoming"))
    return slots, due, missed and due is not None


def outlook(plan: Plan, runs: list[Run], now: datetime) -> Outlook:
    """Everything the scheduler and the displays need to know at ``now``."""
    by = _by_slot(runs)
    running = [r for r in runs if r.status == "running"]
    slots: list[Slot] = []
    due: Slot | None = None
    catch_up = False

    # prestage: done as soon as any pass of the project ran (a manual `mxshift sync` counts)
    start = plan.start_at or plan.first_pass_at or now
    pre_run = next((r for r in runs if r.kind == "prestage"), None)
    if pre_run is not None and pre_run.status != "interrupted":
        slots.append(Slot("prestage", pre_run.slot_at,
                          {"ok": "done", "partial": "done"}.get(pre_run.status, pre_run.status),
                          pre_run.started_at, pre_run.trigger))
    elif pre_run is None and plan.first_pass_at is not None:
        slots.append(Slot("prestage", start, "done", plan.first_pass_at, "manual"))
    elif start <= now:
        due = Slot("prestage", pre_run.slot_at if pre_run else start, "due", None,
                   "resume" if pre_run else None)
        slots.append(due)
    else:
        slots.append(Slot("prestage", start, "upcoming"))

    if plan.cutover_done_at is None:
        delta_slots, delta_due, delta_missed = _series("delta", _delta_times(plan, now), by, now)
        slots += delta_slots
        final_at = plan.cutover_at
        final_run = next((r for r in runs if r.kind == "final" and r.status != "interrupted"),
                         None)
        if final_at is not None:
            if final_run is not None:
                slots.append(Slot("final", final_at, {"ok": "done", "partial": "done"}.get(
                    final_run.status, final_run.status), final_run.started_at,
                    final_run.trigger))
            elif final_at <= now and due is None:
                due = Slot("final", final_at, "due")
                slots.append(due)
            else:
                slots.append(Slot("final", final_at, "due" if final_at <= now else "upcoming"))
        if due is None and delta_due is not None and not (final_at and final_at <= now):
            due, catch_up = delta_due, delta_missed
    else:
        delta_slots, _, _ = _series("delta", _delta_times(plan, now), by, now)
        slots += [s if s.status != "due" else Slot(s.kind, s.due_at, "missed")
                  for s in delta_slots]
        final_run = next((r for r in runs if r.kind == "final" and r.status in DONE), None)
        slots.append(Slot("final", plan.cutover_at or plan.cutover_done_at, "done",
                          plan.cutover_done_at, final_run.trigger if final_run else "manual"))
        sweep_slots, sweep_due, sweep_missed = _series("sweep", _sweep_times(plan), by, now)
        slots += sweep_slots
        if due is None:
            due, catch_up = sweep_due, sweep_missed

    if running:  # one thing at a time: a slot still running elsewhere is not due again
        due = None
    upcoming = [s.due_at for s in slots if s.status == "upcoming"]
    return Outlook(phase=phase(plan, runs, now), slots=_trim(slots), due=due,
                   catch_up=catch_up, next_at=min(upcoming) if upcoming else None)


def _trim(slots: list[Slot]) -> list[Slot]:
    if len(slots) <= MAX_LISTED:
        return slots
    head = [s for s in slots if s.status not in ("missed", "upcoming")]
    tail = [s for s in slots if s.status in ("missed", "upcoming")]
    return sorted(head[-MAX_LISTED // 2:] + tail[:MAX_LISTED // 2], key=lambda s: s.due_at)


def phase(plan: Plan, runs: list[Run], now: datetime) -> str:
    """planning | prestage | delta | cutover | sweeping | swept (``complete`` is the
    verification gate's word, kept on the project row, not decided here)."""
    if any(r.kind == "final" and r.status == "running" for r in runs):
        return "cutover"
    if plan.cutover_done_at is not None:
        until = plan.sweep_until
        return "sweeping" if until is not None and now < until else "swept"
    if plan.first_pass_at is None:
        return "prestage" if any(r.kind == "prestage" for r in runs) else "planning"
    if any(r.kind == "prestage" and r.status == "running" for r in runs):
        return "prestage"
    return "delta"


def parse_duration(text: str) -> timedelta:
    """``"24h"``, ``"60m"``, ``"90s"``, ``"2d"``, ``"1h30m"`` -> timedelta. Raises ValueError."""
    import re

    s = text.strip().lower().replace(" ", "")
    parts = re.findall(r"(\d+)([dhms])", s)
    if not s or "".join(n + u for n, u in parts) != s:
        raise ValueError(f"{text!r} is not a duration like 24h, 60m, 90s, 2d or 1h30m")
    unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    seconds = sum(int(n) * unit[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than 0")
    return timedelta(seconds=seconds)


def format_duration(td: timedelta) -> str:
    seconds = int(td.total_seconds())
    if seconds < 0:
        return "-" + format_duration(-td)
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not out):
            n, seconds = divmod(seconds, size)
            out.append(f"{n}{unit}")
        if len(out) == 2:
            break
    return "".join(out)
