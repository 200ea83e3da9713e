"""Where every mailbox stands, from the state database alone (no server is contacted)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from sqlalchemy import func, select

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

    def as_json(self) -> dict[str, object]:
        d = asdict(self)
        d["last_pass_at"] = self.last_pass_at.isoformat() if self.last_pass_at else None
        return d


def status(proj: OpenProject, only: str | None = None) -> list[MailboxStatus]:
    out = []
    with proj.db.session() as s:
        for mb in proj.mailboxes(only):
            last = s.scalar(select(Pass).where(Pass.mailbox_id == mb.id)
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
                failed=mb.messages_failed, last_error=mb.last_error))
    return out


def _utc(when: datetime | None) -> datetime | None:
    """Times are written in UTC; SQLite hands them back without a zone, so say it again
    (``status --json`` must not print an ambiguous local-looking time)."""
    if when is not None and when.tzinfo is None:
        return when.replace(tzinfo=timezone.utc)
    return when
