"""ImapStore against real Dovecot servers: connecting (TLS, logins, admin logins), the
Store contracts of ``mxshift.store.base``, servers without UIDPLUS/MOVE, quota and size
refusals, and UID sets too large to list one by one. No mocks: every test talks IMAP."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest

from mxshift.errors import EndpointError, FolderError, MailboxError, MessageError, Retry
from mxshift.mapping import Namespace
from mxshift.store.auth import Credentials
from mxshift.store.imap import ImapStore
from mxshift.testbed.dovecot import DovecotServer, free_port

MB = 1024 * 1024
WHEN = datetime(2021, 3, 14, 15, 9, 26, tzinfo=timezone(timedelta(hours=2)))


def message(subject: str, body: bytes = b"hello\r\n") -> bytes:
    mid = f"<{subject.replace(' ', '-')}@test.mxshift>"
    return (f"Message-ID: {mid}\r\nDate: Sun, 14 Mar 2021 15:09:26 +0200\r\n"
            f"From: a@example.org\r\nTo: b@example.org\r\nSubject: {subject}\r\n\r\n"
            ).encode() + body


def security_of(server: DovecotServer) -> str:
    return server.config.tls or "none"


OpenStore = Callable[..., ImapStore]


@pytest.fixture
def open_store() -> Iterator[OpenStore]:
    """``open_store(server, user, password=None, **connect_kwargs)``; closed at teardown."""
    opened: list[ImapStore] = []

    def _open(server: DovecotServer, user: str, password: str | None = None,
              **kwargs: object) -> ImapStore:
        creds = kwargs.pop("credentials", None) or Credentials(
            user, password if password is not None else server.password(user))
        params: dict[str, object] = dict(
            host=server.host, port=server.port, security=security_of(server),
            ca_file=str(server.ca_file) if server.ca_file else None, timeout=20)
        params.update(kwargs)
        store = ImapStore.connect(credentials=creds, **params)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


def fill(store: ImapStore, folder: str, count: int, prefix: str = "m") -> list[int]:
    uids = [store.append(folder, message(f"{prefix}{i}"), (), WHEN) for i in range(count)]
    assert all(isinstance(u, int) for u in uids), uids
    return uids  # type: ignore[return-value]


# -- connecting ----------------------------------------------------------------------------------
TLS_SERVERS = [pytest.param("dovecot_tls", id="implicit-tls"),
               pytest.param("dovecot_starttls", id="starttls")]


@pytest.mark.parametrize("fixture", TLS_SERVERS)
def test_tls_with_trusted_ca_connects(request: pytest.FixtureRequest, fixture: str,
                                      open_store: OpenStore) -> None:
    server: DovecotServer = request.getfixturevalue(fixture)
    user, _pw = server.new_user()
    store = open_store(server, user)
    assert "INBOX" in {f.name for f in store.list_folders()}


@pytest.mark.parametrize("fixture", TLS_SERVERS)
def test_tls_untrusted_certificate_is_final_endpoint_error(
        request: pytest.FixtureRequest, fixture: str, open_store: OpenStore) -> None:
    server: DovecotServer = request.getfixturevalue(fixture)
    user, _pw = server.new_user()
    with pytest.raises(EndpointError) as err:
        open_store(server, user, ca_file=None)
    assert "not trusted" in str(err.value)
    assert err.value.retry == Retry.FINAL


@pytest.mark.parametrize("fixture", TLS_SERVERS)
def test_tls_without_verification_connects(request: pytest.FixtureRequest, fixture: str,
                                           open_store: OpenStore) -> None:
    server: DovecotServer = request.getfixturevalue(fixture)
    user, _pw = server.new_user()
    store = open_store(server, user, ca_file=None, verify_tls=False)
    assert "INBOX" in {f.name for f in store.list_folders()}


def test_wrong_password_is_final_mailbox_error_without_the_password(
        dovecot_src: DovecotServer, open_store: OpenStore) -> None:
    user, _pw = dovecot_src.new_user()
    wrong = "Wr0ng-Secret-xyzzy"
    with pytest.raises(MailboxError) as err:
        open_store(dovecot_src, user, wrong)
    text = str(err.value)
    assert err.value.retry == Retry.FINAL
    assert user in text
    assert "AUTHENTICATIONFAILED" in text, text  # the server's own words
    assert wrong not in text and wrong not in repr(err.value)
    assert wrong not in repr(Credentials(user, wrong))


def test_closed_port_is_endpoint_error(dovecot_src: DovecotServer,
                                       open_store: OpenStore) -> None:
    user, _pw = dovecot_src.new_user()
    with pytest.raises(EndpointError) as err:
        open_store(dovecot_src, user, port=free_port(dovecot_src.host), timeout=5)
    assert "cannot connect" in str(err.value)
    assert err.value.retry == Retry.TEMPORARY


@pytest.mark.parametrize("mode", ["sasl", "dovecot"])
def test_admin_login_lands_in_the_users_mailbox(dovecot_tls: DovecotServer, mode: str,
                                                open_store: OpenStore) -> None:
    user, _pw = dovecot_tls.new_user()
    client = dovecot_tls.connect(user)
    try:
        client.append("INBOX", message(f"for {user}"))
    finally:
        client.logout()
    assert dovecot_tls.master_user is not None
    admin, admin_pw = dovecot_tls.master_user
    store = open_store(dovecot_tls, user, credentials=Credentials(
        user, admin_pw, admin_user=admin, admin_mode=mode))  # type: ignore[arg-type]
    status = store.select("INBOX", readonly=True)
    assert status.messages == 1
    flags = store.uid_flags()
    [meta] = store.fetch_meta(flags)
    assert f"<for-{user}@test.mxshift>".encode() in meta.headers

    with pytest.raises(MailboxError) as err:
        open_store(dovecot_tls, user, credentials=Credentials(
            user, "not-the-admin-pw", admin_user=admin, admin_mode=mode))  # type: ignore[arg-type]
    assert err.value.retry == Retry.FINAL and "not-the-admin-pw" not in str(err.value)


def test_close_logs_out_and_tolerates_a_dead_connection(dovecot_src: DovecotServer,
                                                        open_store: OpenStore) -> None:
    user, _pw = dovecot_src.new_user()
    store = open_store(dovecot_src, user)
    assert dovecot_src.connection_count(user) == 1
    store.close()
    deadline = time.monotonic() + 5
    while dovecot_src.connection_count(user) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dovecot_src.connection_count(user) == 0
    store.close()  # already gone: no error


DEAD_CONNECTION_CALLS: dict[str, Callable[[ImapStore], object]] = {
    "status": lambda s: s.status("INBOX"),
    "select": lambda s: s.select("INBOX", readonly=True),
    "uid_flags": lambda s: s.uid_flags(),
    "append": lambda s: s.append("INBOX", message("late"), (), WHEN),
    "create_folder": lambda s: s.create_folder("Late"),
    "create_folders": lambda s: s.create_folders(["Late", "Later"]),
    "move": lambda s: s.move([1], "INBOX"),
}


@pytest.mark.parametrize("call", list(DEAD_CONNECTION_CALLS))
def test_a_dropped_connection_is_an_endpoint_error(dovecot_src: DovecotServer, call: str,
                                                   open_store: OpenStore) -> None:
    """A BYE/EOF is the server's trouble, never a refused message or a bad folder."""
    user, _pw = dovecot_src.new_user()
    store = open_store(dovecot_src, user)
    fill(store, "INBOX", 1)
    store.select("INBOX", readonly=False)
    dovecot_src.doveadm("kick", user)
    time.sleep(0.05)
    with pytest.raises(EndpointError) as err:
        DEAD_CONNECTION_CALLS[call](store)
    assert err.value.retry == Retry.TEMPORARY
    store.close()  # tolerated


