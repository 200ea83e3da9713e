"""Issue 6 commands: schedule, run, cutover, sweep, strays. Thin: parse, call, print."""

from __future__ import annotations

import json
import logging
import os
import signal
from datetime import datetime, timedelta
from typing import Callable, Optional, TypeVar

import typer

from mxshift.cli import app, err, escape, fail, out
from mxshift.cli.commands import opened, print_results, progress_bars

# cutover, strays, sync, the timeline store and the scheduler (the state layer and the
# engine behind them), the schedule's parsers and Rich's tables are imported by the
# commands that use them: every mxshift process imports this module to build the command
# tree (see cli/commands.py).

T = TypeVar("T")

_STYLE = {"done": "green", "due": "yellow", "running": "cyan", "failed": "red",
          "missed": "dim", "upcoming": "", "interrupted": "yellow"}


def _parsed(text: str | None, option: str, parse: Callable[[str], T]) -> T | None:
    """An option's value through ``parse``; a bad one fails with the option's name."""
    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        fail(f"{option}: {exc}")
    return None


def _time(text: str | None, option: str) -> datetime | None:
    from mxshift.schedule.settings import parse_time

    return _parsed(text, option, parse_time)


def _duration(text: str | None, option: str) -> timedelta | None:
    from mxshift.schedule.plan import parse_duration

    return _parsed(text, option, parse_duration)


def _t(dt: datetime | None) -> str:
    return f"{dt:%Y-%m-%d %H:%M} UTC" if dt else "-"


