# ruff: noqa: F811 - pytest fixtures are parameters named as the fixtures imported above
"""A delta's new messages read early, on the scan's connection, while the destination
logs in (engine/early_fetch.py): the plan (pure), the budget it takes without waiting,
the pipelined read against a real Dovecot, and whole passes that must stay exact and
crash-safe at every step. Real Dovecots, as in test_parallel_delta."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import Bed, make_message
from mxshift.engine.copier import NewMessage
from mxshift.engine.early_fetch import EARLY_MAX_BYTES, EarlyFetch, keep_free, plan_early
from mxshift.engine.journal import SimulatedCrash
from mxshift.engine.limits import ByteBudget, LocalLimiter
from mxshift.engine import folder_pool, limits
from mxshift.store.spool import CHUNK, SPOOL_ABOVE, Spool
from test_parallel_delta import (Count, _fresh, change_every_folder, resumed_exactly,
                                 spy_logins)
from test_engine_scenarios import recreate_folder
from test_parallel_folders import CrashAfter, run

LARGE = SPOOL_ABOVE + 300_000  # one message that travels through a spool


class _Pair:
    def __init__(self, pid: int) -> None:
        self.id = pid
        self.source_name = f"F{pid}"


class _Scan:
    def __init__(self, pid: int, sizes: dict[int, int], fingerprint: str = "fp") -> None:
        self.pair = _Pair(pid)
        self.uidvalidity = 7
        self.new = {u: NewMessage(uid=u, size=s, fingerprint=fingerprint)
                    for u, s in sizes.items()}


# -- the plan (pure) --------------------------------------------------------------------
def test_the_plan_reads_what_the_copy_will_need_and_sizes_its_memory() -> None:
    scans = [_Scan(1, {5: 100, 3: 200, 9: LARGE}), _Scan(2, {4: 50, 8: 70}), _Scan(3, {})]
    plan = plan_early(scans, moved={(2, 8)}, size_limit=None)
    assert plan is not None
    assert [(s.pair.id, small, large) for s, small, large in plan.folders] == [
        (1, [3, 5], [9]), (2, [4], [])]  # the move's new message is not read: it is moved
    assert plan.memory == 100 + 200 + 50 + CHUNK  # a spool holds one chunk while read
    # Messages the copy skips as too large are not read; without a spooled one, no chunk.
    plan = plan_early(scans, moved=(), size_limit=150)
    assert plan is not None
    assert [(s.pair.id, small, large) for s, small, large in plan.folders] == [
        (1, [5], []), (2, [4, 8], [])]
    assert plan.memory == 100 + 50 + 70


def test_no_plan_for_a_first_copy_a_backlog_or_nothing_new() -> None:
    assert plan_early([_Scan(1, {1: 10}, fingerprint="")], moved=()) is None  # only sized
    assert plan_early([_Scan(1, {})], moved=()) is None
    assert plan_early([_Scan(1, {1: 10})], moved={(1, 1)}) is None
    many = {u: SPOOL_ABOVE + 1 for u in range(EARLY_MAX_BYTES // SPOOL_ABOVE + 1)}
    assert plan_early([_Scan(1, many)], moved=()) is None


def test_the_budget_is_taken_only_when_free_and_nobody_waits() -> None:
    budget = ByteBudget(100)
    assert budget.try_take(40, keep_free=50)
    assert not budget.try_take(20, keep_free=50)  # 40 + 20 would leave 40 < 50 free
    assert budget.try_take(10, keep_free=50)
    assert budget.free == 50
    budget.give_back(50)
    assert budget.free == 100
    assert budget.try_take(0, keep_free=100)  # nothing to hold: always granted
    # keep_free leaves room for the copy's largest single reservation
    assert keep_free(ByteBudget(8 << 20)) == 4 << 20
    assert keep_free(ByteBudget(1 << 20)) == 1 << 20  # a small budget: nothing read early


# -- the pipelined read, against a real server ---------------------------------------------
@pytest.fixture
def filled(dovecot_src, dovecot_dst, tmp_path: Path) -> Iterator[Bed]:
    b = Bed.make(dovecot_src, dovecot_dst, tmp_path / "state")
    b.create("A")
    b.create("B")
    b.put(("A",), [make_message(i) for i in range(4)], flags=["\\Seen"])
    b.put(("B",), [make_message(10 + i) for i in range(3)])
    yield b
    b.close()


def test_the_bodies_of_several_folders_in_one_burst(filled: Bed) -> None:
    a, b = filled.folder("src", "A"), filled.folder("src", "B")
    c = filled.source()
    validity: dict[str, int] = {}
    expected: dict[str, dict] = {}  # type: ignore[type-arg]
    for n in (a, b):
        validity[n] = c.select_folder(n, readonly=True)[b"UIDVALIDITY"]
        expected[n] = c.fetch(c.search("ALL"), ["BODY.PEEK[]"])
    wanted = {a: sorted(expected[a])[1:], b: sorted(expected[b])}
    store = filled.store(filled.src_server, filled.su, filled.sp)
    try:
        events: list[str] = []  # spies: the real send and readline follow
        real_send, real_read = imaplib.IMAP4.send, imaplib.IMAP4.readline

        def send(self: imaplib.IMAP4, data: bytes) -> None:
            events.append("send")
            real_send(self, data)

        def readline(self: imaplib.IMAP4) -> bytes:
            events.append("read")
            return real_read(self)

        imaplib.IMAP4.send, imaplib.IMAP4.readline = send, readline  # type: ignore[method-assign]
        try:
            got = store.fetch_bodies_many([
                (a, validity[a], wanted[a]), ("No such folder", 1, [1]),
                (b, validity[b] + 1, wanted[b]), (b, validity[b], wanted[b])])
        finally:
            imaplib.IMAP4.send, imaplib.IMAP4.readline = real_send, real_read  # type: ignore[method-assign]
        # eight commands sent before the first answer is read: one round trip
        assert events.index("read") == 8 and events.count("send") == 8, events
        assert got[1] is None  # refused: the next folder is still read
        assert got[2] is None  # another UIDVALIDITY than the scan's: not these messages
        for n, found in ((a, got[0]), (b, got[3])):
            assert found is not None and sorted(found) == wanted[n]
            for uid, raw in found.items():
                assert raw.raw == expected[n][uid][b"BODY[]"]
        assert got[0] is not None and all(m.flags == {"\\Seen"} for m in got[0].values())
        # The store selects again before its next folder command.
        store.select(b, readonly=True)
        assert [m.uid for m in store.fetch_raw(wanted[b])] == wanted[b]
    finally:
        store.close()


def test_a_failed_read_gives_the_budget_back_and_leaves_nothing(filled: Bed) -> None:
    class Broken:
        def fetch_bodies_many(self, requests):  # type: ignore[no-untyped-def]
            raise imaplib.IMAP4.abort("connection lost")

    scans = [_Scan(1, {1: 100})]
    budget = ByteBudget(8 << 20)
    plan = plan_early(scans, moved=())
    assert plan is not None
    early = EarlyFetch(Broken(), plan, budget)  # type: ignore[arg-type]
    assert early.start()
    assert budget.free == (8 << 20) - 100
    assert early.folder(1) == {}  # the copy fetches them itself
    early.close()
    assert budget.free == 8 << 20


def test_a_folder_is_handed_out_before_another_folders_large_message_is_in() -> None:
    """Per-folder readiness: the copy of a folder of small messages starts while a large
    one of another folder still streams into its file; the pass's own source (as its
    copy worker sees it, AfterEarly) is free again only when the whole read is done."""
    import threading
    from datetime import datetime, timezone

    from mxshift.engine.early_fetch import AfterEarly
    from mxshift.store.base import RawMessage

    release = threading.Event()
    date = datetime(2024, 1, 1, tzinfo=timezone.utc)

    class Source:  # the early read's side of a store, driven by the test
        selected = ""

        def fetch_bodies_many(self, requests):  # type: ignore[no-untyped-def]
            return [{u: RawMessage(u, b"m", frozenset(), date) for u in uids}
                    for _f, _v, uids in requests]

        def select(self, folder: str, readonly: bool = False) -> None:
            self.selected = folder

        def fetch_spooled(self, uid: int) -> RawMessage:
            assert release.wait(10)
            return RawMessage(uid, b"L", frozenset(), date)

    scans = [_Scan(1, {1: 10, 2: LARGE}), _Scan(2, {3: 10})]
    plan = plan_early(scans, moved=())
    assert plan is not None
    source = Source()
    early = EarlyFetch(source, plan, ByteBudget(64 << 20))  # type: ignore[arg-type]
    assert early.start()
    assert set(early.folder(2)) == {3}  # in, though folder 1's large message is not
    used = threading.Thread(target=lambda: AfterEarly(source, early).select("X"))
    used.start()
    used.join(0.2)
    assert used.is_alive() and source.selected == "F1"  # waits for the read to end
    release.set()
    used.join(10)
    assert source.selected == "X"
    assert set(early.folder(1)) == {1, 2} and early.folder(1) == {}  # taken once
    early.close()


# -- whole passes ------------------------------------------------------------------------
@pytest.fixture
def limiter() -> Iterator[LocalLimiter]:
    lim = LocalLimiter(default=50)
    old = limits.set_limiter(lim)
    yield lim
    limits.set_limiter(old)


def _delta_with_a_large_message(bed: Bed) -> int:
    """change_every_folder, plus one message above the spool threshold in INBOX."""
    changed = change_every_folder(bed)
    big = make_message(99, body="line of text\r\n" * (LARGE // 14))
    bed.source().append("INBOX", big)
    return changed


@pytest.fixture
def copied(dovecot_src, dovecot_dst, tmp_path: Path) -> Iterator[Bed]:
    b = _fresh(dovecot_src, dovecot_dst, tmp_path, "copied")
    yield b
    b.close()


def test_a_delta_reads_its_new_messages_early_and_stays_exact(
        copied: Bed, limiter: LocalLimiter, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(copied, folder_parallelism=4).status == "ok"
    _delta_with_a_large_message(copied)
    logins = spy_logins(monkeypatch)
    read: list[int] = []  # UIDs read early, per start
    starts = EarlyFetch.start

    def start(self: EarlyFetch) -> bool:
        read.append(sum(len(s) + len(lg) for _, s, lg in self.plan.folders))
        return starts(self)

    spools: list[Spool] = []
    opened = Spool.__init__

    def spool_init(self: Spool, *a, **k) -> None:  # type: ignore[no-untyped-def]
        opened(self, *a, **k)
        spools.append(self)

    monkeypatch.setattr(EarlyFetch, "start", start)
    monkeypatch.setattr(Spool, "__init__", spool_init)
    budget = ByteBudget(8 << 20)
    result = run(copied, folder_parallelism=4, budget=budget)
    monkeypatch.undo()
    assert result.status == "ok", result.error
    assert read and read[0] == result.copied  # every new message was read early
    assert logins.count(copied.src_server.port) == 1, logins  # no worker logged in to it
    assert budget.free == budget.total  # given back
    assert spools and all(s._file.closed for s in spools)  # the large one's file is gone
    assert copied.differences() == []
    quiet = run(copied, folder_parallelism=4)
    assert (quiet.copied, quiet.deleted, quiet.moved, quiet.flags_updated) == (0, 0, 0, 0)


def test_without_room_in_the_budget_the_copy_fetches_as_before(
        copied: Bed, limiter: LocalLimiter) -> None:
    assert run(copied, folder_parallelism=4).status == "ok"
    changed = _delta_with_a_large_message(copied)
    budget = ByteBudget(8 << 20)
    assert budget.try_take(5 << 20)  # another pass holds most of it
    result = run(copied, folder_parallelism=4, budget=budget)
    assert result.status == "ok", result.error
    assert result.copied == changed + 1
    assert budget.free == 3 << 20
    assert copied.differences() == []


def test_a_crash_at_every_step_of_a_delta_read_early_then_rerun_is_exact(
        dovecot_src, dovecot_dst, tmp_path: Path, limiter: LocalLimiter) -> None:
    """As test_parallel_delta's crash test, with a spooled message among the new ones;
    the steps include "early read" (done, nothing written yet). Whichever step fails,
    the budget is given back and the re-run is exact."""

    def fresh(name: str) -> Bed:
        b = _fresh(dovecot_src, dovecot_dst, tmp_path, name)
        assert run(b, folder_parallelism=4).status == "ok"
        _delta_with_a_large_message(b)
        return b

    counter = fresh("count")
    try:
        count = Count()
        assert run(counter, hooks=count, folder_parallelism=4).status == "ok"
    finally:
        counter.close()
    steps = len(count.labels)
    assert "early read" in count.labels
    picks = sorted(set(range(1, steps + 1, 9)) | {count.labels.index(label) + 1
                                                   for label in set(count.labels)})
    for n in picks:
        bed = fresh(f"crash{n}")
        try:
            budget = ByteBudget(8 << 20)
            with pytest.raises(SimulatedCrash):
                run(bed, hooks=CrashAfter(n), folder_parallelism=4, budget=budget)
            assert budget.free == budget.total, (n, count.labels[n - 1])
            resumed_exactly(bed, (n, count.labels[n - 1]))
        finally:
            bed.close()


def _recreate_destination_folders(bed: Bed) -> int:
    """Every destination folder but INBOX deleted and re-created with the same mail (a
    new UIDVALIDITY each): its copy then starts over, from the source."""
    c = bed.dest()
    names = sorted(n for fl, _d, n in c.list_folders()
                   if b"\\Noselect" not in fl and n.upper() != "INBOX")
    for name in names:
        recreate_folder(bed, "dst", name)
    return len(names)


def test_a_worker_that_needs_the_source_after_all_logs_in_then(
        copied: Bed, limiter: LocalLimiter, monkeypatch: pytest.MonkeyPatch) -> None:
    """The new messages were read early, but the destination folders' UIDVALIDITY changed:
    each is copied again from the source, so the copy workers log in to it after all.
    (New mail only: a message deleted on the source stays in a re-created folder, whose
    copies are no longer known as ours.)"""
    assert run(copied, folder_parallelism=4).status == "ok"
    c = copied.source()
    for i, (fl, _d, name) in enumerate(c.list_folders()):
        if b"\\Noselect" not in fl:
            c.append(name, make_message(900 + i, subject=f"new in {name}"))
    assert _recreate_destination_folders(copied) >= 8
    monkeypatch.setattr(folder_pool, "DELTA_FOLDERS_PER_PAIR", 4)  # several workers
    logins = spy_logins(monkeypatch)
    started: list[bool] = []
    starts = EarlyFetch.start
    monkeypatch.setattr(EarlyFetch, "start", lambda self: started.append(starts(self)) or
                        started[-1])
    result = run(copied, folder_parallelism=4)
    monkeypatch.undo()
    assert result.status == "ok", result.error
    assert started == [True]
    assert logins.count(copied.dst_server.port) >= 2, logins
    assert logins.count(copied.src_server.port) >= 2, logins  # a worker's, on first use
    assert copied.differences() == []
    quiet = run(copied, folder_parallelism=4)
    assert (quiet.copied, quiet.deleted, quiet.moved, quiet.flags_updated) == (0, 0, 0, 0)