# -- the Store contracts on a full-featured server -----------------------------------------------
def test_namespace_folders_and_idempotent_create(dovecot_src: DovecotServer,
                                                 open_store: OpenStore) -> None:
    user, _pw = dovecot_src.new_user()
    store = open_store(dovecot_src, user)
    assert store.namespace() == Namespace(prefix="", separator="/")
    store.create_folder("Sent")
    store.create_folder("Sent")  # already there: no error
    store.create_folder("Projects/2021")
    store.create_folder("Projects/2021")
    folders = {f.name: f.flags for f in store.list_folders()}
    assert {"INBOX", "Sent", "Projects", "Projects/2021"} <= set(folders)
    assert "\\Sent" in folders["Sent"]
    store.delete_folder("Projects/2021")
    assert "Projects/2021" not in {f.name for f in store.list_folders()}


def test_status_and_select(dovecot_src: DovecotServer, open_store: OpenStore) -> None:
    user, _pw = dovecot_src.new_user()
    store = open_store(dovecot_src, user)
    raws = [message("one"), message("two", b"x" * 500 + b"\r\n")]
    for raw in raws:
        store.append("INBOX", raw, (), WHEN)
    st = store.status("INBOX")
    assert st.uidvalidity > 0 and st.uidnext == 3 and st.messages == 2
    assert isinstance(st.highestmodseq, int) and st.highestmodseq > 0
    assert st.size == sum(len(r) for r in raws)
    assert st.permanent_flags is None

    sel = store.select("INBOX", readonly=True)
    assert (sel.uidvalidity, sel.uidnext, sel.messages) == (st.uidvalidity, 3, 2)
    assert sel.highestmodseq == st.highestmodseq
    # EXAMINE answers PERMANENTFLAGS (): nothing can be stored in a read-only session;
    # what a destination accepts comes from a read-write SELECT
    assert sel.permanent_flags == frozenset()
    rw = store.select("INBOX", readonly=False)
    assert rw.permanent_flags is not None and "\\*" in rw.permanent_flags

    with pytest.raises(FolderError):
        store.append("No such folder", message("lost"), (), WHEN)  # [TRYCREATE]
    with pytest.raises(FolderError):
        store.status("No such folder")
    with pytest.raises(FolderError):
        store.select("No such folder", readonly=True)