@app.command()
def schedule(
    cutover_at: Optional[str] = typer.Option(None, "--cutover-at", metavar="TIME",
                                             help="Plan the cutover (ISO time with offset)."),
    delta_interval: Optional[str] = typer.Option(None, "--delta-interval", metavar="DURATION",
                                                 help="Time between delta passes, e.g. 12h."),
    sweep_interval: Optional[str] = typer.Option(None, "--sweep-interval", metavar="DURATION",
                                                 help="Time between sweeps, e.g. 60m."),
    sweep_window: Optional[str] = typer.Option(None, "--sweep-window", metavar="DURATION",
                                               help="How long sweeps run after the cutover."),
    extend_sweeps: Optional[str] = typer.Option(None, "--extend-sweeps", metavar="DURATION",
                                                help="Lengthen the sweep window by this much."),
    end_sweeps: bool = typer.Option(False, "--end-sweeps",
                                    help="End the sweep window now."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Show the timeline (what ran, what is due); options change the plan."""
    from rich.table import Table

    from mxshift import strays as strays_mod
    from mxshift.schedule import store as tl
    from mxshift.schedule.plan import format_duration

    with opened() as proj:
        changes = dict(cutover_at=_time(cutover_at, "--cutover-at"),
                       delta_interval=_duration(delta_interval, "--delta-interval"),
                       sweep_interval=_duration(sweep_interval, "--sweep-interval"),
                       sweep_window=_duration(sweep_window, "--sweep-window"),
                       extend_sweeps=_duration(extend_sweeps, "--extend-sweeps"),
                       end_sweeps_at=tl.now_utc() if end_sweeps else None)
        if any(v is not None for v in changes.values()):
            tl.set_plan(proj, by=_actor(), **changes)  # type: ignore[arg-type]
        view = tl.timeline_view(proj)
        trend = strays_mod.stray_trend(proj) if view.cutover_done_at else []
    if as_json:
        data = view.as_json()
        data["stray_trend"] = [{"hour": p.hour, "count": p.count} for p in trend]
        out.print_json(json.dumps(data))
        return
    out.print(f"phase: [bold]{view.phase}[/]   deltas every {format_duration(view.delta_interval)}"
              f"   cutover: {_t(view.cutover_done_at or view.cutover_at)}"
              + (" (done)" if view.cutover_done_at else "")
              + (f" [red]DNS gate forced by {escape(view.cutover_forced_by)}[/]"
                 if view.cutover_forced_by else ""))
    if view.cutover_done_at:
        left = format_duration(view.sweep_left) if view.sweep_left else "0s"
        out.print(f"sweeps every {format_duration(view.sweep_interval)} until "
                  f"{_t(view.sweep_until)} ({left} left); stray mail: "
                  f"{strays_mod.summary(trend)}")
    t = Table(title="timeline")
    for col in ("slot", "due", "status", "ran", "how"):
        t.add_column(col)
    for s in view.slots:
        t.add_row(s.kind, _t(s.due_at), f"[{_STYLE.get(s.status, '')}]{s.status}",
                  _t(s.ran_at), s.trigger or "")
    out.print(t)
    if view.next_due:
        out.print(f"due now: {view.next_due.kind} (`mxshift run` runs it)")
    elif view.next_at:
        out.print(f"next: {_t(view.next_at)}")


@app.command()
def run(max_sleep: float = typer.Option(300.0, "--max-sleep", min=0.1, hidden=True)) -> None:
    """Run the timeline: due passes, the cutover at its time, then the hourly sweeps.

    Survives restarts (one catch-up pass after downtime); SIGTERM or Ctrl-C stops it after
    the running passes finish (a second signal stops at once; nothing is lost either way)."""
    from mxshift.runners import shared_limits
    from mxshift.schedule.scheduler import Scheduler

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S")
    # connections counted with the workers' (in Redis, when configured)
    with opened() as proj, shared_limits():
        sched = Scheduler(proj, max_sleep=max_sleep)

        def on_signal(signum: int, frame: object) -> None:
            if sched.stopping:
                os._exit(128 + signum)  # the journal makes even this safe
            logging.getLogger("mxshift.schedule").info(
                "stopping after the running passes finish (signal again to stop now)")
            sched.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        ran = sched.run()
    logging.getLogger("mxshift.schedule").info("scheduler stopped after %d slot(s)", len(ran))


@app.command("cutover")
def cutover_cmd(
    at: Optional[str] = typer.Option(None, "--at", metavar="TIME",
                                     help="Plan the cutover for this time (ISO, with offset)."),
    now: bool = typer.Option(False, "--now", help="Cut over now."),
    force: bool = typer.Option(False, "--force",
                               help="Cut over even if the DNS check fails (recorded)."),
) -> None:
    """Check DNS for every project domain, run the final sync, start the sweep window."""
    from mxshift import cutover as cutover_mod
    from mxshift.runners import shared_limits
    from mxshift.schedule import store as tl

    if (at is None) == (not now):
        fail("give --now or --at TIME")
    when = _time(at, "--at")
    # connections counted with the workers' (in Redis, when configured)
    with opened() as proj, shared_limits():
        if not progress_bars() or (when and when > tl.now_utc()):
            result = cutover_mod.cutover(proj, at=when, force=force, actor=_actor())
        else:
            from mxshift.cli.progress import RichProgress

            with RichProgress(out) as progress:
                result = cutover_mod.cutover(proj, at=when, force=force, actor=_actor(),
                                             progress=progress)
    if result.scheduled:
        out.print(f"cutover planned for {_t(result.at)}; `mxshift run` will run it then "
                  "(through the DNS gate)")
        return
    if result.forced_by:
        err.print(f"DNS gate forced by {result.forced_by}: " + "; ".join(result.dns_problems),
                  markup=False, highlight=False, soft_wrap=True)
    bad = print_results(result.results)
    out.print(f"cutover done at {_t(result.at)}: {len(result.results) - len(result.failed)} of "
              f"{len(result.results)} mailbox(es) cut over; sweeps follow "
              "(`mxshift run` or `mxshift sweep`)")
    if bad:
        raise typer.Exit(1)


@app.command()
def sweep(mailbox: Optional[str] = typer.Option(None, "--mailbox", help="Only this user.")
          ) -> None:
    """One post-cutover sweep now: copy mail that still reached the old server."""
    from mxshift import strays as strays_mod
    from mxshift import sync as sync_mod
    from mxshift.runners import shared_limits

    # connections counted with the workers' (in Redis, when configured)
    with opened() as proj, shared_limits():
        if not sync_mod.cutover_done(proj):
            fail("no cutover yet: sweeps start after `mxshift cutover` (before it, use "
                 "`mxshift sync`)")
        results = sync_mod.sync(proj, only=mailbox, kind="sweep")
        trend = strays_mod.stray_trend(proj)
    bad = print_results(results)
    out.print(f"stray mail: {strays_mod.summary(trend)}")
    if bad:
        raise typer.Exit(1)


@app.command()
def strays(mailbox: Optional[str] = typer.Option(None, "--mailbox", help="Only this user."),
           as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")
           ) -> None:
    """Mail that reached the old server after the cutover, and the hourly trend."""
    from rich.table import Table

    from mxshift import strays as strays_mod

    with opened() as proj:
        mb_id = proj.mailboxes(mailbox)[0].id if mailbox else None
        users = {m.id: m.source_user for m in proj.mailboxes()}
        rows = strays_mod.stray_messages(proj, mb_id)
        trend = strays_mod.stray_trend(proj)
        changes = strays_mod.source_changes(proj, mb_id)
    if as_json:
        out.print_json(json.dumps({
            "trend": [{"hour": p.hour, "count": p.count} for p in trend],
            "summary": strays_mod.summary(trend),
            "messages": [{"mailbox": users.get(r.mailbox_id), "folder": r.folder,
                          "subject": r.subject, "from": r.sender, "size": r.size,
                          "arrived_at": r.arrived_at.isoformat() if r.arrived_at else None,
                          "received_by": r.received_by} for r in rows],
            "source_changes": [{"mailbox": users.get(c.mailbox_id), "folder": c.folder,
                                "kind": c.kind, "count": c.count} for c in changes]}))
        return
    out.print(f"stray mail: {strays_mod.summary(trend)}")
    t = Table(title="stray messages")
    for col in ("mailbox", "folder", "arrived", "subject", "from", "received by"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(escape(users.get(r.mailbox_id, "?")), escape(r.folder), _t(r.arrived_at),
                  escape(r.subject or ""), escape(r.sender or ""), escape(r.received_by or ""))
    out.print(t)
    if changes:
        out.print(f"{len(changes)} source change(s) after the cutover were logged, not applied")


def _actor() -> str:
    from mxshift import cutover as cutover_mod

    return cutover_mod._who()
