"""The commands of issue #4: verify, findings, accept, report, complete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from mxshift.cli import app, escape, fail, out
from mxshift.cli.commands import opened
from mxshift.errors import MxshiftError

# The verify modules are imported by the commands that use them, not here: every mxshift
# process imports this module to build the command tree (see cli/commands.py).
if TYPE_CHECKING:
    from mxshift.verify import run as run_mod


def _print(line: str) -> None:
    out.print(line, markup=False, highlight=False, soft_wrap=True)


def _findings_table(results: list[run_mod.MailboxVerification], *, everything: bool) -> None:
    from rich.table import Table

    t = Table(title="findings")
    for col in ("id", "mailbox", "kind", "folder", "uid", "subject", "from", "date", "size",
                "reason"):
        t.add_column(col, overflow="fold")
    for r in results:
        for f in r.findings:
            if not everything and not f["open"]:
                continue
            reason = f["reason"]
            if f["accepted"]:
                reason += f" [accepted: {f['accepted']['reason']}]"
            elif f["explained"]:
                reason += " [explained]"
            t.add_row(str(f["id"]), r.source_user, f["kind"], f["folder"],
                      "" if f["source_uid"] is None else str(f["source_uid"]),
                      escape(f["subject"] or ""), escape(f["from"] or ""),
                      escape(f["date"] or ""), "" if f["size"] is None else str(f["size"]),
                      escape(reason))
    out.print(t)


@app.command()
def verify(mailbox: Optional[str] = typer.Option(None, "--mailbox", help="Only this user."),
           deep: bool = typer.Option(False, "--deep",
                                     help="Also compare full message bytes by hash."),
           as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")
           ) -> None:
    """Compare source and destination message by message, from the servers; exit 2 on open
    findings."""
    from mxshift.runners import shared_limits
    from mxshift.verify import run as run_mod

    # connections counted with the workers' (in Redis, when configured)
    with opened() as proj, shared_limits():
        results = run_mod.verify(proj, only=mailbox, deep=deep)
    if as_json:
        out.print_json(json.dumps([r.as_json() for r in results]))
    else:
        for r in results:
            c = r.counts
            line = (f"{r.source_user}: {r.verdict}: {c.get('source_messages', 0)} on the "
                    f"source, {c.get('destination_messages', 0)} on the destination, "
                    f"{c.get('findings', 0)} finding(s), {len(r.open_findings)} open")
            if r.error:
                line += f": {r.error}"
            _print(line)
        if any(r.findings for r in results):
            _findings_table(results, everything=True)
    if any(r.verdict != "verified" for r in results):
        raise typer.Exit(2)


@app.command()
def findings(mailbox: Optional[str] = typer.Option(None, "--mailbox", help="Only this user."),
             everything: bool = typer.Option(False, "--all",
                                             help="Also explained and accepted findings."),
             as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")
             ) -> None:
    """List the findings of each mailbox's latest verification (open ones by default)."""
    from mxshift.verify import run as run_mod

    with opened() as proj:
        results = [v for m in proj.mailboxes(mailbox)
                   if (v := run_mod.latest(proj.db, m.id)) is not None]
    if as_json:
        out.print_json(json.dumps([r.as_json() for r in results]))
    else:
        _findings_table(results, everything=everything)


@app.command()
def accept(finding_ids: List[int] = typer.Argument(None, help="Finding ids (see `findings`)."),
           reason: str = typer.Option(..., "--reason", help="Why this is acceptable (recorded)."),
           all_skipped: bool = typer.Option(False, "--all-skipped",
                                            help="Accept every skipped message's finding."),
           mailbox: Optional[str] = typer.Option(None, "--mailbox",
                                                 help="With --all-skipped: only this user."),
           by: Optional[str] = typer.Option(None, "--by", help="Who accepts (recorded).")
           ) -> None:
    """Accept findings with a recorded reason; accepted findings no longer block `complete`."""
    if not finding_ids and not all_skipped:
        fail("name finding ids or --all-skipped")
    from mxshift.verify import gate as gate_mod

    with opened() as proj:
        done = []
        if finding_ids:
            done += gate_mod.accept(proj, list(finding_ids), reason, by)
        if all_skipped:
            done += gate_mod.accept_skipped(proj, reason, only=mailbox, by=by)
    _print(f"{len(done)} finding(s) accepted")


@app.command()
def report(fmt: str = typer.Option("html", "--format", help="html, csv or json."),
           output: Path = typer.Option(..., "-o", "--output", help="File to write.")) -> None:
    """Render the project (summary, verdicts, exceptions, findings) as HTML, CSV or JSON."""
    from mxshift.report import render

    if fmt not in ("html", "csv", "json"):
        fail(f"unknown report format {fmt!r}: use html, csv or json")
    with opened() as proj:
        text = render(proj, fmt)
    try:
        output.write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")
    _print(f"wrote {output}")


@app.command()
def complete(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")
             ) -> None:
    """Mark the project complete when every mailbox is verified after its last pass; else
    list what is open (exit 2)."""
    from mxshift.verify import gate as gate_mod

    with opened() as proj:
        try:
            res = gate_mod.complete(proj)
        except MxshiftError as exc:
            fail(str(exc))
    if as_json:
        out.print_json(json.dumps({"complete": res.completed, "open": res.open}))
    elif res.completed:
        _print("project already complete" if res.already else
               f"project complete: {len(res.mailboxes)} mailbox(es) verified")
    else:
        _print(f"not complete: {len(res.open)} item(s) open")
        for item in res.open:
            _print(f"  {item}")
    if not res.completed:
        raise typer.Exit(2)