def test_append_and_fetch_round_trip_without_setting_seen(dovecot_src: DovecotServer,
                                                          open_store: OpenStore) -> None:
    user, _pw = dovecot_src.new_user()
    store = open_store(dovecot_src, user)
    raw = message("round trip", b"body line\r\n\xe9t\xe9 8bit\r\n")
    flags = {"\\Flagged", "\\Answered", "$Forwarded"}
    uid = store.append("INBOX", raw, flags, WHEN)
    assert uid == 1
    store.select("INBOX", readonly=False)  # read-write: a plain FETCH BODY[] would set \Seen

    [got] = list(store.fetch_raw([uid, 99]))  # unknown UIDs are silently absent
    assert got.uid == uid and got.raw == raw
    assert got.flags == frozenset(flags)
    assert got.internaldate.tzinfo is not None and got.internaldate == WHEN

    assert store.uid_flags() == {uid: frozenset(flags)}  # still not \Seen

    [meta] = store.fetch_meta([uid, 99])
    assert meta.uid == uid and meta.size == len(raw)
    assert meta.flags == frozenset(flags)
    assert meta.internaldate.tzinfo is not None and meta.internaldate == WHEN
    assert b"Message-ID: <round-trip@test.mxshift>" in meta.headers
    assert b"Subject: round trip" in meta.headers
    assert b"To:" not in meta.headers
    assert store.fetch_meta([]) == [] and list(store.fetch_raw([])) == []


def test_uids_from_excludes_lower_uids_even_past_the_end(dovecot_src: DovecotServer,
                                                         open_store: OpenStore) -> None:
    user, _pw = dovecot_src.new_user()
    store = open_store(dovecot_src, user)
    store.create_folder("Empty")
    store.select("Empty", readonly=True)
    assert store.uids_from(1) == [] and store.uid_flags() == {}
    uids = fill(store, "INBOX", 3)
    store.select("INBOX", readonly=True)
    assert store.uids_from(0) == uids
    assert store.uids_from(1) == uids
    assert store.uids_from(2) == uids[1:]
    assert store.uids_from(uids[-1]) == [uids[-1]]
    assert store.uids_from(uids[-1] + 1) == []  # "N:*" would still match the highest UID
    assert store.uids_from(1000) == []


