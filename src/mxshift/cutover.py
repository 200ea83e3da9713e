"""The cutover: a DNS-gated final sync, after which the destination is the live mailbox.

Why the gate: the final sync is only final if mail has stopped arriving on the old server,
which is what the domain's DNS (MX first, then SPF, Autodiscover, DKIM, DMARC) decides. So
the DNS check runs fresh, right before, for every project domain, and the cutover is
refused while any domain has an error. ``force`` overrides it for the operator who knows
better; who forced it, when, and what DNS said at the time are recorded for the report.

After the final pass every mailbox that passed is marked cut over (``mailbox.cutover_at``)
and the project enters the sweep window. A mailbox whose final pass failed is not left
behind: its next sweep runs the final pass first (see :func:`mxshift.sync.sync`).
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from datetime import datetime

from mxshift.engine.journal import Hooks
from mxshift.engine.pass_result import PassResult, Progress
from mxshift.errors import MxshiftError
from mxshift.notify import announce
from mxshift.project import OpenProject
from mxshift.schedule import store as timeline_store
from mxshift.schedule.plan import Slot
from mxshift.state.models import Event, Project
from mxshift.state.schedule_models import Timeline


class CutoverRefused(MxshiftError):
    """The DNS gate is closed; the message says which domain and record."""


@dataclass
class CutoverResult:
    at: datetime
    scheduled: bool = False          # only planned for ``at`` (a future time)
    forced_by: str | None = None
    dns_problems: list[str] = field(default_factory=list)
    results: list[PassResult] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [r.mailbox for r in self.results if r.status == "failed"]


def dns_problems(proj: OpenProject) -> list[str]:
    """Check every project domain now; what is not ready, one line each (empty = ready)."""
    if not proj.config.domains:
        return []
    from mxshift.dns import check as dns_check

    try:
        reports = dns_check.run(proj, None)
    except MxshiftError as exc:
        return [f"the DNS check could not run: {exc}"]
    problems = []
    for r in reports:
        for c in r.checks:
            if c.verdict == "error":
                problems.append(f"{r.domain} {c.record}: {c.message}")
    return problems


def cutover(proj: OpenProject, *, at: datetime | None = None, force: bool = False,
            actor: str | None = None, now: datetime | None = None,
            progress: Progress | None = None, hooks: Hooks | None = None,
            trigger: str = "manual") -> CutoverResult:
    """Plan the cutover for ``at`` (future), or run it now: DNS gate, final sync, switch."""
    from mxshift.runners import run_passes

    now = now or timeline_store.now_utc()
    plan = timeline_store.load_plan(proj)
    if plan.cutover_done_at is not None:
        raise MxshiftError(f"the cutover already ran at {plan.cutover_done_at:%Y-%m-%d %H:%M} "
                           "UTC; sweeps are running (see `mxshift schedule`)")
    if at is not None and at > now:
        timeline_store.set_plan(proj, cutover_at=at, by=actor)
        return CutoverResult(at=at, scheduled=True)

    problems = dns_problems(proj)
    forced_by = None
    if problems and not force:
        raise CutoverRefused("cutover refused: DNS is not ready: " + "; ".join(problems)
                             + ". Fix the records and wait for propagation, or re-run with "
                             "--force (recorded)")
    if problems:
        forced_by = f"{actor or _who()} at {now:%Y-%m-%d %H:%M} UTC"

    slot_at = at or plan.cutover_at or now
    run_id = timeline_store.claim(proj, Slot("final", slot_at, "due"), trigger, now)
    if run_id is None:
        raise MxshiftError("a cutover is already running for this project")
    _set_phase(proj, "cutover", f"cutover started ({trigger})" + (
        f"; DNS gate FORCED by {forced_by}: " + "; ".join(problems) if forced_by else ""))
    try:
        results = run_passes(proj, None, "final", progress=progress, hooks=hooks)
    except BaseException:  # killed or stopped: the slot is resumed by the next scheduler
        timeline_store.finish(proj, run_id, "interrupted", now)
        raise
    status = "partial" if any(r.status != "ok" for r in results) else "ok"
    with proj.db.session() as s, s.begin():
        t = s.get(Timeline, proj.project_id)
        if t is None:
            t = Timeline(project_id=proj.project_id)
            s.add(t)
        t.cutover_at = t.cutover_at or slot_at
        t.cutover_done_at = now
        t.cutover_forced_by = forced_by
        t.cutover_note = "; ".join(problems) if problems else None
    timeline_store.finish(proj, run_id, status, now, mailboxes=len(results),
                          copied=sum(r.copied for r in results))
    failed = [r.mailbox for r in results if r.status == "failed"]
    _set_phase(proj, "sweeping", f"cutover done: final pass of {len(results)} mailbox(es)"
               + (f", {len(failed)} failed (their next sweep runs the final pass)"
                  if failed else ""))
    announce(proj, "cutover", f"cutover done: {len(results) - len(failed)} of {len(results)} "
             "mailbox(es) cut over", {"forced_by": forced_by, "failed": failed})
    return CutoverResult(at=now, forced_by=forced_by, dns_problems=problems, results=results)


def _set_phase(proj: OpenProject, phase: str, text: str) -> None:
    with proj.db.session() as s, s.begin():
        p = s.get(Project, proj.project_id)
        assert p is not None
        p.phase = phase
        s.add(Event(level="info", text=text))


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
