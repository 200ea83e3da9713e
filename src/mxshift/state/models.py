"""The state database: the journal every decision is written to before it is acted on.

Why these tables: a pass can be killed at any instant. What it intended is in ``message``
rows whose ``state`` is a *passing* status (``pending``, ``moving``, ``deleting``);
``copied`` and ``skipped`` are *persistent*. At start-up, passing rows are reconciled
against the destination, so the re-run neither loses nor duplicates a message.

Schema rules: portable types only (runs on SQLite and PostgreSQL); every change is an
Alembic migration under ``migrations/versions``.

Message row statuses:
    pending   APPEND about to be sent; ``dest_uid_floor`` bounds where it may have landed
    copied    on the destination as ``destination_uid`` (appended or adopted)
    moving    MOVE to ``move_pair_id`` about to be sent; ``move_source_uid`` is its new UID
    deleting  expunge on the destination about to be sent
    skipped   the destination refused it or policy excluded it; a finding says why
"""

# No ``from __future__ import annotations`` here: SQLAlchemy would then compile each
# ``Mapped[...]`` string with eval() while mapping the classes, ~15% of this module's
# import, which every command pays (start-up time).
from datetime import datetime, timezone

from sqlalchemy import (BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String,
                        Text, UniqueConstraint, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "project"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phase: Mapped[str] = mapped_column(String(20), default="planning")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Mailbox(Base):
    __tablename__ = "mailbox"
    __table_args__ = (UniqueConstraint("project_id", "source_user"),
                      UniqueConstraint("project_id", "destination_user"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    source_user: Mapped[str] = mapped_column(String(320))
    source_secret: Mapped[str | None] = mapped_column(Text)  # sealed (secrets.SecretBox)
    destination_user: Mapped[str] = mapped_column(String(320))
    destination_secret: Mapped[str | None] = mapped_column(Text)
    csv_line: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="new")  # new|running|synced|partial|failed
    last_pass_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    messages_copied: Mapped[int] = mapped_column(Integer, default=0)
    bytes_copied: Mapped[int] = mapped_column(BigInteger, default=0)
    messages_skipped: Mapped[int] = mapped_column(Integer, default=0)
    messages_failed: Mapped[int] = mapped_column(Integer, default=0)
    cutover_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # final sync done


class FolderPair(Base):
    __tablename__ = "folder_pair"
    __table_args__ = (UniqueConstraint("mailbox_id", "source_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailbox.id"), index=True)
    source_name: Mapped[str] = mapped_column(String(1000))
    destination_name: Mapped[str] = mapped_column(String(1000))
    display_name: Mapped[str] = mapped_column(String(1000), default="")
    role: Mapped[str | None] = mapped_column(String(20))
    selectable: Mapped[bool] = mapped_column(Boolean, default=True)
    source_uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    source_uidnext: Mapped[int | None] = mapped_column(BigInteger)
    source_highestmodseq: Mapped[int | None] = mapped_column(BigInteger)
    source_messages: Mapped[int | None] = mapped_column(Integer)
    destination_uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    sync_mode: Mapped[str | None] = mapped_column(String(20))
    present: Mapped[bool] = mapped_column(Boolean, default=True)  # still listed on the source
    created: Mapped[bool] = mapped_column(Boolean, default=False)  # mxshift created the dest folder
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


#: A journal row a pass left in flight (engine/reconcile.py). Literal text, not bound
#: values: SQLite uses the partial index ix_message_passing only for a query whose WHERE
#: repeats it (engine/journal.py ``_ANY_PASSING``); migration 0006 creates it.
PASSING = "state IN ('pending', 'moving', 'deleting') OR pending_flags IS NOT NULL"


class Message(Base):
    __tablename__ = "message"
    __table_args__ = (UniqueConstraint("folder_pair_id", "source_uid"),
                      Index("ix_message_passing", "folder_pair_id",
                            sqlite_where=text(PASSING), postgresql_where=text(PASSING)))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folder_pair_id: Mapped[int] = mapped_column(ForeignKey("folder_pair.id"), index=True)
    source_uid: Mapped[int] = mapped_column(BigInteger)
    destination_uid: Mapped[int | None] = mapped_column(BigInteger)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    strong: Mapped[bool] = mapped_column(Boolean, default=True)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    flags: Mapped[str] = mapped_column(Text, default="")  # as last set on the destination
    state: Mapped[str] = mapped_column(String(12), index=True)
    origin: Mapped[str] = mapped_column(String(10), default="appended")  # appended|adopted
    dest_uid_floor: Mapped[int | None] = mapped_column(BigInteger)
    move_pair_id: Mapped[int | None] = mapped_column(Integer)
    move_source_uid: Mapped[int | None] = mapped_column(BigInteger)
    pending_flags: Mapped[str | None] = mapped_column(Text)  # "+a b|-c" intended, not yet settled
    repair: Mapped[str | None] = mapped_column(Text)  # how this copy differs from the source
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)


class Pass(Base):
    __tablename__ = "pass"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailbox.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # prestage|delta|final|sweep
    status: Mapped[str] = mapped_column(String(12), default="running")  # running|ok|partial|failed|interrupted|split
    owner: Mapped[str | None] = mapped_column(String(200))  # host:pid of the process running it
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    copied: Mapped[int] = mapped_column(Integer, default=0)
    bytes_copied: Mapped[int] = mapped_column(BigInteger, default=0)
    adopted: Mapped[int] = mapped_column(Integer, default=0)
    flags_updated: Mapped[int] = mapped_column(Integer, default=0)
    moved: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    # A part of a split pass (engine/folder_tasks.py): the folder pair ids it covers
    # ("3,7,9"; NULL: the whole mailbox) and the plan pass it belongs to. A plan row
    # waits in status "split" until its parts have finished, then holds their totals.
    folders: Mapped[str | None] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("pass.id"), index=True)


class Finding(Base):
    """Something an operator must know about: a skipped message, a repair, a refusal."""

    __tablename__ = "finding"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailbox.id"), index=True)
    pass_id: Mapped[int | None] = mapped_column(ForeignKey("pass.id"))
    kind: Mapped[str] = mapped_column(String(30))  # skipped|repaired|flag_dropped|mass_delete_blocked|folder_error|collision|excluded
    folder: Mapped[str | None] = mapped_column(String(1000))
    source_uid: Mapped[int | None] = mapped_column(BigInteger)
    subject: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Event(Base):
    __tablename__ = "event"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int | None] = mapped_column(ForeignKey("mailbox.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    level: Mapped[str] = mapped_column(String(10))
    text: Mapped[str] = mapped_column(Text)