def test_add_and_remove_flags_including_keywords(dovecot_src: DovecotServer,
                                                 open_store: OpenStore) -> None:
    user, _pw = dovecot_src.new_user()
    store = open_store(dovecot_src, user)
    u1, u2, u3 = fill(store, "INBOX", 3)
    store.select("INBOX", readonly=False)
    store.add_flags([u1, u3], ["\\Seen", "$Label1"])
    store.add_flags([], ["\\Seen"])  # no-ops, no error
    store.add_flags([u2], [])
    assert store.uid_flags() == {u1: frozenset({"\\Seen", "$Label1"}), u2: frozenset(),
                                 u3: frozenset({"\\Seen", "$Label1"})}
    store.remove_flags([u1, u2], ["$Label1"])
    store.remove_flags([u3], ["\\Seen"])
    assert store.uid_flags() == {u1: frozenset({"\\Seen"}), u2: frozenset(),
                                 u3: frozenset({"$Label1"})}


def test_another_sessions_flag_changes_stay_with_their_messages(
        dovecot_src: DovecotServer, open_store: OpenStore) -> None:
    """Dovecot reports them as ``* <seq> FETCH (FLAGS ...)`` without a UID; once UIDs and
    sequence numbers differ, keying that by UID would give one message another's flags."""
    user, _pw = dovecot_src.new_user()
    store = open_store(dovecot_src, user)
    u1, u2, u3, u4 = fill(store, "INBOX", 4)
    store.select("INBOX", readonly=False)
    store.expunge([u1])  # now UIDs 2, 3, 4 are sequence numbers 1, 2, 3

    def other_session_flags(uid: int, flag: str) -> None:
        client = dovecot_src.connect(user)
        try:
            client.select_folder("INBOX")
            client.add_flags([uid], [flag])
        finally:
            client.logout()

    other_session_flags(u3, "\\Flagged")
    [meta] = store.fetch_meta([u2])
    assert meta.flags == frozenset()
    other_session_flags(u4, "$Other")
    assert store.uid_flags() == {u2: frozenset(), u3: frozenset({"\\Flagged"}),
                                 u4: frozenset({"$Other"})}
    other_session_flags(u4, "\\Seen")
    assert [(m.uid, m.flags) for m in store.fetch_raw([u3])] == [(u3, frozenset({"\\Flagged"}))]


def test_move_returns_copyuid_map(dovecot_src: DovecotServer, open_store: OpenStore) -> None:
    user, _pw = dovecot_src.new_user()
    store = open_store(dovecot_src, user)
    assert {"UIDPLUS", "MOVE"} <= store.capabilities
    store.create_folder("Archive")
    fill(store, "Archive", 2, prefix="old")  # target UIDs start at 3
    u1, u2, u3 = fill(store, "INBOX", 3)
    store.select("INBOX", readonly=False)
    assert store.move([], "Archive") == {}
    mapping = store.move([u1, u3], "Archive")
    assert mapping == {u1: 3, u3: 4}
    assert set(store.uid_flags()) == {u2}
    store.select("Archive", readonly=True)
    moved = {m.uid: m.raw for m in store.fetch_raw([3, 4])}
    assert moved == {3: message("m0"), 4: message("m2")}


def test_expunge_removes_exactly_the_given_uids(dovecot_src: DovecotServer,
                                                open_store: OpenStore) -> None:
    user, _pw = dovecot_src.new_user()
    store = open_store(dovecot_src, user)
    u1, u2, u3 = fill(store, "INBOX", 3)
    client = dovecot_src.connect(user)  # the user marks a message \Deleted meanwhile
    try:
        client.select_folder("INBOX")
        client.add_flags([u2], ["\\Deleted"])
    finally:
        client.logout()
    store.select("INBOX", readonly=False)
    store.expunge([])
    store.expunge([u1])
    assert store.uid_flags() == {u2: frozenset({"\\Deleted"}), u3: frozenset()}


