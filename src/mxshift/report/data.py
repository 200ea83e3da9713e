"""The report's data, read from the state database into plain dicts (see the package doc)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select

from mxshift.project import OpenProject
from mxshift.strays import report_section
from mxshift.state.models import Event, FolderPair, Pass, Project
from mxshift.state.verify_models import Acceptance, Verification
from mxshift.verify import gate, run


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return (dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt).isoformat()


def _folders(s: Any, mailbox_id: int) -> list[dict[str, Any]]:
    """Each selectable source folder and how the last pass read it (issue 3): "qresync",
    "condstore", "full-scan", or None before its first complete pass."""
    pairs = s.scalars(select(FolderPair).where(
        FolderPair.mailbox_id == mailbox_id, FolderPair.present.is_(True),
        FolderPair.selectable.is_(True)).order_by(FolderPair.id))
    return [{"folder": p.display_name or p.source_name, "sync_mode": p.sync_mode,
             "last_synced_at": _iso(p.last_synced_at)} for p in pairs]


def _mode_counts(folders: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in folders:
        key = f["sync_mode"] or "not yet"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def collect(proj: OpenProject) -> dict[str, Any]:
    mailboxes: list[dict[str, Any]] = []
    accepted: list[dict[str, Any]] = []
    timeline: list[dict[str, Any]] = []
    with proj.db.session() as s:
        project = s.get(Project, proj.project_id)
        assert project is not None
        phase = project.phase
        for ev in s.scalars(select(Event).where(Event.mailbox_id.is_(None))
                            .order_by(Event.id)):
            timeline.append({"at": _iso(ev.at), "mailbox": None, "text": ev.text})
    for m in proj.mailboxes():
        with proj.db.session() as s:
            # parts of a split pass are summed into their plan row: one logical pass
            passes = list(s.scalars(select(Pass).where(Pass.mailbox_id == m.id,
                                                       Pass.parent_id.is_(None))
                                    .order_by(Pass.id)))
            accs = list(s.scalars(select(Acceptance).where(Acceptance.mailbox_id == m.id)
                                  .order_by(Acceptance.id)))
            verifs = list(s.scalars(select(Verification).where(Verification.mailbox_id == m.id)
                                    .order_by(Verification.id)))
            folders = _folders(s, m.id)
        v = run.latest(proj.db, m.id)
        g = gate.mailbox_gate(proj, m)
        mailboxes.append({
            "source_user": m.source_user, "destination_user": m.destination_user,
            "status": m.status, "last_pass_at": _iso(m.last_pass_at),
            "messages_copied": m.messages_copied, "bytes_copied": m.bytes_copied,
            "messages_skipped": m.messages_skipped,
            "passes": [{"kind": p.kind, "status": p.status, "started_at": _iso(p.started_at),
                        "finished_at": _iso(p.finished_at), "copied": p.copied,
                        "bytes_copied": p.bytes_copied, "skipped": p.skipped,
                        "errors": p.errors} for p in passes],
            "verification": None if v is None else {
                k: val for k, val in v.as_json().items()
                if k not in ("mailbox", "destination_user")},
            "gate": {"verified": g.verified, "open": g.open},
            "folders": folders,
            "sync_modes": _mode_counts(folders),
        })
        for a in accs:
            accepted.append({"mailbox": m.source_user, "kind": a.kind, "folder": a.folder,
                             "subject": a.subject, "reason": a.reason, "by": a.accepted_by,
                             "at": _iso(a.accepted_at)})
        for p in passes:
            timeline.append({"at": _iso(p.started_at), "mailbox": m.source_user,
                             "text": f"{p.kind} pass {p.status}: {p.copied} copied, "
                                     f"{p.skipped} skipped, {p.errors} errors"})
        for vr in verifs:
            timeline.append({"at": _iso(vr.at), "mailbox": m.source_user,
                             "text": f"{'deep ' if vr.deep else ''}verification: {vr.verdict}"})
    timeline.sort(key=lambda e: e["at"] or "")
    findings = [f for mb in mailboxes if mb["verification"]
                for f in mb["verification"]["findings"]]
    return {
        "schema": "mxshift.report/1",
        "project": {"name": proj.config.name, "phase": phase,
                    "generated_at": datetime.now(timezone.utc).isoformat()},
        "summary": {
            "mailboxes": len(mailboxes),
            "verified": sum(1 for mb in mailboxes if mb["gate"]["verified"]),
            "messages_copied": sum(mb["messages_copied"] for mb in mailboxes),
            "bytes_copied": sum(mb["bytes_copied"] for mb in mailboxes),
            "passes": sum(len(mb["passes"]) for mb in mailboxes),
            "findings": len(findings),
            "open_findings": sum(1 for f in findings if f["open"]),
            "accepted": len(accepted),
        },
        "mailboxes": mailboxes, "accepted": accepted, "timeline": timeline,
        "cutover": report_section(proj),
    }
