"""The data of each page, as plain JSON-able dicts: the HTML template and the ``.json`` twin
render the very same dict, so the two can never disagree.

Every function here takes a *read-only* project (:func:`mxshift.web.reads.read_only`): its
database is the reader engine, so nothing on a page takes the write lock.

Why optional imports for schedule, cutover and strays: the dashboard is built while those
modules are being written; each section says "not available" until its module exists,
instead of the whole dashboard failing.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select

from mxshift.project import OpenProject
from mxshift.state.dns_models import DnsCheck
from mxshift.web import reads


def jsonable(value: Any) -> Any:
    """Dataclasses, datetimes and timedeltas (seconds) into JSON values, recursively."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return reads.iso(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(f"mxshift.{module}")
    except ImportError:
        return None


def timeline(proj: OpenProject) -> dict[str, Any] | None:
    mod = _optional("schedule")
    if mod is None or not hasattr(mod, "timeline"):
        return None
    return jsonable(mod.timeline(proj))  # type: ignore[no-any-return]


def stray_trend(proj: OpenProject) -> list[dict[str, Any]] | None:
    mod = _optional("strays")
    if mod is None or not hasattr(mod, "stray_trend"):
        return None
    return jsonable(mod.stray_trend(proj))  # type: ignore[no-any-return]


def strays_of(proj: OpenProject, mailbox_id: int) -> list[dict[str, Any]] | None:
    mod = _optional("strays")
    if mod is None or not hasattr(mod, "stray_messages"):
        return None
    return [{"folder": m.folder, "source_uid": m.source_uid, "subject": m.subject,
             "sender": m.sender, "size": m.size, "arrived_at": reads.iso(m.arrived_at),
             "received_by": m.received_by, "found_at": reads.iso(m.found_at)}
            for m in mod.stray_messages(proj, mailbox_id=mailbox_id)]


def dns_state(proj: OpenProject) -> list[dict[str, Any]]:
    """Per project domain: the latest stored check with each record's verdict."""
    out = []
    with proj.db.session() as s:
        for domain in proj.config.domains:
            row = s.scalar(select(DnsCheck).where(DnsCheck.project_id == proj.project_id,
                                                  DnsCheck.domain == domain)
                           .order_by(DnsCheck.id.desc()).limit(1))
            if row is None:
                out.append({"domain": domain, "verdict": None, "checked_at": None,
                            "checks": [], "propagation": None})
                continue
            details = json.loads(row.details or "{}")
            out.append({"domain": domain, "verdict": row.verdict,
                        "checked_at": reads.iso(row.checked_at), "provider": row.provider,
                        "checks": details.get("checks", []),
                        "propagation": details.get("propagation")})
    return out


def verification_state(proj: OpenProject, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The verdicts and exactly what blocks ``mxshift complete`` (nothing is written)."""
    from mxshift.verify import gate as gate_mod

    by_verdict: dict[str, int] = {}
    for r in rows:
        key = r["verification"] or "not verified"
        by_verdict[key] = by_verdict.get(key, 0) + 1
    blockers = [f"{g.mailbox}: {item}" for g in gate_mod.gate(proj) for item in g.open]
    dns = gate_mod.dns_gate(proj)
    blockers += [f"DNS: {item}" for item in dns.open]
    if not rows:
        blockers.insert(0, "no mailboxes imported")
    return {"complete": gate_mod.is_complete(proj), "by_verdict": by_verdict,
            "blockers": blockers}


def mailboxes(proj: OpenProject, *, state: str | None = None,
              sort: str | None = None, descending: bool = False) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    with proj.db.session() as s:
        every = reads.mailbox_rows(s, proj.project_id, now=now)
    rows = [r for r in every if not state or r["status"] == state]
    states = sorted({r["status"] for r in every})
    return {"generated_at": now.isoformat(), "state": state, "states": states,
            "sort": sort if sort in reads.SORT_KEYS else None, "desc": descending,
            "totals": reads.totals(every),
            "mailboxes": reads.sort_rows(rows, sort, descending)}


def overview(proj: OpenProject) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    with proj.db.session() as s:
        project = reads.project_row(s, proj.project_id)
        rows = reads.mailbox_rows(s, proj.project_id, now=now)
    return {"generated_at": now.isoformat(), "project": project,
            "timeline": timeline(proj), "dns": dns_state(proj),
            "totals": reads.totals(rows), "strays": stray_trend(proj),
            "verification": verification_state(proj, rows)}


def mailbox(proj: OpenProject, mailbox_id: int) -> dict[str, Any] | None:
    from mxshift.verify import gate as gate_mod
    from mxshift.verify import run as run_mod

    with proj.db.session() as s:
        detail = reads.mailbox_detail(s, proj.project_id, mailbox_id)
    if detail is None:
        return None
    latest = run_mod.latest(proj.db, mailbox_id)
    detail["verification"] = None if latest is None else jsonable(latest.as_json())
    mb = next((m for m in proj.mailboxes() if m.id == mailbox_id), None)
    detail["gate"] = None if mb is None else jsonable(gate_mod.mailbox_gate(proj, mb))
    detail["strays"] = strays_of(proj, mailbox_id)
    return detail


def cutover_state(proj: OpenProject) -> dict[str, Any]:
    from mxshift.verify import gate as gate_mod

    with proj.db.session() as s:
        project = reads.project_row(s, proj.project_id)
    dns = gate_mod.dns_gate(proj)
    return {"project": project, "dns": dns_state(proj), "dns_ready": not dns.open,
            "dns_blockers": dns.open, "timeline": timeline(proj),
            "available": _optional("cutover") is not None}
