"""Connection caps (engine/limits.py) and the pure decisions of parallel copying."""

from __future__ import annotations

import threading
import time

import pytest

from mxshift.engine import limits
from mxshift.engine.copier import MULTIAPPEND_MAX, NewMessage, iter_batches, needs_line_fix
from mxshift.engine.folder_pool import (DELTA_FOLDERS_PER_PAIR, PARALLEL_MIN_BYTES, schedule,
                                        worker_count)
from mxshift.engine.limits import LocalLimiter, NoFreeSlot, open_limited, without_waiting
from mxshift.errors import EndpointError
from mxshift.sync import folder_connections


def uids(msgs: list[NewMessage], max_count: int, max_bytes: int) -> list[list[int]]:
    """The UIDs of the copier's batches."""
    return [[m.uid for m in batch] for batch in iter_batches(msgs, max_count, max_bytes)]


def test_local_limiter_never_exceeds_the_cap_across_threads() -> None:
    lim = LocalLimiter({"a:1": 3})
    inside, most = 0, 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        with lim.slot("a:1"):
            with lock:
                inside += 1
                most = max(most, inside)
            time.sleep(0.01)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 3
    assert lim.peak["a:1"] == 3
    assert lim.in_use("a:1") == 0


def test_servers_are_counted_apart_and_unknown_ones_get_the_default() -> None:
    lim = LocalLimiter({"a:1": 1}, default=2)
    with lim.slot("a:1"), lim.slot("b:2"), lim.slot("b:2"):
        assert (lim.in_use("a:1"), lim.in_use("b:2")) == (1, 2)
        with without_waiting(), pytest.raises(NoFreeSlot):
            with lim.slot("b:2"):
                pass


def test_without_waiting_refuses_at_once_and_a_freed_slot_is_taken() -> None:
    lim = LocalLimiter({"a:1": 1})
    with lim.slot("a:1"):
        with without_waiting(), pytest.raises(NoFreeSlot) as exc:
            with lim.slot("a:1"):
                pass
        assert isinstance(exc.value, EndpointError)  # a pass treats it as a server refusal
    with without_waiting(), lim.slot("a:1"):
        assert lim.in_use("a:1") == 1


def test_a_waiting_slot_is_granted_when_another_is_released() -> None:
    lim = LocalLimiter({"a:1": 1})
    got = threading.Event()
    held = lim.slot("a:1")
    held.__enter__()

    def wait() -> None:
        with lim.slot("a:1"):
            got.set()

    t = threading.Thread(target=wait)
    t.start()
    assert not got.wait(0.1)  # blocked by the cap
    held.__exit__(None, None, None)
    assert got.wait(5)
    t.join()


class _Store:
    closed = 0

    def close(self) -> None:
        _Store.closed += 1

    def ping(self) -> str:
        return "pong"


def test_open_limited_holds_the_slot_until_close_and_close_twice_releases_once() -> None:
    lim = LocalLimiter({"h:1": 2})
    old = limits.set_limiter(lim)
    try:
        s1 = open_limited("h:1", _Store)
        s2 = open_limited("h:1", _Store)
        assert lim.in_use("h:1") == 2
        assert s1.ping() == "pong"  # everything else goes to the store
        s1.close()
        s1.close()
        assert lim.in_use("h:1") == 1
        s2.close()
        assert lim.in_use("h:1") == 0
    finally:
        limits.set_limiter(old)


def test_a_failed_connect_gives_its_slot_back() -> None:
    lim = LocalLimiter({"h:1": 1})
    old = limits.set_limiter(lim)
    try:
        def refuse() -> _Store:
            raise EndpointError("h:1: cannot connect")

        with pytest.raises(EndpointError):
            open_limited("h:1", refuse)
        assert lim.in_use("h:1") == 0
    finally:
        limits.set_limiter(old)


def test_configure_sets_the_cap_of_the_local_limiter() -> None:
    lim = LocalLimiter()
    old = limits.set_limiter(lim)
    try:
        limits.configure("imap.example:993", 7)
        assert lim.cap("imap.example:993") == 7
        with pytest.raises(ValueError):
            lim.set_cap("x:1", 0)
    finally:
        limits.set_limiter(old)


@pytest.mark.parametrize("wanted,mailboxes,caps,expected", [
    (4, 1, (10, 10), 4),     # one mailbox: as many as wanted
    (4, 4, (10, 10), 2),     # four mailboxes share 10 connections per server
    (4, 4, (10, 3), 1),      # never below one
    (8, 2, (20, 16), 8),
    (1, 1, (10, 10), 1),
])
def test_folder_connections_fit_every_cap(wanted: int, mailboxes: int, caps: tuple[int, ...],
                                          expected: int) -> None:
    got = folder_connections(wanted, mailboxes, *caps)
    assert got == expected
    assert all(got * mailboxes <= cap or got == 1 for cap in caps)


def test_large_messages_travel_alone_after_the_batches_of_small_ones() -> None:
    msgs = [NewMessage(uid=u, size=s) for u, s in
            [(1, 1000), (2, MULTIAPPEND_MAX + 1), (3, 2000), (4, 10_000_000), (5, 3000)]]
    assert uids(msgs, 2, 10**9) == [[1, 3], [5], [2], [4]]
    # the byte budget splits small ones too
    assert uids(msgs, 100, 3500) == [[1, 3], [5], [2], [4]]


@pytest.mark.parametrize("raw,expected", [
    (b"a: b\r\n\r\nbody\r\n", False),
    (b"a: b\n\nbody\n", True),
    (b"a: b\r\n\r\nbo\rdy\r\n", True),
    (b"a: b\r\n\r\nbo\n\rdy", True),
    (b"", False),
])
def test_needs_line_fix(raw: bytes, expected: bool) -> None:
    assert needs_line_fix(raw) is expected


class _Pair:
    def __init__(self, pid: int) -> None:
        self.id = pid


class _Scan:
    def __init__(self, pid: int, sizes: list[int]) -> None:
        self.pair = _Pair(pid)
        self.new = {i: NewMessage(uid=i, size=s) for i, s in enumerate(sizes)}


def test_worker_count_and_schedule() -> None:
    big = PARALLEL_MIN_BYTES
    scans = [_Scan(1, [10]), _Scan(2, [big]), _Scan(3, []), _Scan(4, [big, big])]
    assert worker_count(scans, 4) == 3          # three folders have something to copy
    assert worker_count(scans, 2) == 2
    assert worker_count(scans, 1) == 1
    assert worker_count([_Scan(1, [10]), _Scan(2, [10])], 4) == 1  # too little to be worth it
    # A delta: little to copy, but each changed folder costs round trips of its own.
    per = DELTA_FOLDERS_PER_PAIR
    assert worker_count([_Scan(i, [10]) for i in range(per * 2 - 1)], 4) == 1
    assert worker_count([_Scan(i, []) for i in range(per * 2)], 4) == 2
    assert worker_count([_Scan(i, [10]) for i in range(per * 17)], 4) == 4
    assert worker_count([_Scan(i, [10]) for i in range(per * 17)], 1) == 1
    assert [s.pair.id for s in schedule(scans)] == [4, 2, 1, 3]  # largest first
