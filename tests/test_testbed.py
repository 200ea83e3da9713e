"""The Dovecot testbed: every variant really starts, answers and behaves as advertised.

These tests also pin down server behaviour the migration engine relies on (what Dovecot
does to odd messages, the exact refusal texts), so a Dovecot upgrade that changes them
shows up here first."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from pathlib import Path

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from mxshift.testbed.dovecot import DovecotServer, DovecotStartError, start_dovecot
from mxshift.testbed.dovecot_config import MB, DovecotConfig

FULL_CAPS = {b"CONDSTORE", b"QRESYNC", b"UIDPLUS", b"MOVE", b"MULTIAPPEND", b"SPECIAL-USE",
             b"LITERAL+"}
SPECIAL = {"Drafts": b"\\Drafts", "Sent": b"\\Sent", "Trash": b"\\Trash", "Junk": b"\\Junk",
           "Archive": b"\\Archive"}


def message(subject: str, body: bytes = b"hello\r\n") -> bytes:
    return (f"From: a@example.org\r\nTo: b@example.org\r\nSubject: {subject}\r\n"
            "Message-ID: <{subject}@example.org>\r\n\r\n").encode() + body


def append_uid(response: bytes) -> int:
    # b"[APPENDUID <validity> <uid>] Append completed ..."
    return int(response.split(b"]", 1)[0].split()[-1])


def folder_flags(client: IMAPClient) -> dict[str, set[bytes]]:
    return {name: set(flags) for flags, _sep, name in client.list_folders()}


# -- every variant starts and answers ------------------------------------------------------
@pytest.mark.parametrize("fixture", ["dovecot_src", "dovecot_dst", "dovecot_maildirpp",
                                     "dovecot_nocaps", "dovecot_tls", "dovecot_starttls",
                                     "dovecot_limited"])
def test_variant_starts_and_a_new_user_logs_in(request: pytest.FixtureRequest,
                                               fixture: str) -> None:
    server: DovecotServer = request.getfixturevalue(fixture)
    assert server.running
    user, password = server.new_user()
    client = server.connect(user, password)
    try:
        assert client.noop()[0] is not None
        client.append("INBOX", message("first"))
        client.select_folder("INBOX")
        assert len(client.search()) == 1
    finally:
        client.logout()
    assert (server.maildir(user) / "cur").is_dir() or (server.maildir(user) / "new").is_dir()


def test_new_users_log_in_immediately(dovecot_src: DovecotServer) -> None:
    # passwd-file re-reads are rate-limited to once a second: per-user files avoid that
    for _ in range(3):
        user, _password = dovecot_src.new_user("quick")
        dovecot_src.connect(user).logout()


def test_wrong_password_is_refused(dovecot_src: DovecotServer) -> None:
    user, _password = dovecot_src.new_user()
    with pytest.raises(LoginError):
        dovecot_src.connect(user, "wrong")


def test_connection_count(dovecot_dst: DovecotServer) -> None:
    user, _password = dovecot_dst.new_user("count")
    assert dovecot_dst.connection_count(user) == 0
    clients = [dovecot_dst.connect(user) for _ in range(3)]
    try:
        assert dovecot_dst.connection_count(user) == 3
        assert dovecot_dst.connection_count() >= 3
    finally:
        for client in clients:
            client.logout()
    deadline = time.monotonic() + 5
    while dovecot_dst.connection_count(user) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert dovecot_dst.connection_count(user) == 0


# -- capabilities ----------------------------------------------------------------------------
def test_default_advertises_everything_after_login(dovecot_src: DovecotServer) -> None:
    user, _password = dovecot_src.new_user()
    client = dovecot_src.connect(user)
    try:
        caps = set(client.capabilities())
    finally:
        client.logout()
    assert FULL_CAPS <= caps
    assert {b"IMAP4REV1", b"IDLE", b"NAMESPACE", b"ENABLE"} <= caps


def test_nocaps_lacks_the_optional_extensions(dovecot_nocaps: DovecotServer) -> None:
    client = dovecot_nocaps.client()
    try:
        before = set(client.capabilities())
        user, password = dovecot_nocaps.new_user()
        client.login(user, password)
        after = set(client.capabilities())
    finally:
        client.logout()
    for caps in (before, after):
        assert not FULL_CAPS & caps
        assert {b"IMAP4REV1", b"IDLE", b"NAMESPACE", b"ENABLE", b"UNSELECT"} <= caps


def test_nocaps_still_stores_mail(dovecot_nocaps: DovecotServer) -> None:
    user, _password = dovecot_nocaps.new_user()
    client = dovecot_nocaps.connect(user)
    try:
        response = client.append("INBOX", message("plain"))
        # Dovecot hides UIDPLUS from CAPABILITY but still answers [APPENDUID ...]:
        # the engine must decide by the advertised capabilities, not by response codes
        assert b"APPENDUID" in response
        assert client.enable("CONDSTORE") == [b"CONDSTORE"]  # likewise still accepted
        client.select_folder("INBOX")
        assert len(client.search()) == 1
    finally:
        client.logout()


# -- namespaces and special-use ---------------------------------------------------------------
def test_default_namespace(dovecot_src: DovecotServer) -> None:
    user, _password = dovecot_src.new_user()
    client = dovecot_src.connect(user)
    try:
        ns = client.namespace()
    finally:
        client.logout()
    assert [tuple(n) for n in ns.personal] == [("", "/")]


def test_maildirpp_namespace_is_inbox_dot(dovecot_maildirpp: DovecotServer) -> None:
    user, _password = dovecot_maildirpp.new_user()
    client = dovecot_maildirpp.connect(user)
    try:
        ns = client.namespace()
        client.create_folder("INBOX.Projects")
        client.create_folder("INBOX.Projects.2024")
        folders = {name: sep for _flags, sep, name in client.list_folders()}
    finally:
        client.logout()
    assert [tuple(n) for n in ns.personal] == [("INBOX.", ".")]
    assert folders == {"INBOX": b".", "INBOX.Projects": b".", "INBOX.Projects.2024": b"."}


def test_special_use_flagged_when_created_not_auto_created(dovecot_src: DovecotServer) -> None:
    user, _password = dovecot_src.new_user()
    client = dovecot_src.connect(user)
    try:
        assert set(folder_flags(client)) == {"INBOX"}
        for name in SPECIAL:
            client.create_folder(name)
        client.create_folder("Other")
        flags = folder_flags(client)
    finally:
        client.logout()
    for name, flag in SPECIAL.items():
        assert flag in flags[name]
    assert not flags["Other"] & set(SPECIAL.values())


def test_special_use_under_maildirpp_prefix(dovecot_maildirpp: DovecotServer) -> None:
    user, _password = dovecot_maildirpp.new_user()
    client = dovecot_maildirpp.connect(user)
    try:
        client.create_folder("INBOX.Sent")
        flags = folder_flags(client)
    finally:
        client.logout()
    assert b"\\Sent" in flags["INBOX.Sent"]


# -- TLS ---------------------------------------------------------------------------------------
def test_tls_verifies_with_ca_file(dovecot_tls: DovecotServer) -> None:
    assert dovecot_tls.ca_file is not None and dovecot_tls.ca_file.is_file()
    context = ssl.create_default_context(cafile=str(dovecot_tls.ca_file))
    user, password = dovecot_tls.new_user()
    client = IMAPClient(dovecot_tls.host, port=dovecot_tls.port, ssl=True,
                        ssl_context=context, timeout=10)
    try:
        client.login(user, password)
        assert client.noop()
    finally:
        client.logout()


def test_tls_verification_fails_without_ca_file(dovecot_tls: DovecotServer) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(dovecot_tls.host, port=dovecot_tls.port, ssl=True,
                   ssl_context=ssl.create_default_context(), timeout=10)


def test_starttls(dovecot_starttls: DovecotServer) -> None:
    user, password = dovecot_starttls.new_user()
    plain = IMAPClient(dovecot_starttls.host, port=dovecot_starttls.port, ssl=False, timeout=10)
    try:
        assert b"STARTTLS" in plain.capabilities()
        plain.starttls(dovecot_starttls.ssl_context())
        assert isinstance(plain.socket(), ssl.SSLSocket)
        plain.login(user, password)
        assert plain.noop()
    finally:
        plain.logout()


def test_starttls_verification_fails_without_ca_file(dovecot_starttls: DovecotServer) -> None:
    plain = IMAPClient(dovecot_starttls.host, port=dovecot_starttls.port, ssl=False, timeout=10)
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            plain.starttls(ssl.create_default_context())
    finally:
        with contextlib.suppress(OSError):  # the failed handshake already closed it
            plain.shutdown()


# -- master users --------------------------------------------------------------------------------
@pytest.fixture
def tls_user_with_mail(dovecot_tls: DovecotServer) -> str:
    user, _password = dovecot_tls.new_user("owner")
    client = dovecot_tls.connect(user)
    try:
        client.append("INBOX", message(f"for-{user}"))
    finally:
        client.logout()
    return user


def _assert_in_mailbox_of(client: IMAPClient, user: str) -> None:
    client.select_folder("INBOX", readonly=True)
    assert len(client.search(["SUBJECT", f"for-{user}"])) == 1
    assert len(client.search()) == 1


def test_master_user_login_with_separator(dovecot_tls: DovecotServer,
                                          tls_user_with_mail: str) -> None:
    assert dovecot_tls.master_user is not None
    master, master_password = dovecot_tls.master_user
    client = dovecot_tls.client()
    try:
        client.login(f"{tls_user_with_mail}*{master}", master_password)
        _assert_in_mailbox_of(client, tls_user_with_mail)
    finally:
        client.logout()


def test_master_user_sasl_plain_with_authorization_identity(
        dovecot_tls: DovecotServer, tls_user_with_mail: str) -> None:
    assert dovecot_tls.master_user is not None
    master, master_password = dovecot_tls.master_user
    client = dovecot_tls.client()
    try:
        # imapclient 4.1.0: plain_login(identity, password, authorization_identity)
        # sends "authzid \0 identity \0 password"
        client.plain_login(master, master_password, authorization_identity=tls_user_with_mail)
        _assert_in_mailbox_of(client, tls_user_with_mail)
    finally:
        client.logout()


def test_master_password_is_no_user_password(dovecot_tls: DovecotServer,
                                             tls_user_with_mail: str) -> None:
    assert dovecot_tls.master_user is not None
    _master, master_password = dovecot_tls.master_user
    with pytest.raises(LoginError):
        dovecot_tls.connect(tls_user_with_mail, master_password)


# -- limits ----------------------------------------------------------------------------------------
def test_oversize_append_refused_with_limit(dovecot_limited: DovecotServer) -> None:
    user, _password = dovecot_limited.new_user()
    client = dovecot_limited.connect(user)
    try:
        assert not any(c.startswith(b"APPENDLIMIT") for c in client.capabilities())
        client.append("INBOX", message("small", b"y" * (MB - 4096)))  # under 1 MB: stored
        with pytest.raises(IMAPClientError) as refused:
            client.append("INBOX", message("big", (b"x" * 998 + b"\r\n") * 2100))  # ~2 MB
        client.select_folder("INBOX")
        assert len(client.search()) == 1
    finally:
        client.logout()
    # imaplib says "append failed: <text>" for a tagged NO ("command error: BAD" for BAD)
    text = str(refused.value)
    assert text.startswith("append failed: [LIMIT] Mail size is larger than the maximum size "
                           "allowed by server configuration"), text


def test_getquotaroot_reports_limit_and_overquota_refusal(
        dovecot_limited: DovecotServer) -> None:
    user, _password = dovecot_limited.new_user()
    client = dovecot_limited.connect(user)
    try:
        roots, quotas = client.get_quota_root("INBOX")
        assert roots.quota_roots == ["User quota"]
        assert [(q.resource, q.usage, q.limit) for q in quotas] == [("STORAGE", 0, 5120)]
        chunk = message("chunk", (b"z" * 998 + b"\r\n") * 900)  # ~0.9 MB
        with pytest.raises(IMAPClientError) as refused:
            for _ in range(10):
                client.append("INBOX", chunk)
        _roots, quotas = client.get_quota_root("INBOX")
    finally:
        client.logout()
    assert str(refused.value).startswith(
        "append failed: [OVERQUOTA] Quota exceeded (mailbox for user is full)"), refused.value
    assert 4000 < quotas[0].usage <= 5120


# -- how Dovecot stores odd messages (facts the engine's checksums must allow for) ----------------
@pytest.mark.parametrize(("raw", "stored"), [
    pytest.param(b"Subject: lf\n\nline1\nline2\n",
                 b"Subject: lf\r\n\r\nline1\r\nline2\r\n", id="bare-LF-becomes-CRLF"),
    pytest.param(b"Subject: cr\r\n\r\nab\rcd\r\n",
                 b"Subject: cr\r\n\r\nab\r\ncd\r\n", id="bare-CR-becomes-CRLF"),
    pytest.param(b"Subject: nul\r\n\r\nab\x00cd\r\n",
                 b"Subject: nul\r\n\r\nab\x80cd\r\n", id="NUL-becomes-0x80"),
    pytest.param(b"Subject: 8bit\r\n\r\nh\xe9\r\n",
                 b"Subject: 8bit\r\n\r\nh\xe9\r\n", id="8bit-unchanged"),
])
def test_append_normalisation(dovecot_src: DovecotServer, raw: bytes, stored: bytes) -> None:
    user, _password = dovecot_src.new_user()
    client = dovecot_src.connect(user)
    try:
        uid = append_uid(client.append("INBOX", raw))
        client.select_folder("INBOX", readonly=True)
        data = client.fetch([uid], ["BODY.PEEK[]", "RFC822.SIZE"])[uid]
    finally:
        client.logout()
    assert data[b"BODY[]"] == stored
    assert data[b"RFC822.SIZE"] == len(stored)


# -- lifecycle ---------------------------------------------------------------------------------------
def test_stop_is_idempotent_and_frees_the_port(tmp_path: Path) -> None:
    server = start_dovecot(tmp_path / "dc", name="lifecycle")
    try:
        user, _password = server.new_user()
        server.connect(user).logout()
    finally:
        server.stop()
    server.stop()
    assert not server.running
    with pytest.raises(OSError):
        socket.create_connection((server.host, server.port), timeout=2).close()


def test_restart_on_same_dir_keeps_users_and_mail(tmp_path: Path) -> None:
    first = start_dovecot(tmp_path / "dc", name="restart")
    try:
        user, _password = first.new_user()
        client = first.connect(user)
        client.append("INBOX", message("kept"))
        client.logout()
    finally:
        first.stop()
    again = start_dovecot(tmp_path / "dc", name="restart", port=first.port)
    try:
        client = again.connect(user)  # password read back from the users dir
        try:
            client.select_folder("INBOX", readonly=True)
            assert len(client.search(["SUBJECT", "kept"])) == 1
        finally:
            client.logout()
        assert again.new_user()[0] != user
    finally:
        again.stop()


def test_start_failure_reports_log_tail(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DovecotStartError, match="Address already in use"):
            start_dovecot(tmp_path / "dc", name="clash", port=port, config=DovecotConfig())
