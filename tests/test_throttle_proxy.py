"""Throttling that keeps the run alive: passes through a proxy that pushes back the way
Microsoft 365 does (testbed/throttle_proxy.py), between mxshift and real Dovecots."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness import Bed, make_message
from mxshift.engine.mailbox_pass import MailboxPass, PassResult
from mxshift.engine.settings import PassSettings
from mxshift.store.auth import Credentials
from mxshift.store.imap import ImapStore
from mxshift.store.throttle import ThrottleSettings
from mxshift.testbed.throttle_proxy import MS_THROTTLED, MS_TOKEN_EXPIRED, Rule, ThrottleProxy


def _bed(src, dst, tmp_path: Path) -> Bed:  # type: ignore[no-untyped-def]
    bed = Bed.make(src, dst, tmp_path / "bed")
    bed.put(("INBOX",), [make_message(i) for i in range(7)])
    bed.create("Work")
    bed.put(("Work",), [make_message(50 + i) for i in range(5)], flags=("\\Flagged",))
    return bed


def _run(bed: Bed, src_port: int, dst_port: int, settings: ThrottleSettings,
         stores: list[ImapStore], dst_credentials: Credentials | None = None) -> PassResult:
    def opener(port: int, cred: Credentials):  # type: ignore[no-untyped-def]
        def open_store() -> ImapStore:
            store = ImapStore.connect(host="127.0.0.1", port=port, security="none",
                                      credentials=cred, throttle_settings=settings)
            stores.append(store)
            return store
        return open_store

    return MailboxPass(bed.db, bed.mailbox_id,  # type: ignore[arg-type]
                       source=opener(src_port, Credentials(bed.su, bed.sp)),
                       destination=opener(dst_port, dst_credentials or
                                          Credentials(bed.du, bed.dp)),
                       settings=PassSettings(batch_messages=2)).run()


def test_microsoft_style_throttling_and_drops_are_waited_out_and_the_pass_is_exact(
        dovecot_src, dovecot_dst, tmp_path) -> None:
    bed = _bed(dovecot_src, dovecot_dst, tmp_path)
    settings = ThrottleSettings(default_wait=0.2, max_total_wait=60)
    stores: list[ImapStore] = []
    try:
        with ThrottleProxy((dovecot_src.host, dovecot_src.port)) as sp, \
                ThrottleProxy((dovecot_dst.host, dovecot_dst.port)) as dp:
            src_rules = [
                sp.add(Rule("EXAMINE", "bye", MS_THROTTLED.format(ms=300), skip=1)),
                sp.add(Rule("UID FETCH", "no", MS_THROTTLED.format(ms=700), skip=1)),
                sp.add(Rule("UID FETCH", "drop", skip=4)),
            ]
            dst_rules = [
                dp.add(Rule("CREATE", "bye", "Server shutting down")),
                dp.add(Rule("SELECT", "no", "[UNAVAILABLE] Server Unavailable. 15", skip=1)),
                dp.add(Rule("APPEND", "no", MS_THROTTLED.format(ms=1200), skip=1)),
            ]
            result = _run(bed, sp.port, dp.port, settings, stores)
            assert result.status == "ok", result.error
            assert [r.fired for r in src_rules + dst_rules] == [1] * 6
            assert bed.differences() == []
            assert result.copied == 12

            # waited as told: the next command came no sooner than the server asked
            told = {"EXAMINE": 0.3, "UID FETCH": 0.7, "SELECT": 0.2, "APPEND": 1.2}
            for proxy in (sp, dp):
                for event in proxy.injected():
                    if event.action == "no" or event.verb == "EXAMINE":
                        gap = proxy.gap_after(event)
                        assert gap is not None and gap >= told[event.verb] - 0.01, \
                            (event, gap)
            waits = [w for s in stores for w in s.budget.waits]
            assert ("throttled", 1.2) in waits and ("throttled", 0.7) in waits
            assert ("lost", 0.3) in waits            # BYE with a suggested time
            assert sum(s.reconnects for s in stores) == 3   # two BYEs and a drop
        assert bed.run().copied == 0
    finally:
        bed.close()


def test_a_pass_gives_up_after_the_configured_total_wait_with_a_clear_reason(
        dovecot_src, dovecot_dst, tmp_path) -> None:
    bed = _bed(dovecot_src, dovecot_dst, tmp_path)
    stores: list[ImapStore] = []
    try:
        with ThrottleProxy((dovecot_src.host, dovecot_src.port)) as sp, \
                ThrottleProxy((dovecot_dst.host, dovecot_dst.port)) as dp:
            sp.add(Rule("UID FETCH", "no", MS_THROTTLED.format(ms=400), times=1000))
            result = _run(bed, sp.port, dp.port,
                          ThrottleSettings(max_total_wait=1.0), stores)
        assert result.status == "failed"
        assert result.error is not None
        assert "kept pushing back" in result.error and "max_total_wait" in result.error
        assert "Suggested Backoff Time: 400 milliseconds" in result.error
        src_store = stores[0]
        assert src_store.budget.total == pytest.approx(0.8)   # two waits; a third is over
        from mxshift.state.models import Mailbox
        with bed.db.session() as s:  # type: ignore[union-attr]
            mb = s.get(Mailbox, bed.mailbox_id)
            assert mb is not None and mb.status == "failed"
            assert mb.last_error == result.error      # what `mxshift status` shows
    finally:
        bed.close()


def test_expired_token_bye_logs_in_again_with_a_fresh_token(
        dovecot_src, dovecot_oauth, fake_idp, tmp_path) -> None:
    from test_oauth import _google_key, _google_settings
    from mxshift.oauth import token_cache

    bed = _bed(dovecot_src, dovecot_oauth, tmp_path)
    cache = token_cache(_google_settings(fake_idp, _google_key(fake_idp, tmp_path)))
    stores: list[ImapStore] = []
    try:
        with ThrottleProxy((dovecot_src.host, dovecot_src.port)) as sp, \
                ThrottleProxy((dovecot_oauth.host, dovecot_oauth.port)) as dp:
            rule = dp.add(Rule("SELECT", "bye", MS_TOKEN_EXPIRED, skip=1,
                               on_fire=fake_idp.expire_all))
            result = _run(bed, sp.port, dp.port, ThrottleSettings(), stores,
                          Credentials(bed.du, mechanism="xoauth2", tokens=cache))
        assert rule.fired == 1
        assert result.status == "ok", result.error
        assert bed.differences() == []
        assert fake_idp.issued[bed.du] == 2          # refreshed at the IdP, once
        assert ("token-expired", 0.0) in [w for s in stores for w in s.budget.waits]
    finally:
        bed.close()


def test_rate_limits_space_the_copy_out(dovecot_src, dovecot_dst, tmp_path) -> None:
    bed = _bed(dovecot_src, dovecot_dst, tmp_path)    # 12 messages
    stores: list[ImapStore] = []
    try:
        started = time.monotonic()
        with ThrottleProxy((dovecot_src.host, dovecot_src.port)) as sp, \
                ThrottleProxy((dovecot_dst.host, dovecot_dst.port)) as dp:
            result = _run(bed, sp.port, dp.port,
                          ThrottleSettings(messages_per_second=8.0), stores)
        took = time.monotonic() - started
        assert result.status == "ok", result.error
        assert bed.differences() == []
        # 12 messages at 8/s: at least 11/8 s from the first to the last on each server;
        # the source's pacing spaces the destination's appends too
        src_limiter, dst_limiter = stores[0].limiter, stores[1].limiter
        assert src_limiter is not None and dst_limiter is not None
        assert src_limiter is not dst_limiter               # one per server
        assert src_limiter.slept + dst_limiter.slept >= 1.0
        assert took >= 11 / 8
    finally:
        bed.close()


def test_project_sync_waits_out_throttling_with_the_configured_budget(
        dovecot_src, dovecot_dst, tmp_path) -> None:
    """The same through mxshift.toml and `sync` (connect.py wiring), not a hand-made store."""
    from mxshift.project import import_mailboxes, open_project
    from mxshift.sync import sync

    su, sp_ = dovecot_src.new_user()
    du, dp_ = dovecot_dst.new_user()
    c = dovecot_src.connect(su, sp_)
    for i in range(5):
        c.append("INBOX", make_message(i))
    c.logout()
    with ThrottleProxy((dovecot_dst.host, dovecot_dst.port)) as dp:
        rule = dp.add(Rule("APPEND", "no", MS_THROTTLED.format(ms=500), times=2))  # a MULTIAPPEND
        proj_dir = tmp_path / "p"
        proj_dir.mkdir()
        (proj_dir / "mxshift.toml").write_text(
            f'[source]\nhost = "127.0.0.1"\nport = {dovecot_src.port}\nsecurity = "none"\n\n'
            f'[destination]\nhost = "127.0.0.1"\nport = {dp.port}\nsecurity = "none"\n'
            f'[destination.throttle]\nmax_total_wait = 30\n')
        (proj_dir / "users.csv").write_text(
            "source_user,source_password,destination_user,destination_password\n"
            f"{su},{sp_},{du},{dp_}\n")
        import_mailboxes(proj_dir, proj_dir / "users.csv")
        proj = open_project(proj_dir)
        try:
            [result] = sync(proj)
        finally:
            proj.close()
        assert rule.fired == 2
        assert result.status == "ok", result.error
        assert result.copied == 5
        for event in dp.injected():
            gap = dp.gap_after(event)
            assert gap is not None and gap >= 0.49
    d = dovecot_dst.connect(du, dp_)
    d.select_folder("INBOX", readonly=True)
    assert len(d.search("ALL")) == 5
    d.logout()
