"""Where every mailbox stands, from the state database alone (no server is contacted)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mxshift.project import OpenProject
from mxshift.state.models import FolderPair, Message, Pass


@dataclass
class MailboxStatus:
    source_user: str
    destination_user: str
    status: str
    last_pass: str | None
    last_pass_kind: str | None
    last_pass_at: datetime | None
    messages_on_destination: int
    copied: int
    bytes_copied: int
    skipped: int
    failed: int
    last_error: str | None
    # How the source folders were last read (issue 3): mode -> folder count, e.g.
    # {"qresync": 12, "full-scan": 1}; "not yet" for folders no pass has completed.
    sync_modes: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        d = asdict(self)
        d["last_pass_at"] = self.last_pass_at.isoformat() if self.last_pass_at else None
        return d


def status(proj: OpenProject, only: str | None = None) -> list[MailboxStatus]:
    out = []
    with proj.db.session() as s:
        for mb in proj.mailboxes(only):
            last = s.scalar(select(Pass).where(Pass.mailbox_id == mb.id,  # not a part
                                               Pass.parent_id.is_(None))
                            .order_by(Pass.id.desc()).limit(1))
            on_dest = s.scalar(select(func.count(Message.id)).join(FolderPair).where(
                FolderPair.mailbox_id == mb.id, Message.state == "copied")) or 0
            skipped = s.scalar(select(func.count(Message.id)).join(FolderPair).where(
                FolderPair.mailbox_id == mb.id, Message.state == "skipped")) or 0
            out.append(MailboxStatus(
                source_user=mb.source_user, destination_user=mb.destination_user,
                status=mb.status, last_pass=last.status if last else None,
                last_pass_kind=last.kind if last else None,
                last_pass_at=_utc(mb.last_pass_at), messages_on_destination=on_dest,
                copied=mb.messages_copied, bytes_copied=mb.bytes_copied, skipped=skipped,
                failed=mb.messages_failed, last_error=mb.last_error,
                sync_modes=sync_modes(s, mb.id)))
    return out


def sync_modes(s: Session, mailbox_id: int) -> dict[str, int]:
    """Folder count per delta mode ("qresync", "condstore", "full-scan", "not yet"), over
    the selectable source folders still present: what an admin checks after turning a
    capability off with ``disable_capabilities``."""
    rows = s.execute(select(FolderPair.sync_mode, func.count(FolderPair.id)).where(
        FolderPair.mailbox_id == mailbox_id, FolderPair.present.is_(True),
        FolderPair.selectable.is_(True)).group_by(FolderPair.sync_mode)).all()
    out: dict[str, int] = {}
    for mode, count in rows:
        key = mode or "not yet"
        out[key] = out.get(key, 0) + count
    return dict(sorted(out.items()))


def modes_text(modes: dict[str, int]) -> str:
    """``{"qresync": 3, "full-scan": 1}`` -> ``"qresync 3, full-scan 1"`` (status table)."""
    order = ("qresync", "condstore", "full-scan", "not yet")
    keys = sorted(modes, key=lambda k: (order.index(k) if k in order else len(order), k))
    return ", ".join(f"{k} {modes[k]}" for k in keys) or "-"


def _utc(when: datetime | None) -> datetime | None:
    """Times are written in UTC; SQLite hands them back without a zone, so say it again
    (``status --json`` must not print an ambiguous local-looking time)."""
    if when is not None and when.tzinfo is None:
        return when.replace(tzinfo=timezone.utc)
    return when
