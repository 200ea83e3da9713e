"""The store's side of back-pressure on a real Dovecot: a dropped session is reconnected
and the folder re-selected; an APPEND whose answer was lost is not sent twice."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pytest

from harness import Bed, make_message
from mxshift.errors import EndpointError
from mxshift.store.auth import Credentials
from mxshift.store.imap import ImapStore
from mxshift.store.throttle import ThrottleSettings
from mxshift.testbed.throttle_proxy import Rule, ThrottleProxy

WHEN = datetime(2021, 3, 14, 15, 9, 26, tzinfo=timezone.utc)

CALLS: dict[str, Callable[[ImapStore], object]] = {
    "status": lambda s: s.status("INBOX"),
    "uid_flags": lambda s: s.uid_flags(),
    "append": lambda s: s.append("INBOX", make_message(900), (), WHEN),
    "create_folder": lambda s: s.create_folder("Late"),
    "create_folders": lambda s: s.create_folders(["Late", "Later"]),
    "add_flags": lambda s: s.add_flags([1], ["\\Seen"]),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_a_kicked_session_is_reconnected_and_the_folder_reselected(dovecot_src, call) -> None:
    user, pw = dovecot_src.new_user()
    store = ImapStore.connect(host=dovecot_src.host, port=dovecot_src.port, security="none",
                              credentials=Credentials(user, pw),
                              throttle_settings=ThrottleSettings())
    try:
        store.append("INBOX", make_message(1), (), WHEN)
        store.select("INBOX", readonly=False)
        dovecot_src.doveadm("kick", user)
        deadline = time.monotonic() + 5
        while dovecot_src.connection_count(user) and time.monotonic() < deadline:
            time.sleep(0.05)
        CALLS[call](store)
        assert store.reconnects == 1
        assert store.uid_flags().keys() >= {1}   # still in INBOX after the reconnect
    finally:
        store.close()


def test_an_append_cut_off_is_not_repeated_and_the_next_pass_settles_it(
        dovecot_src, dovecot_dst, tmp_path: Path) -> None:
    """The connection dies with the APPEND sent: it may or may not be stored. The store
    does not guess (a retry could duplicate); the pass stops and the next one is exact."""
    bed = Bed.make(dovecot_src, dovecot_dst, tmp_path / "bed")
    try:
        bed.put(("INBOX",), [make_message(i) for i in range(6)])
        with ThrottleProxy((dovecot_dst.host, dovecot_dst.port)) as dp:
            rule = dp.add(Rule("APPEND", "drop", skip=1))

            def destination() -> ImapStore:
                return ImapStore.connect(host="127.0.0.1", port=dp.port, security="none",
                                         credentials=Credentials(bed.du, bed.dp),
                                         throttle_settings=ThrottleSettings())

            from mxshift.engine.mailbox_pass import MailboxPass
            from mxshift.engine.settings import PassSettings

            result = MailboxPass(bed.db, bed.mailbox_id,  # type: ignore[arg-type]
                                 source=lambda: bed.store(dovecot_src, bed.su, bed.sp),
                                 destination=destination,
                                 settings=PassSettings(batch_messages=2)).run()
            assert rule.fired == 1
            assert result.status == "failed"
            assert result.error and "connection lost during APPEND" in result.error
            again = MailboxPass(bed.db, bed.mailbox_id,  # type: ignore[arg-type]
                                source=lambda: bed.store(dovecot_src, bed.su, bed.sp),
                                destination=destination,
                                settings=PassSettings(batch_messages=2)).run()
        assert again.status == "ok", again.error
        assert bed.differences() == []
        assert result.copied + again.copied == 6
    finally:
        bed.close()


def test_without_throttle_settings_back_pressure_fails_fast(dovecot_src) -> None:
    user, pw = dovecot_src.new_user()
    with ThrottleProxy((dovecot_src.host, dovecot_src.port)) as proxy:
        proxy.add(Rule("STATUS", "no", "[UNAVAILABLE] Server Unavailable. 15"))
        store = ImapStore.connect(host="127.0.0.1", port=proxy.port, security="none",
                                  credentials=Credentials(user, pw))
        try:
            with pytest.raises(EndpointError, match="UNAVAILABLE"):
                store.status("INBOX")
        finally:
            store.close()


def test_a_folder_gone_while_reconnecting_is_a_folder_error_at_once(dovecot_src) -> None:
    from mxshift.errors import FolderError

    user, pw = dovecot_src.new_user()
    store = ImapStore.connect(host=dovecot_src.host, port=dovecot_src.port, security="none",
                              credentials=Credentials(user, pw),
                              throttle_settings=ThrottleSettings(default_wait=5))
    try:
        store.create_folder("Gone")
        store.select("Gone", readonly=True)
        dovecot_src.doveadm("kick", user)
        deadline = time.monotonic() + 5
        while dovecot_src.connection_count(user) and time.monotonic() < deadline:
            time.sleep(0.05)
        other = dovecot_src.connect(user, pw)
        other.delete_folder("Gone")
        other.logout()
        started = time.monotonic()
        with pytest.raises(FolderError, match="Gone"):
            store.uid_flags()
        assert time.monotonic() - started < 2   # no back-off for a folder that is gone
        assert store.status("INBOX").messages == 0   # the new connection works
    finally:
        store.close()


def test_a_throttled_create_in_a_burst_waits_and_sends_the_burst_again(dovecot_src) -> None:
    """Store.create_folders pipelines its CREATEs; the server throttles the second one:
    the store waits as told and sends them all again (CREATE is idempotent), and every
    folder exists once. A refused name is returned, not raised."""
    user, pw = dovecot_src.new_user()
    with ThrottleProxy((dovecot_src.host, dovecot_src.port)) as proxy:
        proxy.add(Rule("CREATE", "no", skip=1))
        store = ImapStore.connect(host="127.0.0.1", port=proxy.port, security="none",
                                  credentials=Credentials(user, pw),
                                  throttle_settings=ThrottleSettings())
        try:
            t0 = time.monotonic()
            refused = store.create_folders(["One", "Two", "~Bad", "One/Three"])
            waited = time.monotonic() - t0
            names = {f.name for f in store.list_folders()}
        finally:
            store.close()
    assert list(refused) == ["~Bad"] and "~Bad" in str(refused["~Bad"])
    assert {"One", "Two", "One/Three"} <= names and "~Bad" not in names
    assert waited >= 0.9  # the suggested backoff: 1000 ms
    creates = [e for e in proxy.events if e.verb == "CREATE"]
    assert [e.action for e in creates[:2]] == ["pass", "no"] and len(creates) == 8
