"""Reading the state for the dashboard: short read transactions on their own connections.

Why a reader engine of its own: :mod:`mxshift.state.db` starts *every* transaction with
``BEGIN IMMEDIATE`` (right for writers: no lock upgrades). A dashboard that polls every
second must not take the write lock to read, or it would queue behind ``mxshift sync``
and make the passes wait for it. In WAL mode a plain deferred ``BEGIN`` reads a snapshot
and never blocks nor is blocked by the writer, so the dashboard reads through an engine
that issues exactly that. Each page reads in one transaction with a fixed, small number of
queries (grouped per mailbox, never one query per mailbox).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, create_engine, event, exists, func, select
from sqlalchemy.orm import Session

from mxshift.project import OpenProject
from mxshift.state.db import StateDB
from mxshift.state.models import Finding, FolderPair, Mailbox, Message, Pass, Project
from mxshift.state.verify_models import Acceptance, Verification, VerifyFinding


def reader_engine(url: str) -> Engine:
    """An engine for reads only. SQLite: WAL snapshot reads with a plain deferred BEGIN."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA query_only=ON")  # a bug here can never write
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN")

    return engine


def read_only(proj: OpenProject) -> OpenProject:
    """The same project, reading through :func:`reader_engine`. The library's read
    functions (verify.run.latest, verify.gate.gate...) take a project or a StateDB, so they
    run unchanged on it. Never ``close()`` it: dispose its engine with the app."""
    return dataclasses.replace(proj, db=StateDB(reader_engine(database_url_of(proj))))


def database_url_of(proj: OpenProject) -> str:
    return proj.db.engine.url.render_as_string(hide_password=False)


def utc(when: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; they were written in UTC."""
    if when is not None and when.tzinfo is None:
        return when.replace(tzinfo=timezone.utc)
    return when


def iso(when: datetime | None) -> str | None:
    when = utc(when)
    return when.isoformat() if when else None


def rate(p: Pass, now: datetime) -> tuple[float, float]:
    """(messages/s, bytes/s) of a pass so far; zero at its very start."""
    started = utc(p.started_at)
    seconds = (now - started).total_seconds() if started else 0.0
    if seconds <= 0.5:
        return 0.0, 0.0
    return (p.copied or 0) / seconds, (p.bytes_copied or 0) / seconds


def pass_json(p: Pass, now: datetime) -> dict[str, Any]:
    mps, bps = rate(p, now) if p.status == "running" else (0.0, 0.0)
    if p.status != "running" and p.seconds:
        mps, bps = (p.copied or 0) / p.seconds, (p.bytes_copied or 0) / p.seconds
    return {"id": p.id, "kind": p.kind, "status": p.status, "started_at": iso(p.started_at),
            "finished_at": iso(p.finished_at), "copied": p.copied or 0,
            "bytes_copied": p.bytes_copied or 0, "adopted": p.adopted or 0,
            "flags_updated": p.flags_updated or 0, "moved": p.moved or 0,
            "deleted": p.deleted or 0, "skipped": p.skipped or 0, "errors": p.errors or 0,
            "seconds": p.seconds, "messages_per_second": round(mps, 2),
            "bytes_per_second": round(bps), "error": p.error}


def mailbox_rows(s: Session, project_id: int, *, state: str | None = None,
                 now: datetime | None = None) -> list[dict[str, Any]]:
    """One dict per mailbox: where it stands and, while a pass runs, that pass's progress.

    Five queries whatever the number of mailboxes."""
    now = now or datetime.now(timezone.utc)
    q = select(Mailbox).where(Mailbox.project_id == project_id).order_by(Mailbox.id)
    if state:
        q = q.where(Mailbox.status == state)
    boxes = list(s.scalars(q))
    counts: dict[tuple[int, str], int] = {}
    for mb_id, st, n in s.execute(
            select(FolderPair.mailbox_id, Message.state, func.count(Message.id))
            .join(Message, Message.folder_pair_id == FolderPair.id)
            .join(Mailbox, Mailbox.id == FolderPair.mailbox_id)
            .where(Mailbox.project_id == project_id)
            .group_by(FolderPair.mailbox_id, Message.state)):
        counts[(mb_id, st)] = n
    # A split pass's parts (engine/folder_tasks.py) roll up into their plan row: the
    # plan is the mailbox's last pass; a running part still shows its live progress.
    last_ids = (select(func.max(Pass.id)).join(Mailbox, Mailbox.id == Pass.mailbox_id)
                .where(Mailbox.project_id == project_id, Pass.parent_id.is_(None))
                .group_by(Pass.mailbox_id))
    last = {p.mailbox_id: p for p in s.scalars(select(Pass).where(Pass.id.in_(last_ids)))}
    running = {p.mailbox_id: p for p in s.scalars(
        select(Pass).join(Mailbox, Mailbox.id == Pass.mailbox_id)
        .where(Mailbox.project_id == project_id, Pass.status == "running")
        .order_by(Pass.id))}
    ver_ids = (select(func.max(Verification.id))
               .join(Mailbox, Mailbox.id == Verification.mailbox_id)
               .where(Mailbox.project_id == project_id).group_by(Verification.mailbox_id))
    latest_v = {v.mailbox_id: v for v in s.scalars(
        select(Verification).where(Verification.id.in_(ver_ids)))}
    still_open = dict(s.execute(  # verification id -> findings neither explained nor accepted
        select(VerifyFinding.verification_id, func.count(VerifyFinding.id))
        .where(VerifyFinding.verification_id.in_(ver_ids), VerifyFinding.explained.is_(False),
               ~exists().where(Acceptance.mailbox_id == VerifyFinding.mailbox_id,
                               Acceptance.key == VerifyFinding.key))
        .group_by(VerifyFinding.verification_id)).all())
    rows = []
    for m in boxes:
        lp, rp = last.get(m.id), running.get(m.id)
        rows.append({
            "id": m.id, "source_user": m.source_user, "destination_user": m.destination_user,
            "status": m.status, "messages_on_destination": counts.get((m.id, "copied"), 0),
            "messages_skipped": counts.get((m.id, "skipped"), 0),
            "messages_copied": m.messages_copied or 0, "bytes_copied": m.bytes_copied or 0,
            "messages_failed": m.messages_failed or 0,
            "last_pass_at": iso(m.last_pass_at),
            "last_pass": None if lp is None else {"kind": lp.kind, "status": lp.status,
                                                  "errors": lp.errors or 0},
            "errors": (lp.errors or 0) if lp else 0, "last_error": m.last_error,
            "running": None if rp is None else pass_json(rp, now),
            "verification": verification_label(latest_v.get(m.id), still_open, m.last_pass_at,
                                               running=rp is not None),
        })
    return rows


def verification_label(v: Verification | None, still_open: dict[int, int],
                       last_pass_at: datetime | None, *, running: bool = False) -> str | None:
    """The mailbox's verification as the gate sees it: ``outdated`` when a pass ran (or
    runs) after it, ``verified`` once every open finding has been accepted since (as
    verify.run.load)."""
    if v is None:
        return None
    if running or (last_pass_at is not None
                   and utc(v.at) < utc(last_pass_at)):  # type: ignore[operator]
        return "outdated"
    if v.verdict == "failed" and not still_open.get(v.id):
        return "verified"
    return v.verdict


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Project totals from :func:`mailbox_rows` (pure)."""
    by_state: dict[str, int] = {}
    for r in rows:
        by_state[r["status"]] = by_state.get(r["status"], 0) + 1
    live = [r["running"] for r in rows if r["running"]]
    return {"mailboxes": len(rows), "by_state": dict(sorted(by_state.items())),
            "messages_on_destination": sum(r["messages_on_destination"] for r in rows),
            "messages_copied": sum(r["messages_copied"] for r in rows),
            "bytes_copied": sum(r["bytes_copied"] for r in rows),
            "messages_skipped": sum(r["messages_skipped"] for r in rows),
            "running_passes": len(live),
            "messages_per_second": round(sum(p["messages_per_second"] for p in live), 2),
            "bytes_per_second": sum(p["bytes_per_second"] for p in live)}


