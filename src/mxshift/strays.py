"""Stray mail: what reached the old server after the cutover, and when propagation ended.

Why a trend: during MX propagation some senders still deliver to the old server; the
admin wants to know when that stopped ("12 in hour 1, 3 in hour 2, 0 since hour 5") to
end the sweep window with confidence. Hours count from the project's cutover and use the
time the old server received the message (INTERNALDATE), not when a sweep found it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.header import decode_header, make_header

from sqlalchemy import select

from mxshift.project import OpenProject
from mxshift.state.models import Mailbox
from mxshift.state.schedule_models import SourceChange, StrayMessage, Timeline

_UNFOLD = re.compile(rb"\r?\n[ \t]+")
_FROM = re.compile(r"\bfrom\s+([^\s;()]+)", re.I)
_BY = re.compile(r"\bby\s+([^\s;()]+)", re.I)


def receiving_hop(header_block: bytes) -> str | None:
    """``"by mail.old.example from mx.sender.example"`` from the topmost Received header.

    The topmost one was added last, by the server that took the message in: the old
    server (or the relay in front of it) that the sender's MX lookup still pointed to."""
    text = _UNFOLD.sub(b" ", header_block).decode("utf-8", "replace")
    for line in text.splitlines():
        if line.lower().startswith("received:"):
            value = line.split(":", 1)[1]
            by, frm = _BY.search(value), _FROM.search(value)
            parts = ([f"by {by.group(1)}"] if by else []) + ([f"from {frm.group(1)}"] if frm else [])
            return " ".join(parts) or value.strip()[:200]
    return None


def header_text(raw: bytes) -> str:
    try:
        return str(make_header(decode_header(raw.decode("utf-8", "replace"))))[:300]
    except Exception:
        return raw.decode("utf-8", "replace")[:300]


@dataclass(frozen=True)
class TrendPoint:
    hour: int    # 1 = the first hour after the cutover
    count: int


def trend(arrivals: list[datetime], cutover: datetime, until: datetime) -> list[TrendPoint]:
    """Stray messages per hour after ``cutover``, every hour up to ``until`` (zeros too)."""
    hours = max(1, int((until - cutover).total_seconds() // 3600) + 1)
    counts = [0] * hours
    for at in arrivals:
        h = int((at - cutover).total_seconds() // 3600)
        h = min(max(h, 0), hours - 1)
        counts[h] += 1
    return [TrendPoint(i + 1, c) for i, c in enumerate(counts)]


def summary(points: list[TrendPoint]) -> str:
    """"12 stray messages in hour 1, 3 in hour 2, 0 since hour 5"."""
    busy = [p for p in points if p.count]
    if not busy:
        return "no stray messages since the cutover"
    first = busy[0]
    parts = [f"{first.count} stray message{'s' if first.count != 1 else ''} in hour "
             f"{first.hour}"] + [f"{p.count} in hour {p.hour}" for p in busy[1:]]
    quiet_from = busy[-1].hour + 1
    if quiet_from <= points[-1].hour:
        parts.append(f"0 since hour {quiet_from}")
    return ", ".join(parts)


def _utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def stray_messages(proj: OpenProject, mailbox_id: int | None = None) -> list[StrayMessage]:
    with proj.db.session() as s:
        q = select(StrayMessage).join(Mailbox).where(Mailbox.project_id == proj.project_id)
        if mailbox_id is not None:
            q = q.where(StrayMessage.mailbox_id == mailbox_id)
        rows = list(s.scalars(q.order_by(StrayMessage.arrived_at, StrayMessage.id)))
        s.expunge_all()
    return rows


def source_changes(proj: OpenProject, mailbox_id: int | None = None) -> list[SourceChange]:
    with proj.db.session() as s:
        q = select(SourceChange).join(Mailbox).where(Mailbox.project_id == proj.project_id)
        if mailbox_id is not None:
            q = q.where(SourceChange.mailbox_id == mailbox_id)
        rows = list(s.scalars(q.order_by(SourceChange.id)))
        s.expunge_all()
    return rows


def stray_trend(proj: OpenProject, now: datetime | None = None) -> list[TrendPoint]:
    """The project's hourly trend since the cutover (empty before it)."""
    with proj.db.session() as s:
        t = s.get(Timeline, proj.project_id)
        cutover = _utc(t.cutover_done_at) if t else None
    if cutover is None:
        return []
    now = now or datetime.now(timezone.utc)
    arrivals = [_utc(m.arrived_at) or _utc(m.found_at) for m in stray_messages(proj)]
    until = max([now] + [a for a in arrivals if a])  # type: ignore[list-item]
    return trend([a for a in arrivals if a], cutover, until)  # type: ignore[misc]


def report_section(proj: OpenProject) -> dict:  # type: ignore[type-arg]
    """The cutover and stray-mail part of the customer report (JSON-ready)."""
    from mxshift.schedule.store import timeline_view
    from mxshift.state.models import Pass

    view = timeline_view(proj)
    users = {m.id: m.source_user for m in proj.mailboxes()}
    rows = stray_messages(proj)
    points = stray_trend(proj)
    per_sweep: dict[tuple[int, int | None], int] = {}
    for r in rows:
        per_sweep[(r.mailbox_id, r.pass_id)] = per_sweep.get((r.mailbox_id, r.pass_id), 0) + 1
    with proj.db.session() as s:
        started = {p.id: p.started_at for p in s.scalars(select(Pass).where(
            Pass.id.in_([k[1] for k in per_sweep if k[1] is not None])))}

    def iso(dt: datetime | None) -> str | None:
        dt = _utc(dt)
        return dt.isoformat() if dt else None

    return {
        "phase": view.phase,
        "cutover_at": iso(view.cutover_done_at or view.cutover_at),
        "cutover_done": view.cutover_done_at is not None,
        "cutover_forced_by": view.cutover_forced_by,
        "sweep_until": iso(view.sweep_until),
        "trend": [{"hour": p.hour, "count": p.count} for p in points],
        "summary": summary(points) if view.cutover_done_at else None,
        "per_sweep": [{"mailbox": users.get(mb), "sweep_started_at": iso(started.get(pid)),
                       "count": n} for (mb, pid), n in sorted(per_sweep.items(),
                                                              key=lambda kv: kv[0])],
        "messages": [{"mailbox": users.get(r.mailbox_id), "folder": r.folder,
                      "arrived_at": iso(r.arrived_at), "subject": r.subject, "from": r.sender,
                      "size": r.size, "received_by": r.received_by} for r in rows],
        "source_changes": [{"mailbox": users.get(c.mailbox_id), "folder": c.folder,
                            "kind": c.kind, "count": c.count, "at": iso(c.at)}
                           for c in source_changes(proj)],
    }
