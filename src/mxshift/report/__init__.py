"""Rendering a project for the operator and the customer: HTML, CSV, JSON.

Why one data model for three formats: :func:`mxshift.report.data.collect` reads the state
once into plain dicts (the JSON shape below); HTML and CSV are views of it.

JSON shape (``"schema": "mxshift.report/1"``)::

    {"schema": "mxshift.report/1",
     "project": {"name", "phase", "generated_at"},
     "summary": {"mailboxes", "verified", "messages_copied", "bytes_copied", "passes",
                 "findings", "open_findings", "accepted"},
     "mailboxes": [{"source_user", "destination_user", "status", "last_pass_at",
                    "messages_copied", "bytes_copied", "messages_skipped",
                    "passes": [{"kind", "status", "started_at", "finished_at", "copied",
                                "bytes_copied", "skipped", "errors"}],
                    "verification": null | {"verification_id", "at", "deep", "verdict",
                        "error", "counts": {"folders": [{"folder", "source", "destination",
                        "matched", "source_bytes"}], "source_messages", ...},
                        "findings": [{"id", "kind", "folder", "other_folder", "source_uid",
                            "destination_uid", "subject", "from", "date", "size", "reason",
                            "explained", "accepted": null | {"reason", "by", "at"},
                            "open"}]},
                    "gate": {"verified": bool, "open": [str]},
                    "folders": [{"folder", "sync_mode", "last_synced_at"}],
                    "sync_modes": {mode: folder count}}],
     "accepted": [{"mailbox", "kind", "folder", "subject", "reason", "by", "at"}],
     "timeline": [{"at", "mailbox", "text"}]}
"""

from __future__ import annotations

from mxshift.project import OpenProject
from mxshift.report.data import collect
from mxshift.report.render import render_csv, render_html, render_json


def render(proj: OpenProject, fmt: str) -> str:
    data = collect(proj)
    return {"html": render_html, "csv": render_csv, "json": render_json}[fmt](data)


__all__ = ["collect", "render"]
