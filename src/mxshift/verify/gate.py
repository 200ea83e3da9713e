"""Accepting findings, and the completion gate.

Why a gate: "complete" is what the customer signs off. It holds only when every mailbox was
verified *after* its last pass and nothing unexplained is open; otherwise it lists exactly
what is open. Once complete, nothing is synced for the project (see :mod:`mxshift.sync`).
Not yet part of the gate (the features do not exist yet): the DNS check and the end of the
post-cutover sweep window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select

# the mark itself (read before every pass) lives in mxshift.completion, which a pass
# imports without this package; re-exported here for the gate's callers
from mxshift.completion import COMPLETE, ProjectComplete, ensure_not_complete, is_complete
from mxshift.errors import MxshiftError
from mxshift.notify import announce
from mxshift.project import OpenProject
from mxshift.state.models import Event, Mailbox, Pass, Project
from mxshift.state.verify_models import Acceptance, VerifyFinding

# mxshift.verify.run (collect, compare) is imported by the functions that read
# verifications.

__all__ = ["COMPLETE", "ProjectComplete", "ensure_not_complete", "is_complete", "accept",
           "accept_skipped", "gate", "mailbox_gate", "complete", "MailboxGate",
           "CompletionResult", "dns_gate", "timeline_gate"]


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


# -- accept ----------------------------------------------------------------------------------
def accept(proj: OpenProject, finding_ids: list[int], reason: str,
           by: str | None = None) -> list[Acceptance]:
    """Record the operator's acceptance of findings (by id); it holds for later verifications."""
    if not reason.strip():
        raise MxshiftError("an acceptance needs a reason (--reason)")
    mailbox_ids = {m.id for m in proj.mailboxes()}
    out: list[Acceptance] = []
    with proj.db.session() as s, s.begin():
        for fid in finding_ids:
            f = s.get(VerifyFinding, fid)
            if f is None or f.mailbox_id not in mailbox_ids:
                raise MxshiftError(f"no finding #{fid} in this project")
            out.append(_accept_one(s, f, reason, by))
    return out


def accept_skipped(proj: OpenProject, reason: str, *, only: str | None = None,
                   by: str | None = None) -> list[Acceptance]:
    """Accept every ``skipped`` finding of each selected mailbox's latest verification."""
    if not reason.strip():
        raise MxshiftError("an acceptance needs a reason (--reason)")
    from mxshift.verify import run

    out: list[Acceptance] = []
    for m in proj.mailboxes(only):
        v = run.latest(proj.db, m.id)
        if v is None:
            continue
        with proj.db.session() as s, s.begin():
            for f in s.scalars(select(VerifyFinding).where(
                    VerifyFinding.verification_id == v.verification_id,
                    VerifyFinding.kind == "skipped")):
                out.append(_accept_one(s, f, reason, by))
    return out


def _accept_one(s, f: VerifyFinding, reason: str, by: str | None) -> Acceptance:  # type: ignore[no-untyped-def]
    existing = s.scalar(select(Acceptance).where(Acceptance.mailbox_id == f.mailbox_id,
                                                 Acceptance.key == f.key))
    if existing is not None:
        existing.reason, existing.accepted_by = reason, by
        return existing  # type: ignore[no-any-return]
    a = Acceptance(mailbox_id=f.mailbox_id, key=f.key, kind=f.kind, folder=f.folder,
                   subject=f.subject, reason=reason, accepted_by=by)
    s.add(a)
    return a


# -- the gate --------------------------------------------------------------------------------
@dataclass
class MailboxGate:
    mailbox: str
    verified: bool
    open: list[str]


