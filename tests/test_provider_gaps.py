"""Three provider gaps of issue 8: Gmail's daily upload cap counted per user (not per
server), a too-large message skipped with the provider's own limit named, and Gmail's
virtual folders recognised by their special-use LIST flags in any display language.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from harness import Bed, make_message
from mxshift.config import parse_project
from mxshift.engine.mailbox_pass import MailboxPass
from mxshift.engine.settings import PassSettings
from mxshift.errors import ConfigError
from mxshift.mapping import MappingRules, Namespace, RemoteFolder, map_folders
from mxshift.providers import PROFILES, oversize_reason, source_flag_exclusions
from mxshift.runners.redis_rates import RedisRateLimits
from mxshift.store import throttle
from mxshift.store.auth import Credentials
from mxshift.store.imap import ImapStore
from mxshift.store.throttle import (DailyBudgetSpent, LocalRateLimits, ThrottleSettings,
                                    UserDayRate, limiter_for)
from mxshift.testbed.dovecot import DovecotServer
from mxshift.testbed.redis import RedisServer

# max_total_wait=0: a spent budget is refused at any time of day. With the default (30 min)
# the shared (Redis, UTC-day) budget waits for midnight when it is less than 30 min away,
# so a test run between 23:30 and 00:00 UTC would wait instead of seeing the refusal.
GMAIL_DAY = ThrottleSettings(bytes_per_day=10_000, bytes_per_day_scope="user",
                             max_total_wait=0)


def _server() -> str:
    return f"gaps-{uuid.uuid4().hex[:8]}:993"


# -- 1. bytes_per_day per user ------------------------------------------------------------

@pytest.fixture
def local_limits() -> object:
    before = throttle.set_rate_limits(LocalRateLimits())
    yield throttle.rate_limits()
    throttle.set_rate_limits(before)


def test_local_two_users_each_get_their_own_daily_budget(local_limits: object) -> None:
    server = _server()
    alice = limiter_for(server, GMAIL_DAY, user="alice@example.com")
    bob = limiter_for(server, GMAIL_DAY, user="bob@example.com")
    assert isinstance(alice, UserDayRate) and isinstance(bob, UserDayRate)
    assert alice.acquire(1, 9_000) == 0.0
    assert bob.acquire(1, 9_000) == 0.0          # bob's budget is not alice's
    with pytest.raises(DailyBudgetSpent) as spent:
        alice.acquire(1, 2_000)
    assert f"{server}/alice@example.com: the upload budget of 10000" in str(spent.value)


def test_local_two_connections_of_one_user_share_the_budget(local_limits: object) -> None:
    server = _server()
    first = limiter_for(server, GMAIL_DAY, user="carol@example.com")
    second = limiter_for(server, GMAIL_DAY, user="carol@example.com")
    assert first is not None and second is not None
    assert first.acquire(1, 6_000) == 0.0
    with pytest.raises(DailyBudgetSpent):
        second.acquire(1, 6_000)                 # 12 000 > 10 000 for carol together
    assert second.acquire(1, 4_000) == 0.0       # what is left still goes


def test_server_scope_keeps_one_budget_for_everyone(local_limits: object) -> None:
    server = _server()
    settings = ThrottleSettings(bytes_per_day=10_000)   # default scope: "server"
    a = limiter_for(server, settings, user="alice@example.com")
    b = limiter_for(server, settings, user="bob@example.com")
    assert a is b and not isinstance(a, UserDayRate)
    assert a is not None and a.acquire(1, 9_000) == 0.0
    with pytest.raises(DailyBudgetSpent):
        b.acquire(1, 2_000)


def test_user_scope_keeps_the_other_rates_per_server(local_limits: object) -> None:
    """messages/s stays the server's: only the daily budget moves to the user."""
    server = _server()
    settings = ThrottleSettings(bytes_per_day=10_000, bytes_per_day_scope="user",
                                messages_per_second=10.0)
    a = limiter_for(server, settings, user="alice@example.com")
    b = limiter_for(server, settings, user="bob@example.com")
    assert isinstance(a, UserDayRate) and isinstance(b, UserDayRate)
    assert a.rest is b.rest and a.rest is not None and a.day is not b.day
    assert a.rest.settings.bytes_per_day is None  # type: ignore[attr-defined]