SORT_KEYS = ("source_user", "destination_user", "status", "messages_on_destination",
             "bytes_copied", "messages_skipped", "errors", "last_pass_at", "verification")


def sort_rows(rows: list[dict[str, Any]], key: str | None,
              descending: bool) -> list[dict[str, Any]]:
    """Sort by one column; unknown keys leave the order alone; None sorts first (pure)."""
    if key not in SORT_KEYS:
        return rows
    def k(r: dict[str, Any]) -> tuple[bool, Any]:
        v = r[key]
        return (v is not None, v if v is not None else 0)
    return sorted(rows, key=k, reverse=descending)


def project_row(s: Session, project_id: int) -> dict[str, Any]:
    p = s.get(Project, project_id)
    assert p is not None
    return {"id": p.id, "name": p.name, "phase": p.phase, "created_at": iso(p.created_at)}


def mailbox_detail(s: Session, project_id: int, mailbox_id: int,
                   now: datetime | None = None) -> dict[str, Any] | None:
    """Folder pairs with counts, pass history, and the pass findings (skipped items...).

    The verification and its accept-able findings come from :mod:`mxshift.verify.run`."""
    now = now or datetime.now(timezone.utc)
    m = s.get(Mailbox, mailbox_id)
    if m is None or m.project_id != project_id:
        return None
    per_pair: dict[tuple[int, str], int] = {}
    for pair_id, st, n in s.execute(
            select(Message.folder_pair_id, Message.state, func.count(Message.id))
            .join(FolderPair, FolderPair.id == Message.folder_pair_id)
            .where(FolderPair.mailbox_id == m.id).group_by(Message.folder_pair_id, Message.state)):
        per_pair[(pair_id, st)] = n
    folders = [{"source": f.source_name, "destination": f.destination_name,
                "display": f.display_name or f.source_name, "role": f.role,
                "selectable": f.selectable, "present": f.present, "sync_mode": f.sync_mode,
                "source_messages": f.source_messages,
                "on_destination": per_pair.get((f.id, "copied"), 0),
                "skipped": per_pair.get((f.id, "skipped"), 0),
                "last_synced_at": iso(f.last_synced_at)}
               for f in s.scalars(select(FolderPair).where(FolderPair.mailbox_id == m.id)
                                  .order_by(FolderPair.source_name))]
    passes = [pass_json(p, now) for p in s.scalars(
        select(Pass).where(Pass.mailbox_id == m.id, Pass.parent_id.is_(None))
        .order_by(Pass.id.desc()).limit(50))]
    issues = [{"id": f.id, "kind": f.kind, "folder": f.folder, "source_uid": f.source_uid,
               "subject": f.subject, "size": f.size, "reason": f.reason,
               "pass_id": f.pass_id, "at": iso(f.created_at)}
              for f in s.scalars(select(Finding).where(Finding.mailbox_id == m.id)
                                 .order_by(Finding.id.desc()).limit(500))]
    return {"id": m.id, "source_user": m.source_user, "destination_user": m.destination_user,
            "status": m.status, "last_pass_at": iso(m.last_pass_at),
            "last_error": m.last_error, "messages_copied": m.messages_copied or 0,
            "bytes_copied": m.bytes_copied or 0, "messages_failed": m.messages_failed or 0,
            "cutover_at": iso(m.cutover_at), "folders": folders, "passes": passes,
            "pass_findings": issues}
