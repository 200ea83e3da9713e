"""The commands of issue #2: init, mailboxes import, preflight, sync, status."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

import typer

from mxshift.cli import app, err, escape, fail, mailboxes_app, out, startup, state
from mxshift.errors import MxshiftError

# Why the imports below sit inside the commands: every ``mxshift`` process imports every
# command module (to build the command tree), so a module-level import here is paid by
# every command. The project/state layer (SQLAlchemy), the engine and the IMAP client are
# imported by the commands that use them; tests/test_startup.py guards the heavy ones.
if TYPE_CHECKING:
    from mxshift import preflight as preflight_mod
    from mxshift.project import OpenProject


@contextmanager
def opened() -> Iterator[OpenProject]:
    from mxshift import project as project_mod

    try:
        proj = project_mod.open_project(state.directory)
    except MxshiftError as exc:
        fail(str(exc))
        raise  # unreachable: fail() exits
    startup.resume()  # the command's imports are done
    try:
        yield proj
    except MxshiftError as exc:
        fail(str(exc))
    finally:
        proj.close()


def progress_bars() -> bool:
    """Progress bars only for a person at a terminal and without ``-q``: a script, cron or
    a pipe gets the result lines alone (and the process skips Rich's progress machinery)."""
    return not state.quiet and out.is_terminal


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _pair(source: str, destination: str) -> str:
    return source if source == destination else f"{source} -> {destination}"


@app.command()
def init(force: bool = typer.Option(False, help="Overwrite existing files.")) -> None:
    """Write mxshift.toml and mailboxes.csv templates into the project directory."""
    from mxshift import project as project_mod

    try:
        written = project_mod.init(state.directory, force=force)
    except MxshiftError as exc:
        fail(str(exc))
    for path in written:
        out.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)


@mailboxes_app.command("import")
def mailboxes_import(csv_file: Path = typer.Argument(..., help="CSV with source_user, "
                                                     "source_password, destination_user, "
                                                     "destination_password.")) -> None:
    """Validate a CSV of mailbox pairs and add or update them in the project."""
    from mxshift import project as project_mod

    try:
        res = project_mod.import_mailboxes(state.directory, csv_file)
    except MxshiftError as exc:
        fail(str(exc))
    out.print(f"{res.added} added, {res.updated} updated, {res.unchanged} unchanged")


@app.command()
def preflight(mailbox: Optional[str] = typer.Option(None, "--mailbox", help="Only this user."),
              as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")
              ) -> None:
    """Log in on both sides and report, per mailbox, what would block the migration."""
    from rich.table import Table

    from mxshift import preflight as preflight_mod
    from mxshift.runners import shared_limits

    # connections counted with the workers' (in Redis, when configured)
    with opened() as proj, shared_limits():
        results = preflight_mod.preflight(proj, mailbox)
    if as_json:
        out.print_json(json.dumps([_preflight_json(r) for r in results]))
    else:
        t = Table(title="preflight")
        for col in ("mailbox", "ready", "folders", "messages", "size", "dest quota",
                    "blockers / warnings"):
            t.add_column(col, overflow="fold")  # wrap, never cut text off
        for r in results:
            q = r.destination.quota
            missing = [c for c in preflight_mod.USEFUL if c not in r.destination.capabilities]
            notes = r.blockers + [f"warning: {w}" for w in r.warnings]
            if r.destination.ok and missing:
                notes.append("destination lacks " + ", ".join(missing))
            t.add_row(_pair(r.source_user, r.destination_user),
                      "[green]yes" if r.ready else "[red]NO", str(r.source.folders),
                      str(r.source.messages), _size(r.source.size),
                      f"{_size(q.used_bytes)} / {_size(q.limit_bytes)}" if q else "-",
                      escape("\n".join(notes)))
        out.print(t)
    if any(not r.ready for r in results):
        raise typer.Exit(2)


def _preflight_json(r: preflight_mod.PreflightResult) -> dict[str, object]:
    def side(s: preflight_mod.SideReport) -> dict[str, object]:
        return {"ok": s.ok, "error": s.error, "folders": s.folders, "messages": s.messages,
                "size": s.size, "capabilities": s.capabilities,
                "quota": {"used": s.quota.used_bytes, "limit": s.quota.limit_bytes}
                if s.quota else None}
    return {"source_user": r.source_user, "destination_user": r.destination_user,
            "ready": r.ready, "blockers": r.blockers, "warnings": r.warnings,
            "source": side(r.source), "destination": side(r.destination)}


@app.command()
def sync(mailbox: Optional[str] = typer.Option(None, "--mailbox", help="Only this user."),
         allow_mass_delete: bool = typer.Option(
             False, "--allow-mass-delete",
             help="Apply deletions even above the deletion ceiling.")) -> None:
    """Copy: a full prestage on the first run, a delta afterwards."""
    from mxshift.runners import run_passes, shared_limits

    # connections counted with the workers' (in Redis, when configured)
    with opened() as proj, shared_limits():
        # here or on Celery workers (MXSHIFT_BROKER_URL): runners/__init__.py
        ids = [m.id for m in proj.mailboxes(mailbox)] if mailbox else None
        if not progress_bars():
            results = run_passes(proj, ids, allow_mass_delete=allow_mass_delete)
        else:
            from mxshift.cli.progress import RichProgress

            with RichProgress(out.console) as progress:
                results = run_passes(proj, ids, allow_mass_delete=allow_mass_delete,
                                     progress=progress)
    if print_results(results):
        raise typer.Exit(1)


def print_results(results: list) -> int:  # type: ignore[type-arg]
    """One line per mailbox pass (failures on stderr), its notes indented; returns how many
    did not end ``ok``."""
    bad = 0
    for r in results:
        line = (f"{r.mailbox}: {r.kind} {r.status}: {r.copied} copied ({_size(r.bytes_copied)}),"
                f" {r.adopted} adopted, {r.moved} moved, {r.flags_updated} flag updates, "
                f"{r.deleted} deleted, {r.skipped} skipped, {r.errors} errors "
                f"in {r.seconds:.1f}s")
        if r.status != "ok":
            bad += 1
        if r.error:
            line += f": {r.error}"
        (err if r.status == "failed" else out).line(line)  # Rich only if needed
        for note in r.notes:
            out.line(f"  {note}")
    return bad


@app.command()
def status(mailbox: Optional[str] = typer.Option(None, "--mailbox", help="Only this user."),
           as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")
           ) -> None:
    """Per mailbox: state, last pass, counts copied/skipped/failed, delta modes used."""
    from rich.table import Table

    from mxshift import status as status_mod

    with opened() as proj:
        rows = status_mod.status(proj, mailbox)
    if as_json:
        out.print_json(json.dumps([r.as_json() for r in rows]))
        return
    t = Table(title="mailboxes")
    for col in ("mailbox", "state", "last pass", "on dest", "copied", "size", "skipped",
                "failed", "delta modes", "last error"):
        t.add_column(col, overflow="fold")  # wrap, never cut text off
    for r in rows:
        when = r.last_pass_at.strftime("%m-%d %H:%M") if r.last_pass_at else ""
        t.add_row(_pair(r.source_user, r.destination_user), r.status,
                  f"{r.last_pass_kind} {r.last_pass} {when}" if r.last_pass else "-",
                  str(r.messages_on_destination), str(r.copied), _size(r.bytes_copied),
                  str(r.skipped), str(r.failed), status_mod.modes_text(r.sync_modes),
                  escape(r.last_error or ""))
    out.print(t)