def test_redis_two_users_own_budgets_two_workers_of_one_user_share(
        redis_server: RedisServer) -> None:
    """Two workers (two RedisRateLimits) installed in turn, as two processes would."""
    server = _server()
    w1, w2 = RedisRateLimits(redis_server.url()), RedisRateLimits(redis_server.url())
    before = throttle.rate_limits()
    try:
        throttle.set_rate_limits(w1)
        alice1 = limiter_for(server, GMAIL_DAY, user="alice@example.com")
        bob1 = limiter_for(server, GMAIL_DAY, user="bob@example.com")
        throttle.set_rate_limits(w2)
        alice2 = limiter_for(server, GMAIL_DAY, user="alice@example.com")
    finally:
        throttle.set_rate_limits(before)
    assert alice1 is not None and bob1 is not None and alice2 is not None
    assert alice1.acquire(1, 6_000) == 0.0
    assert bob1.acquire(1, 9_000) == 0.0            # bob: his own budget
    with pytest.raises(DailyBudgetSpent) as spent:
        alice2.acquire(1, 6_000)                     # alice on worker 2: shares worker 1's
    assert "alice@example.com" in str(spent.value)
    assert alice2.acquire(1, 4_000) == 0.0
    assert w1.used_today(f"{server}/alice@example.com") == 10_000
    assert w1.used_today(f"{server}/bob@example.com") == 9_000
    assert w1.used_today(server) == 0                # nothing counted per server
    w1.close()
    w2.close()


def test_imap_store_keys_its_daily_budget_by_the_login_user(
        dovecot_src: DovecotServer, local_limits: object) -> None:
    """The real store wiring: ImapStore.connect passes the mailbox user to the limiter."""
    users = [dovecot_src.new_user("gap") for _ in range(2)]
    stores = [ImapStore.connect(host=dovecot_src.host, port=dovecot_src.port,
                                security="none", credentials=Credentials(u, p),
                                throttle_settings=GMAIL_DAY) for u, p in users]
    again = ImapStore.connect(host=dovecot_src.host, port=dovecot_src.port, security="none",
                              credentials=Credentials(*users[0]), throttle_settings=GMAIL_DAY)
    try:
        a, b, a2 = (s.limiter for s in (*stores, again))
        assert isinstance(a, UserDayRate) and isinstance(b, UserDayRate)
        assert isinstance(a2, UserDayRate)
        assert a.day is a2.day and a.day is not b.day
    finally:
        for s in (*stores, again):
            s.close()


