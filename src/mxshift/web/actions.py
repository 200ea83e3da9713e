"""What the dashboard's buttons do: each one calls the same library function as the CLI.

Why a module of its own: routes only parse the form and check who asks; the work (and its
one-line summary for the "recent actions" list) is here, testable without HTTP.
"""

from __future__ import annotations

from typing import Callable

from mxshift.errors import MxshiftError
from mxshift.project import OpenProject

Work = Callable[[], tuple[bool, str]]


def sync_work(proj: OpenProject, users: list[str] | None) -> Work:
    """One pass for each of ``users`` (all mailboxes when None), here or on the Celery
    workers when a broker is configured (:func:`mxshift.runners.run_passes`)."""
    from mxshift.runners import run_passes

    def work() -> tuple[bool, str]:
        ids = None if users is None else [m.id for u in users for m in proj.mailboxes(u)]
        results = run_passes(proj, ids)
        parts = [f"{r.mailbox}: {r.kind} {r.status}, {r.copied} copied"
                 + (f" ({r.error})" if r.error else "") for r in results]
        return all(r.status == "ok" for r in results), "; ".join(parts) or "no mailbox"
    return work


def verify_work(proj: OpenProject, users: list[str] | None) -> Work:
    from mxshift.verify import run as run_mod

    def work() -> tuple[bool, str]:
        if users is None:
            results = run_mod.verify(proj)
        else:
            results = [r for u in users for r in run_mod.verify(proj, only=u)]
        parts = [f"{r.source_user}: {r.verdict}, {len(r.open_findings)} open"
                 + (f" ({r.error})" if r.error else "") for r in results]
        return all(r.verdict == "verified" for r in results), "; ".join(parts) or "no mailbox"
    return work


def dns_work(proj: OpenProject) -> Work:
    from mxshift.dns import check as check_mod

    def work() -> tuple[bool, str]:
        reports = check_mod.run(proj, None)
        return (all(r.verdict != "error" for r in reports),
                "; ".join(f"{r.domain}: {r.verdict}" for r in reports))
    return work


def cutover_available() -> bool:
    try:
        from mxshift import cutover  # noqa: F401
    except ImportError:
        return False
    return True


def cutover_work(proj: OpenProject, *, force: bool, actor: str) -> Work:
    def work() -> tuple[bool, str]:
        from mxshift import cutover as cutover_mod

        result = cutover_mod.cutover(proj, force=force, actor=actor)
        results = list(getattr(result, "results", []))
        failed = [r.mailbox for r in results if r.status == "failed"]
        text = f"cutover done: final pass of {len(results)} mailbox(es)"
        if failed:
            text += f", failed for {', '.join(failed)} (their next sweep runs it again)"
        if getattr(result, "forced_by", None):
            text += f"; DNS gate forced by {result.forced_by}"
        return not failed, text
    return work


def accept(proj: OpenProject, finding_ids: list[int], reason: str, by: str) -> int:
    """Accept findings with a reason; returns how many. Quick: done in the request."""
    from mxshift.verify import gate as gate_mod

    if not reason.strip():
        raise MxshiftError("give a reason for accepting")
    if not finding_ids:
        raise MxshiftError("select at least one finding to accept")
    return len(gate_mod.accept(proj, finding_ids, reason.strip(), by))
