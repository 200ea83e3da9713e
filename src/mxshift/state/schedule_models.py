"""State for the project's timeline (issue 6): what is planned, what ran, what strayed.

Why in the database and not in the scheduler's memory: ``mxshift run`` may be restarted (or
run on another machine later); whatever it decides must be re-readable, and a slot that was
claimed by one scheduler must never run twice. ``schedule_run`` has a unique key on
(project, kind, slot_at) for exactly that: claiming a slot is an INSERT that only one
process can win.

``setting`` is a small key/value table for things that belong to the project rather than
to a run (the dashboard's hashed admin password and read-only token, for example).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (BigInteger, DateTime, ForeignKey, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column

from mxshift.state.models import Base, utcnow


class Timeline(Base):
    """One row per project: what the operator changed or what happened.

    The plan itself lives in mxshift.toml ``[schedule]``; a non-null interval or time here is
    an operator's override (``mxshift schedule set``) and wins over the file. Facts
    (``prestage_at``, ``cutover_done_at``, ``sweep_ended_at``) are only ever recorded here.
    """

    __tablename__ = "timeline"
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), primary_key=True)
    prestage_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delta_interval_s: Mapped[int | None] = mapped_column(Integer)
    cutover_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # planned
    cutover_done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cutover_forced_by: Mapped[str | None] = mapped_column(String(200))  # who, when --force
    cutover_note: Mapped[str | None] = mapped_column(Text)  # why it was forced / DNS verdicts
    sweep_interval_s: Mapped[int | None] = mapped_column(Integer)
    sweep_window_s: Mapped[int | None] = mapped_column(Integer)
    sweep_ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # early end
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)


class ScheduleRun(Base):
    """A slot of the timeline that a scheduler (or an operator) claimed and ran."""

    __tablename__ = "schedule_run"
    __table_args__ = (UniqueConstraint("project_id", "kind", "slot_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # prestage|delta|final|sweep
    slot_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # the due time served
    trigger: Mapped[str] = mapped_column(String(20), default="scheduler")  # scheduler|manual|catch-up
    owner: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(12), default="running")  # running|ok|partial|failed|interrupted
    mailboxes: Mapped[int] = mapped_column(Integer, default=0)
    copied: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str | None] = mapped_column(Text)


class StrayMessage(Base):
    """A message that reached the old server after cutover and was carried over by a sweep."""

    __tablename__ = "stray_message"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailbox.id"), index=True)
    pass_id: Mapped[int | None] = mapped_column(ForeignKey("pass.id"))
    folder: Mapped[str] = mapped_column(String(1000))
    source_uid: Mapped[int] = mapped_column(BigInteger)
    subject: Mapped[str | None] = mapped_column(Text)
    sender: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    arrived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # INTERNALDATE
    received_by: Mapped[str | None] = mapped_column(Text)  # receiving hop from Received:
    found_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SourceChange(Base):
    """A change on the source after cutover that was logged and deliberately not applied."""

    __tablename__ = "source_change"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailbox.id"), index=True)
    pass_id: Mapped[int | None] = mapped_column(ForeignKey("pass.id"))
    folder: Mapped[str] = mapped_column(String(1000))
    kind: Mapped[str] = mapped_column(String(20))  # deleted|flags
    count: Mapped[int] = mapped_column(Integer, default=0)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Setting(Base):
    """Project-wide key/value settings (e.g. the dashboard's hashed credentials)."""

    __tablename__ = "setting"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
