"""A login takes the capabilities from the server's greeting instead of asking for them,
except after STARTTLS (what came before TLS is not trusted), and what the store ends up
with is what the server says once logged in. Real Dovecots; the commands are counted
on imaplib's ``send`` (instrumentation, nothing is answered for the server)."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator

import pytest

from mxshift.store.auth import Credentials
from mxshift.store.imap import ImapStore
from mxshift.testbed.dovecot import DovecotServer


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    verbs: list[str] = []
    real = imaplib.IMAP4.send

    def send(self: imaplib.IMAP4, data: bytes) -> None:
        if data.startswith(self.tagpre):
            verbs.append(data.split(None, 2)[1].decode().upper())
        real(self, data)

    monkeypatch.setattr(imaplib.IMAP4, "send", send)
    yield verbs


def _connect(server: DovecotServer, user: str, password: str) -> ImapStore:
    return ImapStore.connect(host=server.host, port=server.port,
                             security=server.config.tls or "none",
                             credentials=Credentials(user, password),
                             ca_file=str(server.ca_file) if server.ca_file else None,
                             timeout=20)


@pytest.mark.parametrize("fixture", ["dovecot_src", "dovecot_tls"])
def test_login_sends_no_capability_command(request: pytest.FixtureRequest, fixture: str,
                                           sent: list[str]) -> None:
    server: DovecotServer = request.getfixturevalue(fixture)
    user, password = server.new_user()
    sent.clear()
    store = _connect(server, user, password)
    try:
        assert sent == ["LOGIN", "ENABLE"]
        # what the store uses is the logged-in server's list, not the greeting's
        typ, data = store._c._imap.capability()
        asked = set(data[-1].decode().upper().split())
        assert typ == "OK" and store.capabilities == frozenset(asked)
        assert "QRESYNC" in store.capabilities and "AUTH=PLAIN" not in store.capabilities
        assert "NAMESPACE" in store.capabilities and store.namespace().separator
    finally:
        store.close()


def test_starttls_asks_for_capabilities_again(dovecot_starttls: DovecotServer,
                                              sent: list[str]) -> None:
    user, password = dovecot_starttls.new_user()
    sent.clear()
    store = _connect(dovecot_starttls, user, password)
    try:
        assert sent == ["STARTTLS", "CAPABILITY", "LOGIN", "ENABLE"]
        assert "QRESYNC" in store.capabilities
    finally:
        store.close()


def test_a_tagged_answer_with_another_tag_still_aborts(dovecot_src: DovecotServer) -> None:
    """The one tagged-response pattern of every connection still refuses a tag we did
    not send, as imaplib's per-connection pattern did."""
    store = _connect(dovecot_src, *dovecot_src.new_user())
    imap = store._c._imap
    other = b"AAAA1" if imap.tagpre != b"AAAA" else b"PPPP1"
    try:
        assert imap.tagre.match(imap.tagpre + b"7 OK done")
        line = other + b" OK not ours\r\n"
        real_file = imap.file
        imap.file = type("F", (), {"readline": lambda self, n=-1: line})()
        with pytest.raises(imaplib.IMAP4.abort, match="unexpected tagged response"):
            imap._get_response()
        imap.file = real_file
    finally:
        store._c.shutdown()
