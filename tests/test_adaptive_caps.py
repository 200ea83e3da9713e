"""A throttled server gets fewer connections, then more again (issue 8, adaptive caps).

The rule (engine/backoff_policy.py) is tested pure; the limiters with an injected clock;
the whole path through a proxy that throttles like Microsoft 365 in front of a real
Dovecot, and the shared cap through a real Redis.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from harness import Bed, make_message
from mxshift.config import parse_project
from mxshift.engine import folder_pool, limits
from mxshift.engine.backoff_policy import (CapPolicy, Lowered, after_throttle, effective_cap,
                                           forget_after, next_step_at, recovered)
from mxshift.engine.limits import (LocalLimiter, NoFreeSlot, Reduction, open_limited,
                                   server_key, without_waiting)
from mxshift.engine.mailbox_pass import MailboxPass, PassResult
from mxshift.engine.settings import PassSettings
from mxshift.state.models import Event
from mxshift.store.auth import Credentials
from mxshift.store.imap import ImapStore
from mxshift.store.throttle import ThrottleSettings
from mxshift.testbed.throttle_proxy import MS_THROTTLED, Rule, ThrottleProxy

P = CapPolicy(recovery_period=300.0, settle=30.0)


# -- the pure rule --------------------------------------------------------------------
def test_a_throttle_halves_the_cap_with_a_minimum_of_one() -> None:
    assert after_throttle(8, None, 100.0, P) == Lowered(4, 100.0, 100.0)
    assert after_throttle(3, None, 0.0, P).cap == 1
    assert after_throttle(1, None, 0.0, P).cap == 1
    # the base is what was in use: 10 allowed but 2 open, the server complained about 2
    assert after_throttle(10, None, 0.0, P, in_use=2).cap == 1
    assert after_throttle(10, None, 0.0, P, in_use=6).cap == 3
    assert after_throttle(4, None, 0.0, P, in_use=9).cap == 2   # in use above a new cap


def test_throttles_of_one_episode_cut_once_but_restart_the_recovery() -> None:
    first = after_throttle(8, None, 0.0, P)
    again = after_throttle(8, first, 10.0, P)           # within settle
    assert again == Lowered(4, 0.0, 10.0)
    later = after_throttle(8, again, 40.0, P)            # past settle: a new episode
    assert later == Lowered(2, 40.0, 40.0)


def test_the_cap_recovers_by_one_per_quiet_period_up_to_the_configured_cap() -> None:
    low = Lowered(2, 0.0, 0.0)
    assert [effective_cap(6, low, t, P) for t in (0, 299, 300, 899, 900, 1200, 5000)] == \
        [2, 2, 3, 4, 5, 6, 6]
    assert not recovered(6, low, 1199.0, P) and recovered(6, low, 1200.0, P)
    assert next_step_at(low, 0.0, P) == 300.0 and next_step_at(low, 650.0, P) == 900.0
    assert forget_after(6, low, P) == 1200.0
    # a throttle in the middle of the recovery halves what had been recovered so far
    assert after_throttle(6, low, 900.0, P) == Lowered(2, 900.0, 900.0)   # 5 // 2
    # a configured cap set below the lowered one wins at once
    assert effective_cap(1, Lowered(4, 0.0, 0.0), 0.0, P) == 1
    assert effective_cap(6, None, 0.0, P) == 6
    with pytest.raises(ValueError):
        CapPolicy(recovery_period=0)


# -- the in-process limiter -------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_local_limiter_lowers_keeps_it_through_configure_and_recovers() -> None:
    clock = Clock()
    lim = LocalLimiter(default=10, clock=clock)
    old = limits.set_limiter(lim)
    try:
        limits.configure("imap.test:993", 8, recovery_period=60.0)
        assert limits.report_throttle("imap.test:993") == \
            "server imap.test:993 throttled: connections reduced from 8 to 4"
        assert lim.reductions == [Reduction("imap.test:993", 8, 4)]
        limits.configure("imap.test:993", 8, recovery_period=60.0)   # the next mailbox
        assert lim.cap("imap.test:993") == 4 and lim.configured_cap("imap.test:993") == 8
        assert limits.report_throttle("imap.test:993") is None      # same episode
        assert limits.report_throttle("other:143") is not None       # other servers: own caps
        clock.now += 60
        assert lim.cap("imap.test:993") == 5
        clock.now += 3 * 60
        assert lim.cap("imap.test:993") == 8
        assert "imap.test:993" not in lim._lowered                   # forgotten once recovered
    finally:
        limits.set_limiter(old)


def test_above_a_lowered_cap_new_connections_wait_and_optional_ones_are_refused() -> None:
    clock = Clock()
    lim = LocalLimiter(default=4, clock=clock,
                       cap_policy=CapPolicy(recovery_period=60.0))
    held = [lim.slot("s:1") for _ in range(4)]
    for h in held:
        h.__enter__()
    assert lim.throttled("s:1") == Reduction("s:1", 4, 2)
    assert lim.in_use("s:1") == 4                  # nothing above the cap is killed
    with without_waiting(), pytest.raises(NoFreeSlot):
        with lim.slot("s:1"):
            pass
    for h in held[:2]:
        h.__exit__(None, None, None)               # 2 in use = the lowered cap: still full
    got = threading.Event()

    def waiter() -> None:
        with lim.slot("s:1"):
            got.set()

    t = threading.Thread(target=waiter)
    t.start()
    assert not got.wait(0.8)                        # waits: 2 in use, cap 2
    clock.now += 60                                 # one quiet period: cap 3
    assert got.wait(3.0)                            # woken by the recovery, not a release
    t.join()
    assert lim.peak_since_cut["s:1"] == 3
    for h in held[2:]:
        h.__exit__(None, None, None)


def test_connection_recovery_is_read_from_the_throttle_table(tmp_path: Path) -> None:
    cfg = parse_project(
        '[source]\nhost = "a.test"\n[source.throttle]\nconnection_recovery = 120\n'
        '[destination]\nhost = "b.test"\n', path="mxshift.toml", directory=tmp_path)
    assert cfg.source.throttle.connection_recovery == 120.0
    assert cfg.destination.throttle.connection_recovery == 300.0


# -- end to end: a proxy throttling in front of a real Dovecot ------------------------------
@pytest.fixture
def clocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LocalLimiter, Clock]]:
    clock = Clock()
    lim = LocalLimiter(default=10, clock=clock, cap_policy=CapPolicy(recovery_period=300.0))
    old = limits.set_limiter(lim)
    monkeypatch.setattr(folder_pool, "PARALLEL_MIN_BYTES", 0)  # small folders, many workers
    yield lim, clock
    limits.set_limiter(old)


FOLDERS = ("Alpha", "Beta", "Gamma", "Delta")


def _fill(bed: Bed, start: int, per_folder: int) -> None:
    for n, name in enumerate(FOLDERS):
        bed.put((name,), [make_message(start + 100 * n + i) for i in range(per_folder)])


def _pass(bed: Bed, dst_port: int, stores: list[ImapStore]) -> PassResult:
    """A pass whose stores take limiter slots as store_factory's do, the destination's
    through the proxy (so the limiter's key is the proxy's host:port)."""
    settings = ThrottleSettings(default_wait=0.2, max_total_wait=60)

    def opener(host: str, port: int, cred: Credentials):  # type: ignore[no-untyped-def]
        def connect() -> ImapStore:
            store = ImapStore.connect(host=host, port=port, security="none",
                                      credentials=cred, throttle_settings=settings)
            stores.append(store)
            return store
        return lambda: open_limited(server_key(host, port), connect)

    return MailboxPass(bed.db, bed.mailbox_id,  # type: ignore[arg-type]
                       source=opener(bed.src_server.host, bed.src_server.port,
                                     Credentials(bed.su, bed.sp)),
                       destination=opener("127.0.0.1", dst_port, Credentials(bed.du, bed.dp)),
                       settings=PassSettings(batch_messages=2, folder_parallelism=4)).run()


def _watch_dovecot(bed: Bed, seen: list[int], done: threading.Event) -> threading.Thread:
    def watch() -> None:
        while not done.is_set():
            seen.append(bed.dst_server.connection_count(bed.du))
            time.sleep(0.02)
    t = threading.Thread(target=watch)
    t.start()
    return t


def _extras_done() -> None:
    """Wait for extra folder workers a pass left behind (folder_pool: an extra still
    logging in when the pass ended closes what it gets): while one runs it holds a
    connection, and with the proxy gone it would retry for its whole wait budget."""
    for t in threading.enumerate():
        if t.name.startswith("folders-"):
            t.join(10)
            assert not t.is_alive(), t.name


def _until_no_connections(bed: Bed) -> None:
    """Only the pass's connections are counted: the harness's own destination client
    (bed.differences() opens it) logs out first."""
    _extras_done()
    own = bed._clients.pop("dst", None)
    if own is not None:
        own.logout()
    deadline = time.monotonic() + 10
    while bed.dst_server.connection_count(bed.du) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bed.dst_server.connection_count(bed.du) == 0


def test_a_throttled_server_gets_fewer_connections_then_recovers(
        dovecot_src, dovecot_dst, tmp_path, clocked) -> None:
    lim, clock = clocked
    bed = Bed.make(dovecot_src, dovecot_dst, tmp_path / "bed")
    for name in FOLDERS:
        bed.create(name)
    _fill(bed, 0, 6)
    stores: list[ImapStore] = []
    try:
        with ThrottleProxy((dovecot_dst.host, dovecot_dst.port)) as dp:
            dst_key = server_key("127.0.0.1", dp.port)
            # throttle an APPEND once the workers are copying
            rule = dp.add(Rule("APPEND", "no", MS_THROTTLED.format(ms=300), skip=6))
            first = _pass(bed, dp.port, stores)
            assert first.status == "ok", first.error
            assert rule.fired == 1
            assert first.copied == 24 and bed.differences() == []
            assert lim.peak[dst_key] >= 2                  # several connections before
            [cut] = lim.reductions
            assert cut.server == dst_key and cut.before == 10 and 1 <= cut.after <= 5
            assert lim.cap(dst_key) == cut.after           # observed at the limiter
            note = f"server {dst_key} throttled: connections reduced from 10 to {cut.after}"
            assert note in [n for s in stores for n in s.notes]
            assert note in first.notes                     # the pass result says it ...
            with bed.db.session() as s:                    # ... and so does the event log
                assert note in list(s.scalars(select(Event.text).where(
                    Event.level == "warning")))

            # the next pass wants 4 connections per side but gets the lowered cap
            _fill(bed, 1000, 10)
            _until_no_connections(bed)
            seen: list[int] = []
            done = threading.Event()
            watcher = _watch_dovecot(bed, seen, done)
            try:
                second = _pass(bed, dp.port, stores)
            finally:
                done.set()
                watcher.join()
            assert second.status == "ok", second.error
            assert second.copied == 40 and bed.differences() == []
            assert 1 <= lim.peak_since_cut[dst_key] <= cut.after
            assert seen and max(seen) <= cut.after         # as Dovecot counted them

            # quiet periods on the injected clock: +1 each, back to the configured 10
            clock.now += 300
            assert lim.cap(dst_key) == cut.after + 1
            clock.now += 300 * 10
            assert lim.cap(dst_key) == 10
            _fill(bed, 2000, 3)
            third = _pass(bed, dp.port, stores)
            assert third.status == "ok", third.error
            assert third.copied == 12 and bed.differences() == []
            assert len(lim.reductions) == 1                # no throttle, no further cut
            _extras_done()
        assert bed.run().copied == 0
    finally:
        bed.close()


# -- shared through Redis ---------------------------------------------------------------
def test_two_redis_limiters_share_the_lowered_cap_and_its_recovery(redis_server) -> None:
    from mxshift.runners.redis_limits import RedisLimiter

    clock = Clock()
    url = redis_server.url()
    pol = CapPolicy(recovery_period=60.0)
    a = RedisLimiter(url, default=8, poll=0.01, clock=clock, cap_policy=pol)
    b = RedisLimiter(url, default=8, poll=0.01, clock=clock, cap_policy=pol)  # another worker
    server = "adaptive.test:993"
    a.reset(server)
    try:
        assert b.cap(server) == 8
        assert a.throttled(server) == Reduction(server, 8, 4)
        b.set_cap(server, 8)                            # configuring again does not undo it
        assert b.cap(server) == 4 and a.cap(server) == 4
        assert b.throttled(server) is None              # same episode, seen by both
        clock.now += 60
        assert (a.cap(server), b.cap(server)) == (5, 5)
        clock.now += 31                                  # a new episode: 5 -> 2, for both
        assert b.throttled(server) == Reduction(server, 5, 2)
        assert a.cap(server) == 2

        # b honours the lowered cap across workers, and without_waiting refuses at once
        with a.slot(server), b.slot(server):
            assert a.in_use(server) == 2
            started = time.monotonic()
            with without_waiting(), pytest.raises(NoFreeSlot):
                with b.slot(server):
                    pass
            assert time.monotonic() - started < 0.5
    finally:
        a.reset(server)
        a.close()
        b.close()


def test_the_redis_cap_uses_redis_time_and_expires_once_recovered(redis_server) -> None:
    import redis

    from mxshift.runners.redis_limits import RedisLimiter

    a = RedisLimiter(redis_server.url(), default=6, cap_policy=CapPolicy(recovery_period=1.0,
                                                                          settle=0.5))
    b = RedisLimiter(redis_server.url(), default=6)
    server = "adaptive-ttl.test:993"
    a.reset(server)
    try:
        cut = a.throttled(server)
        assert cut == Reduction(server, 6, 3)
        ttl = redis.Redis.from_url(redis_server.url()).pttl("mxshift:cap:" + server)
        assert 0 < ttl <= 3500                           # 3 steps of 1 s + settle
        b.set_cap(server, 6, recovery_period=1.0)
        assert b.cap(server) == 3                        # the other worker sees it
        deadline = time.monotonic() + 10
        while b.cap(server) < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert b.cap(server) == 6
    finally:
        a.reset(server)
        a.close()
        b.close()