def mailbox_gate(proj: OpenProject, m: Mailbox) -> MailboxGate:
    from mxshift.verify import run

    v = run.latest(proj.db, m.id)
    if m.last_pass_at is None:
        return MailboxGate(m.source_user, False, ["never synced"])
    if v is None:
        return MailboxGate(m.source_user, False, ["never verified"])
    # After the cutover the destination is live: the user deletes and files mail there, so
    # a comparison is only meaningful right after the final pass. Sweeps after it only add
    # (each copy confirmed by the journal); they don't call for a new verification, but a
    # mailbox whose latest sweep failed is not done.
    reference = m.cutover_at or m.last_pass_at
    if _utc(v.at) < _utc(reference):
        return MailboxGate(m.source_user, False, [
            f"last verified {v.at:%Y-%m-%d %H:%M}, before its "
            f"{'final' if m.cutover_at else 'last'} pass "
            f"({reference:%Y-%m-%d %H:%M}): verify again"])
    if m.cutover_at is not None:
        with proj.db.session() as s:
            last_sweep = s.scalar(select(Pass).where(Pass.mailbox_id == m.id,
                                                     Pass.kind == "sweep")
                                  .order_by(Pass.id.desc()).limit(1))
            if last_sweep is not None and last_sweep.status == "failed":
                return MailboxGate(m.source_user, False, [
                    f"the latest sweep ({last_sweep.started_at:%Y-%m-%d %H:%M}) failed: "
                    f"{last_sweep.error}"])
    if v.verdict == "error":
        return MailboxGate(m.source_user, False, [f"verification failed: {v.error}"])
    items = [f"finding #{f['id']} {f['kind']} in {f['folder']!r}"
             + (f" (source UID {f['source_uid']})" if f["source_uid"] is not None else "")
             + (f" {f['subject']!r}" if f["subject"] else "") + f": {f['reason']}"
             for f in v.open_findings]
    return MailboxGate(m.source_user, not items, items)


def gate(proj: OpenProject) -> list[MailboxGate]:
    return [mailbox_gate(proj, m) for m in proj.mailboxes()]


@dataclass
class CompletionResult:
    completed: bool
    already: bool
    mailboxes: list[MailboxGate]

    @property
    def open(self) -> list[str]:
        return [f"{g.mailbox}: {item}" for g in self.mailboxes for item in g.open]


def dns_gate(proj: OpenProject) -> MailboxGate:
    """Every project domain's latest `mxshift dns check` must have passed (no error).

    The post-cutover sweep window joins this gate when sweeps exist (issue 6)."""
    from mxshift.state.dns_models import DnsCheck

    open_items = []
    with proj.db.session() as s:
        for domain in proj.config.domains:
            last = s.scalar(select(DnsCheck).where(DnsCheck.project_id == proj.project_id,
                                                   DnsCheck.domain == domain)
                            .order_by(DnsCheck.id.desc()).limit(1))
            if last is None:
                open_items.append(f"{domain}: no DNS check yet (run `mxshift dns check`)")
            elif last.verdict == "error":
                open_items.append(f"{domain}: last DNS check ({last.checked_at:%Y-%m-%d %H:%M})"
                                  " found errors")
    return MailboxGate("(dns)", not open_items, open_items)


def timeline_gate(proj: OpenProject, now: datetime | None = None) -> MailboxGate:
    """A planned cutover must have run, and its sweep window must be over: until then mail
    may still reach the old server, and "complete" would be a promise we cannot keep."""
    from mxshift.schedule.store import load_plan, now_utc

    plan = load_plan(proj)
    now = now or now_utc()
    open_items = []
    if plan.cutover_done_at is None and plan.cutover_at is not None:
        open_items.append(f"the cutover planned for {plan.cutover_at:%Y-%m-%d %H:%M} UTC has "
                          "not run (`mxshift cutover --now`)")
    until = plan.sweep_until
    if until is not None and now < until:
        open_items.append(f"the post-cutover sweep window is open until {until:%Y-%m-%d %H:%M}"
                          " UTC (end it early with `mxshift schedule --end-sweeps`)")
    return MailboxGate("(timeline)", not open_items, open_items)


def complete(proj: OpenProject) -> CompletionResult:
    """Mark the project complete if every mailbox passes the gate; else say what is open."""
    if is_complete(proj):
        return CompletionResult(True, True, gate(proj))
    gates = gate(proj)
    dns = dns_gate(proj)
    timeline = timeline_gate(proj)
    if not gates or any(not g.verified for g in gates) or dns.open or timeline.open:
        if not gates:
            gates = [MailboxGate("(project)", False, ["no mailboxes imported"])]
        return CompletionResult(False, False, gates + [g for g in (dns, timeline) if g.open])
    with proj.db.session() as s, s.begin():
        p = s.get(Project, proj.project_id)
        assert p is not None
        p.phase = COMPLETE
        s.add(Event(level="info", text=f"project marked complete: {len(gates)} mailbox(es) "
                                       "verified"))
    announce(proj, "complete", f"migration complete: {len(gates)} mailbox(es) verified",
             {"mailboxes": [g.mailbox for g in gates]})
    return CompletionResult(True, False, gates)