def test_quota_is_none_without_quota_capability(dovecot_src: DovecotServer,
                                                open_store: OpenStore) -> None:
    user, _pw = dovecot_src.new_user()
    store = open_store(dovecot_src, user)
    assert "QUOTA" not in store.capabilities
    assert store.quota() is None


# -- a server without UIDPLUS, MOVE, CONDSTORE... -------------------------------------------------
def test_nocaps_append_move_expunge(dovecot_nocaps: DovecotServer,
                                    open_store: OpenStore) -> None:
    user, _pw = dovecot_nocaps.new_user()
    store = open_store(dovecot_nocaps, user)
    assert not {"UIDPLUS", "MOVE", "CONDSTORE", "QRESYNC", "LITERAL+"} & store.capabilities
    # Dovecot still sends APPENDUID; unadvertised, it must not be relied on
    assert [store.append("INBOX", message(f"m{i}"), (), WHEN) for i in range(4)] == [None] * 4
    store.create_folder("Archive")
    st = store.status("INBOX")
    assert st.messages == 4 and st.highestmodseq is None

    store.select("INBOX", readonly=False)
    u1, u2, u3, u4 = sorted(store.uid_flags())
    assert store.move([u1], "Archive") is None  # COPY + \Deleted + EXPUNGE
    assert set(store.uid_flags()) == {u2, u3, u4}
    store.select("Archive", readonly=True)
    [(_uid, moved)] = [(m.uid, m.raw) for m in store.fetch_raw(store.uids_from(1))]
    assert moved == message("m0")

    # the user marks u2 \Deleted: a plain EXPUNGE would take it too, so ours stays marked
    store.select("INBOX", readonly=False)
    store.add_flags([u2], ["\\Deleted"])
    store.expunge([u3])
    flags = store.uid_flags()
    assert set(flags) == {u2, u3, u4}
    assert "\\Deleted" in flags[u2] and "\\Deleted" in flags[u3]


