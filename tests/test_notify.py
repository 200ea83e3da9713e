"""Operator notifications, received by a real SMTP server (aiosmtpd) and a real local HTTP
listener: pass failure, verification failure, completion; a dead relay loses nothing."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from mxshift.config import parse_project
from mxshift.errors import ConfigError
from mxshift.project import import_mailboxes, open_project
from mxshift.state.models import Event
from mxshift.sync import sync
from mxshift.testbed.dovecot import free_port
from mxshift.verify.gate import complete
from mxshift.verify.run import verify


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    ctl = Controller(inbox, hostname="127.0.0.1", port=free_port())
    ctl.start()
    yield ctl.port, inbox
    ctl.stop()


@pytest.fixture
def webhook():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def _project(directory: Path, src, dst, rows: list[str], notify: str) -> None:
    directory.mkdir(parents=True)
    (directory / "mxshift.toml").write_text(
        f'[project]\nname = "acme"\n\n'
        f'[source]\nhost = "127.0.0.1"\nport = {src.port}\nsecurity = "none"\n\n'
        f'[destination]\nhost = "127.0.0.1"\nport = {dst.port}\nsecurity = "none"\n\n'
        f"[notify]\n{notify}\n")
    (directory / "users.csv").write_text(
        "source_user,source_password,destination_user,destination_password\n"
        + "\n".join(rows) + "\n")
    import_mailboxes(directory, directory / "users.csv")


def test_notify_table_is_validated(tmp_path) -> None:
    base = '[source]\nhost = "a"\n[destination]\nhost = "b"\n[notify]\n'
    cfg = parse_project(base + 'smtp_host = "relay"\nto = ["ops@x"]\nwebhook = "http://h/"\n',
                        path="mxshift.toml", directory=tmp_path)
    assert cfg.notify.smtp_host == "relay" and cfg.notify.smtp_security == "starttls"
    assert cfg.notify.events == ("pass_failed", "verify_failed", "complete")
    with pytest.raises(ConfigError, match="unknown event 'nope'"):
        parse_project(base + 'events = ["nope"]\n', path="mxshift.toml", directory=tmp_path)
    with pytest.raises(ConfigError, match="nobody to send to"):
        parse_project(base + 'smtp_host = "relay"\n', path="mxshift.toml", directory=tmp_path)


def test_failure_verification_and_completion_reach_the_operator(
        dovecot_src, dovecot_dst, smtp, webhook, tmp_path) -> None:
    port, inbox = smtp
    url, posted = webhook
    su, sp = dovecot_src.new_user()
    du, dp = dovecot_dst.new_user()
    c = dovecot_src.connect(su, sp)
    c.append("INBOX", b"Subject: hi\r\nMessage-ID: <n1@t>\r\n\r\nbody\r\n")
    c.logout()
    directory = tmp_path / "p"
    _project(directory, dovecot_src, dovecot_dst, [f"{su},{sp},{du},wrong-password"],
             f'smtp_host = "127.0.0.1"\nsmtp_port = {port}\nsmtp_security = "none"\n'
             f'from = "mxshift@ops.test"\nto = ["admin@ops.test"]\nwebhook = "{url}"\n')
    proj = open_project(directory)
    try:
        [failed] = sync(proj)
        assert failed.status == "failed"
        assert [p["event"] for p in posted] == ["pass_failed"]
        assert posted[0]["project"] == "acme" and su in posted[0]["details"]["mailboxes"]
        sender, rcpts, content = inbox.messages[0]
        assert (sender, rcpts) == ("mxshift@ops.test", ["admin@ops.test"])
        assert b"Subject: [mxshift] acme: 1 mailbox pass(es) failed" in content
        assert b"wrong-password" not in content  # never a secret in a notification
    finally:
        proj.close()
    (directory / "users.csv").write_text(
        "source_user,source_password,destination_user,destination_password\n"
        f"{su},{sp},{du},{dp}\n")
    import_mailboxes(directory, directory / "users.csv")
    proj = open_project(directory)
    try:
        assert sync(proj)[0].status == "ok"
        d = dovecot_dst.connect(du, dp)
        d.append("INBOX", b"Subject: intruder\r\n\r\nnot from the source\r\n")
        d.logout()
        [v] = verify(proj)
        if v.verdict == "verified":  # extra mail the user received is explained, not open
            d = dovecot_dst.connect(du, dp)
            d.select_folder("INBOX")
            d.add_flags(d.search(["SUBJECT", "hi"]), ["\\Flagged"])
            d.logout()
            [v] = verify(proj)
        assert v.verdict == "failed"
        assert posted[-1]["event"] == "verify_failed"
        d = dovecot_dst.connect(du, dp)
        d.select_folder("INBOX")
        d.remove_flags(d.search(["SUBJECT", "hi"]), ["\\Flagged"])
        d.logout()
        assert verify(proj)[0].verdict == "verified"
        assert complete(proj).completed
        assert posted[-1]["event"] == "complete"
        assert any(b"migration complete" in m[2] for m in inbox.messages)
    finally:
        proj.close()


def test_a_dead_relay_is_recorded_and_the_pass_result_stands(
        dovecot_src, dovecot_dst, tmp_path) -> None:
    su, sp = dovecot_src.new_user()
    du, _ = dovecot_dst.new_user()
    directory = tmp_path / "p"
    _project(directory, dovecot_src, dovecot_dst, [f"{su},{sp},{du},bad"],
             f'smtp_host = "127.0.0.1"\nsmtp_port = {free_port()}\nsmtp_security = "none"\n'
             'to = ["admin@ops.test"]\n')
    proj = open_project(directory)
    try:
        [r] = sync(proj)
        assert r.status == "failed" and "login" in (r.error or "")
        with proj.db.session() as s:
            texts = [e.text for e in s.scalars(select(Event).where(Event.level == "warning"))]
        assert any("notification (pass_failed): email to admin@ops.test failed" in t
                   for t in texts), texts
    finally:
        proj.close()
