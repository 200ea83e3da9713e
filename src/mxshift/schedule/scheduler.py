"""``mxshift run``: the long-running scheduler that walks the project's timeline.

Why it keeps nothing in memory that matters: the timeline and every claimed slot are in
the state database, so a restart (or a crash) loses nothing and repeats nothing. On start,
runs a dead scheduler left ``running`` become ``interrupted`` and are resumed; slots missed
while it was down collapse into one catch-up pass (see :mod:`mxshift.schedule.plan`).

Stopping: :meth:`Scheduler.stop` (SIGTERM/SIGINT in the CLI) lets the passes already
running finish, starts no new mailbox, marks the slot ``interrupted`` if mailboxes were
left, and returns. The clock is injectable so tests walk 48 hours of sweeps in seconds.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Protocol

from mxshift.cutover import CutoverRefused, cutover
from mxshift.engine.journal import Hooks
from mxshift.engine.pass_result import PassResult, Progress
from mxshift.project import OpenProject
from mxshift.schedule import store as tl
from mxshift.schedule.plan import Slot, format_duration

log = logging.getLogger("mxshift.schedule")

Runner = Callable[..., list[PassResult]]


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...

    def wake(self) -> None: ...


class SystemClock:
    """Wall-clock time; ``sleep`` returns early when woken (a stop request)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def sleep(self, seconds: float) -> None:
        self._event.wait(max(0.0, seconds))
        self._event.clear()

    def wake(self) -> None:
        self._event.set()


@dataclass
class Ran:
    kind: str
    slot_at: datetime
    status: str
    mailboxes: int = 0
    copied: int = 0


def default_runner(proj: OpenProject, *, kind: str | None, should_stop: Callable[[], bool],
                   progress: Progress | None = None, hooks: Hooks | None = None
                   ) -> list[PassResult]:
    """Where passes run: Celery workers when a broker is configured, else this machine's
    pool (see :mod:`mxshift.runners`)."""
    from mxshift.runners import run_passes

    return run_passes(proj, None, kind, should_stop=should_stop, progress=progress,
                      hooks=hooks)


class Scheduler:
    def __init__(self, proj: OpenProject, *, clock: Clock | None = None,
                 runner: Runner | None = None, progress: Progress | None = None,
                 hooks: Hooks | None = None, max_sleep: float = 300.0,
                 say: Callable[[str], None] | None = None) -> None:
        self.proj = proj
        self.clock = clock or SystemClock()
        self.runner = runner or default_runner
        self.progress, self.hooks = progress, hooks
        self.max_sleep = max_sleep
        self.say = say or log.info
        self._stop = False
        self._final_retry_at: datetime | None = None
        self.ran: list[Ran] = []

    def stop(self) -> None:
        self._stop = True
        self.clock.wake()

    @property
    def stopping(self) -> bool:
        return self._stop

    def run(self, *, until: datetime | None = None) -> list[Ran]:
        """Walk the timeline until the sweep window is over (or ``stop``/``until``)."""
        resumed = tl.release_dead_runs(self.proj)
        if resumed:
            self.say(f"found {len(resumed)} run(s) left by a stopped scheduler: will resume")
        while not self._stop:
            now = self.clock.now()
            if until is not None and now >= until:
                break
            _, _, look = tl.current(self.proj, now)
            due = look.due
            if due is not None and due.kind == "final" and self._final_retry_at \
                    and now < self._final_retry_at:
                due = None
            if due is not None:
                self._run_slot(due, look.catch_up, now)
                continue
            if look.phase == "swept" and look.next_at is None:
                self.say("the sweep window is over: run `mxshift verify`, then "
                         "`mxshift complete`")
                break
            wake = [t for t in (look.next_at, self._final_retry_at, until) if t and t > now]
            wait = min([(t - now).total_seconds() for t in wake] + [self.max_sleep])
            self.clock.sleep(max(wait, 0.001))
        return self.ran

    # -- one slot -----------------------------------------------------------------------
    def _run_slot(self, slot: Slot, catch_up: bool, now: datetime) -> None:
        if slot.kind == "final":
            self._cutover(now)
            return
        trigger = slot.trigger or ("catch-up" if catch_up else "scheduler")
        run_id = tl.claim(self.proj, slot, trigger, now)
        if run_id is None:
            self.say(f"{slot.kind} due {slot.due_at:%Y-%m-%d %H:%M} is taken by another "
                     "scheduler")
            self.clock.sleep(1.0)
            return
        self.say(f"{slot.kind} pass ({trigger}) for the slot of "
                 f"{slot.due_at:%Y-%m-%d %H:%M} UTC")
        kind = "sweep" if slot.kind == "sweep" else None
        try:
            results = self.runner(self.proj, kind=kind, should_stop=lambda: self._stop,
                                  progress=self.progress, hooks=self.hooks)
        except BaseException:
            tl.finish(self.proj, run_id, "interrupted", self.clock.now())
            raise
        total = len(self.proj.mailboxes())
        if self._stop and len(results) < total:
            status = "interrupted"
        elif results and all(r.status == "failed" for r in results):
            status = "failed"
        elif any(r.status != "ok" for r in results):
            status = "partial"
        else:
            status = "ok"
        copied = sum(r.copied for r in results)
        tl.finish(self.proj, run_id, status, self.clock.now(), mailboxes=len(results),
                  copied=copied)
        self.ran.append(Ran(slot.kind, slot.due_at, status, len(results), copied))
        self.say(f"{slot.kind} pass {status}: {len(results)} mailbox(es), {copied} copied"
                 + (f", {sum(1 for r in results if r.status == 'failed')} failed"
                    if any(r.status == "failed" for r in results) else ""))
        if slot.kind == "sweep":
            from mxshift.strays import stray_trend, summary
            self.say("stray mail: " + summary(stray_trend(self.proj, self.clock.now())))

    def _cutover(self, now: datetime) -> None:
        try:
            result = cutover(self.proj, now=now, progress=self.progress, hooks=self.hooks,
                             trigger="scheduler")
        except CutoverRefused as exc:
            retry = self.proj.config.schedule.cutover_retry
            self._final_retry_at = now + retry
            self.say(f"{exc} (retrying in {format_duration(retry)})")
            return
        self._final_retry_at = None
        self.ran.append(Ran("final", now, "ok" if not result.failed else "partial",
                            len(result.results), sum(r.copied for r in result.results)))
        self.say(f"cutover done: {len(result.results)} mailbox(es), "
                 f"{len(result.failed)} failed; sweeps every "
                 f"{format_duration(tl.load_plan(self.proj).sweep_interval)}")

