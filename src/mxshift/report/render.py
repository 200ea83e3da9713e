"""The three views of the report data: JSON (the data itself), CSV (one row per finding),
HTML (one self-contained file, styles inline, no script, made to print)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

CSV_COLUMNS = ("mailbox", "destination_user", "verification_id", "verified_at", "finding_id",
               "kind", "folder", "other_folder", "source_uid", "destination_uid", "subject",
               "from", "date", "size", "reason", "explained", "open", "accepted_reason",
               "accepted_by")


def render_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def render_csv(data: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for mb in data["mailboxes"]:
        v = mb["verification"]
        if v is None:
            continue
        for f in v["findings"]:
            acc = f["accepted"] or {}
            w.writerow([mb["source_user"], mb["destination_user"], v["verification_id"],
                        v["at"], f["id"], f["kind"], f["folder"], f["other_folder"] or "",
                        "" if f["source_uid"] is None else f["source_uid"],
                        "" if f["destination_uid"] is None else f["destination_uid"],
                        f["subject"] or "", f["from"] or "", f["date"] or "",
                        "" if f["size"] is None else f["size"], f["reason"],
                        "yes" if f["explained"] else "no", "yes" if f["open"] else "no",
                        acc.get("reason", ""), acc.get("by") or ""])
    return buf.getvalue()


def _size(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


def render_html(data: dict[str, Any]) -> str:
    env = Environment(loader=PackageLoader("mxshift.report", "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["size"] = _size
    return env.get_template("report.html").render(**data)