def test_disabled_move_uses_copy_fallback(dovecot_src: DovecotServer,
                                          open_store: OpenStore) -> None:
    user, _pw = dovecot_src.new_user()
    store = open_store(dovecot_src, user, disabled=frozenset({"move"}))
    assert "MOVE" not in store.capabilities and "UIDPLUS" in store.capabilities
    u1, u2 = fill(store, "INBOX", 2)
    store.create_folder("Archive")
    store.select("INBOX", readonly=False)

    def no_move(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("MOVE sent although disabled")

    store._c.move = no_move  # type: ignore[method-assign]  # a tripwire, not a mock
    assert store.move([u2], "Archive") == {u2: 1}  # COPYUID of the COPY
    assert set(store.uid_flags()) == {u1}
    assert store.status("Archive").messages == 1


# -- quota and size limits ----------------------------------------------------------------------
def test_quota_and_oversize_refusal_keeps_the_connection(dovecot_limited: DovecotServer,
                                                         open_store: OpenStore) -> None:
    user, _pw = dovecot_limited.new_user()
    store = open_store(dovecot_limited, user)
    q = store.quota()
    assert q is not None and q.limit_bytes == 5 * MB and q.used_bytes == 0
    # Dovecot refuses before reading the literal; a non-synchronising {n+} literal would
    # then be read as commands. imaplib's APPEND always waits for "+", even with LITERAL+.
    assert "LITERAL+" in store.capabilities

    big = message("big", (b"x" * 998 + b"\r\n") * 1500)  # ~1.5 MB
    with pytest.raises(MessageError) as err:
        store.append("INBOX", big, (), WHEN)
    assert "[LIMIT]" in str(err.value) and "size" in str(err.value).lower(), err.value
    assert err.value.retry == Retry.FINAL
    # the refusal came before the literal was sent: the connection is still in step
    assert isinstance(store.append("INBOX", message("small"), (), WHEN), int)
    assert store.status("INBOX").messages == 1


def test_over_quota_is_mailbox_error(dovecot_limited: DovecotServer,
                                     open_store: OpenStore) -> None:
    user, _pw = dovecot_limited.new_user()
    store = open_store(dovecot_limited, user)
    chunk = message("chunk", (b"z" * 998 + b"\r\n") * 900)  # ~0.9 MB
    with pytest.raises(MailboxError) as err:
        for _ in range(7):
            store.append("INBOX", chunk, (), WHEN)
    assert "[OVERQUOTA]" in str(err.value), err.value
    q = store.quota()
    assert q is not None and q.used_bytes is not None and 4 * MB < q.used_bytes <= 5 * MB
    assert store.status("INBOX").messages == 5  # the connection survives this too


# -- large UID sets -----------------------------------------------------------------------------
def test_fetch_over_1200_uids_with_gaps(dovecot_src: DovecotServer,
                                        open_store: OpenStore) -> None:
    user, _pw = dovecot_src.new_user()
    client = dovecot_src.connect(user)
    try:
        for start in range(0, 1200, 400):
            client.multiappend("INBOX", [message(f"bulk{i}", b"x\r\n")
                                         for i in range(start, start + 400)])
    finally:
        client.logout()
    store = open_store(dovecot_src, user)
    store.select("INBOX", readonly=False)
    flags = store.uid_flags()
    assert sorted(flags) == list(range(1, 1201))
    metas = store.fetch_meta(flags)
    assert [m.uid for m in metas] == list(range(1, 1201))
    assert all(m.size == len(message(f"bulk{m.uid - 1}", b"x\r\n")) for m in metas)

    # every third UID: 800 separate UIDs, a set that cannot be written as one range
    odd = [u for u in flags if u % 3]
    store.add_flags(odd, ["\\Seen"])
    seen = {u for u, f in store.uid_flags().items() if "\\Seen" in f}
    assert seen == set(odd)
    assert [m.uid for m in store.fetch_meta(odd + [5000])] == odd
    assert len(list(store.fetch_raw(odd))) == len(odd)
    store.expunge(odd)
    assert sorted(store.uid_flags()) == [u for u in range(1, 1201) if u % 3 == 0]


# -- selecting ----------------------------------------------------------------------------------
def test_a_read_write_select_of_the_selected_folder_is_reused_until_it_may_be_stale(
        dovecot_src: DovecotServer, open_store: OpenStore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """SELECT again the folder this connection has selected read-write (as a delta's copy
    step does after its moves out of it): not sent, the status reused. Sent again after
    an APPEND to it, another selection or an EXAMINE."""
    import imaplib

    user, _pw = dovecot_src.new_user()
    store = open_store(dovecot_src, user)
    store.create_folder("Other")
    uids = fill(store, "INBOX", 3)
    sent: list[bytes] = []
    real = imaplib.IMAP4.send

    def send(self: imaplib.IMAP4, data: bytes) -> None:  # a spy: the real send follows
        verb = data.split(None, 2)[1].upper() if data.startswith(self.tagpre) else b""
        if verb in (b"SELECT", b"EXAMINE"):
            sent.append(verb)
        real(self, data)

    monkeypatch.setattr(imaplib.IMAP4, "send", send)
    first = store.select("INBOX", readonly=False)
    assert store.move([uids[0]], "Other") is not None
    again = store.select("INBOX", readonly=False)
    assert again == first and sent == [b"SELECT"]  # reused after the move out
    fill(store, "INBOX", 1)
    after_append = store.select("INBOX", readonly=False)
    assert sent == [b"SELECT"] * 2
    assert after_append.uidnext == first.uidnext + 1 and after_append.messages == 3
    store.select("Other", readonly=False)
    store.select("INBOX", readonly=False)
    assert sent == [b"SELECT"] * 4  # another folder in between
    store.select("INBOX", readonly=True)
    store.select("INBOX", readonly=True)
    store.select("INBOX", readonly=False)
    assert sent == [b"SELECT"] * 4 + [b"EXAMINE"] * 2 + [b"SELECT"]  # read-only: never reused
    assert store.select("INBOX", readonly=False).messages == 3
    assert len(sent) == 7  # reused again
