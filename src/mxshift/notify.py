"""Telling the operator: an email over SMTP and/or a webhook POST with a JSON body.

Why here and fail-soft: notifications go to whoever runs the migration, never into the
migrated mailboxes; and a mail relay that is down must not turn a good pass into a failed
one, so delivery errors are returned (and logged as events) rather than raised.
"""

from __future__ import annotations

import json
import ssl
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from mxshift.config import NotifySettings

if TYPE_CHECKING:
    from mxshift.project import OpenProject


def _email(cfg: NotifySettings, project: str, event: str, summary: str,
           details: dict[str, object]) -> None:
    import smtplib
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(cfg.to)
    msg["Subject"] = f"[mxshift] {project}: {summary}"
    msg.set_content(f"{summary}\n\nevent: {event}\nproject: {project}\n\n"
                    + json.dumps(details, indent=2, default=str) + "\n")
    assert cfg.smtp_host is not None
    if cfg.smtp_security == "tls":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(cfg.smtp_host, cfg.smtp_port, timeout=30,
                                              context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=30)
    with smtp:
        if cfg.smtp_security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        if cfg.smtp_user and cfg.smtp_password:
            smtp.login(cfg.smtp_user, cfg.smtp_password.resolve())
        smtp.send_message(msg)


def _webhook(url: str, body: dict[str, object]) -> None:
    import urllib.request

    req = urllib.request.Request(url, data=json.dumps(body, default=str).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - operator's URL
        resp.read()


def notify(cfg: NotifySettings, project: str, event: str, summary: str,
           details: dict[str, object] | None = None) -> list[str]:
    """Send ``event`` where the project file says; returns delivery errors (empty: sent)."""
    if event not in cfg.events:
        return []
    details = details or {}
    errors: list[str] = []
    body = {"project": project, "event": event, "summary": summary, "details": details,
            "at": datetime.now(timezone.utc).isoformat()}
    if cfg.smtp_host:
        import smtplib  # here, not at the top: most runs send nothing (start-up time)

        try:
            _email(cfg, project, event, summary, details)
        except (OSError, smtplib.SMTPException) as exc:
            errors.append(f"email to {', '.join(cfg.to)} failed: {exc}")
    if cfg.webhook:
        try:
            _webhook(cfg.webhook, body)
        except OSError as exc:
            errors.append(f"webhook {cfg.webhook} failed: {exc}")
    return errors


def announce(proj: "OpenProject", event: str, summary: str,
             details: dict[str, object] | None = None) -> list[str]:
    """Notify for a project and record any delivery failure as a warning event."""
    from mxshift.state.models import Event

    errors = notify(proj.config.notify, proj.config.name, event, summary, details)
    if errors:
        with proj.db.session() as s, s.begin():
            for e in errors:
                s.add(Event(level="warning", text=f"notification ({event}): {e}"))
    return errors
