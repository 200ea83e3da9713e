"""Verifying mailboxes: read both servers, compare, store the result with its time.

Why stored per mailbox: the completion gate and the report need to know, later and without
the servers, whether each mailbox was proven complete *after* its last pass, and with which
exceptions. A verification is immutable; verifying again adds a new one.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import select

from mxshift.connect import store_factory
from mxshift.errors import MxshiftError
from mxshift.notify import announce
from mxshift.project import OpenProject
from mxshift.state.db import StateDB
from mxshift.state.models import Mailbox
from mxshift.state.verify_models import Acceptance, Verification, VerifyFinding
from mxshift.store.base import Store
from mxshift.verify.collect import Batching, collect
from mxshift.verify.compare import Comparison, compare


@dataclass
class MailboxVerification:
    mailbox_id: int
    source_user: str
    destination_user: str
    verification_id: int
    at: datetime
    deep: bool
    verdict: str                    # verified|failed|error
    counts: dict[str, Any]
    findings: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def open_findings(self) -> list[dict[str, Any]]:
        return [f for f in self.findings if f["open"]]

    def as_json(self) -> dict[str, Any]:
        return {"mailbox": self.source_user, "destination_user": self.destination_user,
                "verification_id": self.verification_id, "at": self.at.isoformat(),
                "deep": self.deep, "verdict": self.verdict, "error": self.error,
                "counts": self.counts, "findings": self.findings}


def accepted_keys(db: StateDB, mailbox_id: int) -> dict[str, Acceptance]:
    with db.session() as s:
        return {a.key: a for a in s.scalars(select(Acceptance).where(
            Acceptance.mailbox_id == mailbox_id).order_by(Acceptance.id))}


def finding_json(f: VerifyFinding, acceptance: Acceptance | None) -> dict[str, Any]:
    return {"id": f.id, "kind": f.kind, "folder": f.folder, "other_folder": f.other_folder,
            "source_uid": f.source_uid, "destination_uid": f.destination_uid,
            "subject": f.subject, "from": f.sender, "date": f.date, "size": f.size,
            "reason": f.reason, "explained": f.explained,
            "accepted": None if acceptance is None else {
                "reason": acceptance.reason, "by": acceptance.accepted_by,
                "at": acceptance.accepted_at.isoformat()},
            "open": not f.explained and acceptance is None}


def store_result(db: StateDB, mailbox_id: int, comparison: Comparison | None, *, deep: bool,
                 error: str | None = None) -> int:
    """Write one verification and its findings; returns its id."""
    accepted = accepted_keys(db, mailbox_id)
    counts: dict[str, Any] = {}
    if comparison is not None:
        counts = {
            "folders": [f.__dict__ for f in comparison.folders],
            "source_messages": sum(f.source for f in comparison.folders),
            "destination_messages": sum(f.destination for f in comparison.folders),
            "matched": sum(f.matched for f in comparison.folders),
            "source_bytes": sum(f.source_bytes for f in comparison.folders),
            "findings": len(comparison.differences),
            "open": sum(1 for d in comparison.differences
                        if not d.explained and d.key not in accepted),
        }
    if error is not None:
        verdict = "error"
    else:
        verdict = "verified" if counts.get("open", 0) == 0 else "failed"
    with db.session() as s, s.begin():
        v = Verification(mailbox_id=mailbox_id, deep=deep, verdict=verdict,
                         counts=json.dumps(counts), error=error)
        s.add(v)
        s.flush()
        for d in comparison.differences if comparison is not None else []:
            s.add(VerifyFinding(verification_id=v.id, mailbox_id=mailbox_id, kind=d.kind,
                                folder=d.folder, other_folder=d.other_folder,
                                source_uid=d.source_uid, destination_uid=d.destination_uid,
                                subject=d.subject, sender=d.sender, date=d.date, size=d.size,
                                reason=d.reason, explained=d.explained, key=d.key))
        return v.id


def load(db: StateDB, verification_id: int) -> MailboxVerification:
    """A stored verification with its findings, acceptances applied as of now."""
    with db.session() as s:
        v = s.get(Verification, verification_id)
        assert v is not None
        mb = s.get(Mailbox, v.mailbox_id)
        assert mb is not None
        rows = list(s.scalars(select(VerifyFinding).where(
            VerifyFinding.verification_id == v.id).order_by(VerifyFinding.id)))
    accepted = accepted_keys(db, v.mailbox_id)
    findings = [finding_json(f, accepted.get(f.key)) for f in rows]
    verdict = v.verdict
    if verdict == "failed" and not any(f["open"] for f in findings):
        verdict = "verified"  # every open finding has been accepted since
    return MailboxVerification(v.mailbox_id, mb.source_user, mb.destination_user, v.id, v.at,
                               v.deep, verdict, json.loads(v.counts or "{}"), findings, v.error)


def latest(db: StateDB, mailbox_id: int) -> MailboxVerification | None:
    with db.session() as s:
        vid = s.scalar(select(Verification.id).where(Verification.mailbox_id == mailbox_id)
                       .order_by(Verification.id.desc()).limit(1))
    return None if vid is None else load(db, vid)


def verify_mailbox(db: StateDB, mailbox_id: int, source: Callable[[], Store],
                   destination: Callable[[], Store], *, deep: bool = False,
                   batching: Batching = Batching()) -> MailboxVerification:
    """Verify one mailbox from the servers and store the result (an error is stored too)."""
    try:
        inputs = collect(db, mailbox_id, source, destination, batching, deep=deep)
    except MxshiftError as exc:
        return load(db, store_result(db, mailbox_id, None, deep=deep, error=str(exc)))
    return load(db, store_result(db, mailbox_id, compare(inputs, deep=deep), deep=deep))


def verify(proj: OpenProject, *, only: str | None = None,
           deep: bool = False) -> list[MailboxVerification]:
    """Verify every selected mailbox of the project, several at once as passes run."""
    cfg = proj.config
    batching = Batching(cfg.options.batch_messages, cfg.options.batch_bytes)

    def one(m: Mailbox) -> MailboxVerification:
        return verify_mailbox(
            proj.db, m.id,
            store_factory(cfg.source, m.source_user, m.source_secret, proj.box),
            store_factory(cfg.destination, m.destination_user, m.destination_secret, proj.box),
            deep=deep, batching=batching)

    mailboxes = proj.mailboxes(only)
    workers = max(1, min(cfg.options.mailbox_parallelism, cfg.source.max_connections,
                         cfg.destination.max_connections, len(mailboxes) or 1))
    if workers == 1:
        results = [one(m) for m in mailboxes]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(one, mailboxes))
    bad = [r for r in results if r.verdict != "verified"]
    if bad:
        announce(proj, "verify_failed", f"verification found open items in {len(bad)} "
                 "mailbox(es)", {"mailboxes": {r.source_user: r.verdict for r in bad}})
    return results
