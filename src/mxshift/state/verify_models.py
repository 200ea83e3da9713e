"""Verification results and accepted exceptions (issue 4).

Why separate tables: a verification is a fact about the servers at a moment, not part of the
copy journal. ``verification`` is one run per mailbox; ``verify_finding`` its differences;
``acceptance`` an operator's recorded decision that a difference is fine. Acceptances are
keyed by :attr:`VerifyFinding.key` (kind, folder, source UID, fingerprint), not by finding
id, so they still hold when the mailbox is verified again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mxshift.state.models import Base, utcnow


class Verification(Base):
    __tablename__ = "verification"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailbox.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    deep: Mapped[bool] = mapped_column(Boolean, default=False)
    verdict: Mapped[str] = mapped_column(String(12))  # verified|failed|error
    counts: Mapped[str] = mapped_column(Text, default="{}")  # JSON, see verify.run
    error: Mapped[str | None] = mapped_column(Text)


class VerifyFinding(Base):
    __tablename__ = "verify_finding"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    verification_id: Mapped[int] = mapped_column(ForeignKey("verification.id"), index=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailbox.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    folder: Mapped[str] = mapped_column(String(1000))
    other_folder: Mapped[str | None] = mapped_column(String(1000))
    source_uid: Mapped[int | None] = mapped_column(BigInteger)
    destination_uid: Mapped[int | None] = mapped_column(BigInteger)
    subject: Mapped[str | None] = mapped_column(Text)
    sender: Mapped[str | None] = mapped_column(Text)
    date: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    explained: Mapped[bool] = mapped_column(Boolean, default=False)
    key: Mapped[str] = mapped_column(String(300), index=True)


class Acceptance(Base):
    __tablename__ = "acceptance"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailbox.id"), index=True)
    key: Mapped[str] = mapped_column(String(300), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    folder: Mapped[str] = mapped_column(String(1000))
    subject: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    accepted_by: Mapped[str | None] = mapped_column(String(200))
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