def _cfg(text: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    return parse_project(text, path="mxshift.toml", directory=tmp_path)


DEST = '[destination]\nhost = "mail.example.net"\n'
GMAIL = '[source]\nprovider = "gmail"\nauth = "password"\n'
PLAIN = '[source]\nhost = "imap.example.com"\n'


@pytest.mark.parametrize("source, scope", [
    (GMAIL, "user"),
    (GMAIL + '[source.throttle]\nbytes_per_day = 500000000\n', "user"),
    (GMAIL + '[source.throttle]\nbytes_per_day_scope = "server"\n', "server"),
    (PLAIN + '[source.throttle]\nbytes_per_day = 1000\n', "server"),
    (PLAIN + '[source.throttle]\nbytes_per_day_scope = "user"\n', "user"),
])
def test_bytes_per_day_scope_defaults_to_user_for_gmail(tmp_path: Path, source: str,
                                                         scope: str) -> None:
    cfg = _cfg(source + DEST, tmp_path)
    assert cfg.source.throttle.bytes_per_day_scope == scope


def test_bytes_per_day_scope_refuses_other_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bytes_per_day_scope"):
        _cfg(PLAIN + '[source.throttle]\nbytes_per_day_scope = "tenant"\n' + DEST, tmp_path)


# -- 2. the provider's size limit named in the skip reason ---------------------------------

MB = 1024 * 1024


def test_oversize_reason_names_the_provider_only_for_its_own_limit() -> None:
    m365, gmail = PROFILES["microsoft365"], PROFILES["gmail"]
    assert oversize_reason(m365, 36 * MB, 35 * MB) == (
        f"message of {36 * MB} bytes is larger than the 35 MB Microsoft 365 accepts over IMAP")
    assert oversize_reason(gmail, 26 * MB, 25 * MB).endswith(
        "larger than the 25 MB Gmail accepts")
    generic = "(max_message_size or the destination's APPENDLIMIT)"
    # a lower limit from [options] or the server's APPENDLIMIT: not the provider's doing
    assert oversize_reason(m365, 20 * MB, 10 * MB).endswith(generic)
    assert oversize_reason(None, 20 * MB, 35 * MB).endswith(generic)
    assert "exceeds the limit of 4000 bytes" in oversize_reason(PROFILES["dovecot"], 5000, 4000)


def _pass_with_limit(bed: Bed, dst: DovecotServer, store_limit: int,
                     **settings: object) -> str:
    result = MailboxPass(
        bed.db, bed.mailbox_id,  # type: ignore[arg-type]
        source=lambda: bed.store(bed.src_server, bed.su, bed.sp),
        destination=lambda: ImapStore.connect(
            host=dst.host, port=dst.port, security="none",
            credentials=Credentials(bed.du, bed.dp), max_message_size=store_limit),
        settings=PassSettings(**settings)).run()  # type: ignore[arg-type]
    assert result.status == "ok", result.error
    assert (result.copied, result.skipped) == (1, 1), result
    [finding] = bed.findings("skipped")
    return finding.reason


def test_a_message_over_microsofts_35_mb_is_skipped_naming_microsoft(
        dovecot_src: DovecotServer, dovecot_dst: DovecotServer, tmp_path: Path) -> None:
    """A real pass: the destination store carries the profile's 35 MB (as connect.py gives
    it) and the pass knows the destination is Microsoft 365."""
    bed = Bed.make(dovecot_src, dovecot_dst, tmp_path / "bed")
    try:
        bed.put(("INBOX",), [make_message(1), make_message(2, body="x" * (35 * MB + 10))])
        reason = _pass_with_limit(bed, dovecot_dst, 35 * MB,
                                  destination_provider="microsoft365")
        assert "larger than the 35 MB Microsoft 365 accepts over IMAP" in reason
    finally:
        bed.close()


def test_an_options_limit_below_the_providers_keeps_the_generic_reason(
        dovecot_src: DovecotServer, dovecot_dst: DovecotServer, tmp_path: Path) -> None:
    bed = Bed.make(dovecot_src, dovecot_dst, tmp_path / "bed")
    try:
        bed.put(("INBOX",), [make_message(1), make_message(2, body="x" * 6000)])
        reason = _pass_with_limit(bed, dovecot_dst, 35 * MB, max_message_size=4000,
                                  destination_provider="microsoft365")
        assert "exceeds the limit of 4000 bytes (max_message_size" in reason
        assert "Microsoft" not in reason
    finally:
        bed.close()


# -- 3. Gmail's views recognised by their special-use flags --------------------------------

# LIST as Gmail sends it (flags included), English, German and French display languages.
GMAIL_EN = [("INBOX", ("\\HasNoChildren",)), ("[Gmail]", ("\\HasChildren", "\\Noselect")),
            ("[Gmail]/All Mail", ("\\All", "\\HasNoChildren")),
            ("[Gmail]/Drafts", ("\\Drafts", "\\HasNoChildren")),
            ("[Gmail]/Important", ("\\HasNoChildren", "\\Important")),
            ("[Gmail]/Sent Mail", ("\\HasNoChildren", "\\Sent")),
            ("[Gmail]/Spam", ("\\HasNoChildren", "\\Junk")),
            ("[Gmail]/Starred", ("\\Flagged", "\\HasNoChildren")),
            ("[Gmail]/Trash", ("\\HasNoChildren", "\\Trash")),
            ("Projects", ("\\HasNoChildren",))]
GMAIL_DE = [("INBOX", ("\\HasNoChildren",)),
            ("[Google Mail]", ("\\HasChildren", "\\Noselect")),
            ("[Google Mail]/Alle Nachrichten", ("\\All", "\\HasNoChildren")),
            ("[Google Mail]/Entw&APw-rfe", ("\\Drafts", "\\HasNoChildren")),
            ("[Google Mail]/Gesendet", ("\\HasNoChildren", "\\Sent")),
            ("[Google Mail]/Markiert", ("\\Flagged", "\\HasNoChildren")),
            ("[Google Mail]/Papierkorb", ("\\HasNoChildren", "\\Trash")),
            ("[Google Mail]/Spam", ("\\HasNoChildren", "\\Junk")),
            ("[Google Mail]/Wichtig", ("\\HasNoChildren", "\\Important")),
            ("Projekte", ("\\HasNoChildren",))]
GMAIL_FR = [("INBOX", ("\\HasNoChildren",)), ("[Gmail]", ("\\HasChildren", "\\Noselect")),
            ("[Gmail]/Tous les messages", ("\\All", "\\HasNoChildren")),
            ("[Gmail]/Important", ("\\HasNoChildren", "\\Important")),
            ("[Gmail]/Suivis", ("\\Flagged", "\\HasNoChildren")),
            ("[Gmail]/Messages envoy&AOk-s", ("\\HasNoChildren", "\\Sent"))]


Listing = list[tuple[str, tuple[str, ...]]]


def _map(listing: Listing, rules: MappingRules):  # type: ignore[no-untyped-def]
    src = [RemoteFolder(name, frozenset(flags)) for name, flags in listing]
    return map_folders(src, Namespace("", "/"), [RemoteFolder("INBOX")], Namespace("", "/"),
                       rules)


@pytest.mark.parametrize("listing, views, kept", [
    (GMAIL_EN, {"[Gmail]/All Mail": "\\All", "[Gmail]/Important": "\\Important",
                "[Gmail]/Starred": "\\Flagged"},
     {"INBOX", "[Gmail]/Drafts", "[Gmail]/Sent Mail", "[Gmail]/Spam", "[Gmail]/Trash",
      "Projects"}),
    (GMAIL_DE, {"[Google Mail]/Alle Nachrichten": "\\All", "[Google Mail]/Wichtig":
                "\\Important", "[Google Mail]/Markiert": "\\Flagged"},
     {"INBOX", "[Google Mail]/Entw&APw-rfe", "[Google Mail]/Gesendet",
      "[Google Mail]/Papierkorb", "[Google Mail]/Spam", "Projekte"}),
    (GMAIL_FR, {"[Gmail]/Tous les messages": "\\All", "[Gmail]/Important": "\\Important",
                "[Gmail]/Suivis": "\\Flagged"},
     {"INBOX", "[Gmail]/Messages envoy&AOk-s"}),
], ids=["en", "de", "fr"])
def test_gmail_views_are_excluded_by_their_list_flags_in_any_language(
        listing: list[tuple[str, tuple[str, ...]]], views: dict[str, str],
        kept: set[str]) -> None:
    """No name patterns at all here: the flags alone keep the views out."""
    rules = MappingRules(exclude_flags=source_flag_exclusions(PROFILES["gmail"]))
    result = _map(listing, rules)
    copied = {m.source for m in result.mappings if m.source and m.selectable}
    assert copied == kept
    reasons = dict(result.excluded)
    for name, flag in views.items():
        assert reasons[name] == f"a view of other folders ({flag}), not copied as a folder"


def test_without_a_gmail_source_flagged_folders_are_copied() -> None:
    """\\Flagged on another server is a real folder's role: only a Gmail source drops it."""
    assert source_flag_exclusions(PROFILES["dovecot"]) == ()
    assert source_flag_exclusions(None) == ()
    result = _map(GMAIL_FR, MappingRules())
    copied = {m.source for m in result.mappings if m.source and m.selectable}
    assert "[Gmail]/Suivis" in copied and "[Gmail]/Tous les messages" in copied


def test_pass_settings_take_the_view_flags_from_a_gmail_source(tmp_path: Path) -> None:
    """The wiring: sync.pass_settings gives the mapping the source provider's flags and
    the pass the destination provider (for the size reason)."""
    from types import SimpleNamespace

    from mxshift.sync import pass_settings
    cfg = _cfg('[source]\nprovider = "gmail"\nauth = "password"\n'
               '[destination]\nprovider = "microsoft365"\nauth = "password"\n', tmp_path)
    settings = pass_settings(SimpleNamespace(config=cfg))  # type: ignore[arg-type]
    assert settings.rules.exclude_flags == ("\\All", "\\Important", "\\Flagged")
    assert settings.destination_provider == "microsoft365"
