"""Folders copied in parallel over several connections: exact, crash-safe, within caps.

Real Dovecots; the pass opens its stores through the connection limiter as a project's
``mxshift sync`` does (connect.py), so the limiter's counts are those of real logins.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

from harness import Bed
from mxshift.engine import copier, folder_pool, limits
from mxshift.engine.journal import Hooks, SimulatedCrash
from mxshift.engine.limits import LocalLimiter, open_limited, server_key
from mxshift.engine.mailbox_pass import MailboxPass, PassResult
from mxshift.engine.settings import PassSettings
from mxshift.state.models import Pass
from mxshift.testbed.corpus import CorpusSpec, folder_tree, generate
from mxshift.testbed.corpus_load import load


@pytest.fixture
def limiter(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalLimiter]:
    lim = LocalLimiter(default=50)
    old = limits.set_limiter(lim)
    # small test folders are still worth several connections here
    monkeypatch.setattr(folder_pool, "PARALLEL_MIN_BYTES", 0)
    yield lim
    limits.set_limiter(old)


@pytest.fixture
def bed(dovecot_src, dovecot_dst, tmp_path: Path) -> Iterator[Bed]:
    b = Bed.make(dovecot_src, dovecot_dst, tmp_path / "state")
    spec = CorpusSpec(seed=7, messages=240, size_profile="small")
    load(b.source(), generate(spec), folders=folder_tree(spec))
    yield b
    b.close()


def run(bed: Bed, hooks: Hooks | None = None, **settings: object) -> PassResult:
    """A pass whose stores take limiter slots, as store_factory's do."""
    assert bed.db is not None
    src_key = server_key(bed.src_server.host, bed.src_server.port)
    dst_key = server_key(bed.dst_server.host, bed.dst_server.port)
    settings.setdefault("batch_messages", 7)
    return MailboxPass(
        bed.db, bed.mailbox_id,
        source=lambda: open_limited(src_key, lambda: bed.store(bed.src_server, bed.su, bed.sp)),
        destination=lambda: open_limited(dst_key,
                                         lambda: bed.store(bed.dst_server, bed.du, bed.dp)),
        settings=PassSettings(**settings),  # type: ignore[arg-type]
        hooks=hooks).run()


class CrashAfter(Hooks):
    """Crash at the n-th checkpoint of the pass, whichever worker reaches it."""

    def __init__(self, n: int) -> None:
        self.n, self.count, self.lock = n, 0, threading.Lock()

    def checkpoint(self, label: str) -> None:
        with self.lock:
            self.count += 1
            hit = self.count == self.n
        if hit:
            raise SimulatedCrash(f"simulated crash at checkpoint {self.n}: {label}")


def test_parallel_folders_copy_exactly_over_several_connections(bed: Bed,
                                                                limiter: LocalLimiter) -> None:
    result = run(bed, folder_parallelism=4)
    assert result.status == "ok", result.error
    assert result.copied == 240 and result.errors == 0
    assert bed.differences() == []
    dst_key = server_key(bed.dst_server.host, bed.dst_server.port)
    assert limiter.peak[dst_key] >= 3  # the folders really went over several connections
    assert limiter.in_use(dst_key) == 0  # every connection was closed
    again = run(bed, folder_parallelism=4)
    assert (again.status, again.copied, again.adopted) == ("ok", 0, 0)
    assert bed.journal_states() == {"copied": 240}


@pytest.mark.parametrize("crash_at", [3, 12, 40, 90])
def test_a_crash_while_folders_copy_in_parallel_then_rerun_is_exact(
        bed: Bed, limiter: LocalLimiter, crash_at: int) -> None:
    with pytest.raises(SimulatedCrash):
        run(bed, hooks=CrashAfter(crash_at), folder_parallelism=3)
    resumed = run(bed, folder_parallelism=3)
    assert resumed.status == "ok", resumed.error
    assert bed.differences() == []  # nothing lost, nothing duplicated
    assert bed.journal_states() == {"copied": 240}
    final = run(bed, folder_parallelism=3)
    assert (final.copied, final.adopted, final.deleted) == (0, 0, 0)


def test_the_connection_cap_is_honoured_at_the_server(bed: Bed, limiter: LocalLimiter) -> None:
    dst_key = server_key(bed.dst_server.host, bed.dst_server.port)
    limiter.set_cap(dst_key, 2)
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(bed.dst_server.connection_count(bed.du))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = run(bed, folder_parallelism=6)
    finally:
        done.set()
        watcher.join()
    assert result.status == "ok", result.error
    assert bed.differences() == []
    assert limiter.peak[dst_key] == 2  # the cap, not the 6 asked for, limited the pass
    assert seen and max(seen) <= 2     # as Dovecot counted them (doveadm who)


def test_live_progress_is_written_while_the_pass_runs(bed: Bed, limiter: LocalLimiter,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copier, "LIVE_INTERVAL", 0.0)
    assert bed.db is not None
    db = bed.db
    seen: list[tuple[int, int]] = []

    class Watch(Hooks):
        def checkpoint(self, label: str) -> None:
            if label == "journal pending appends":  # read as another process would
                with db.session() as s:
                    row = s.scalars(select(Pass).order_by(Pass.id.desc())).first()
                    seen.append((row.copied or 0, row.bytes_copied or 0))

    result = run(bed, hooks=Watch(), folder_parallelism=2)
    assert result.status == "ok"
    counts = [c for c, _ in seen]
    assert any(0 < c < 240 for c in counts)  # progress visible mid-pass
    with db.session() as s:
        final = s.scalars(select(Pass).order_by(Pass.id.desc())).first()
    assert (final.copied, final.bytes_copied) == (result.copied, result.bytes_copied)


def test_live_progress_writes_at_most_once_per_interval(bed: Bed) -> None:
    assert bed.db is not None
    now = [0.0]
    with bed.db.session() as s, s.begin():
        row = Pass(mailbox_id=bed.mailbox_id, kind="prestage", status="running")
        s.add(row)
        s.flush()
        pass_id = row.id
    live = copier.LiveProgress(bed.db, pass_id, interval=1.0, clock=lambda: now[0])
    live.add(1, 100)
    assert live.writes == 1  # the first batch shows at once
    for _ in range(10):
        now[0] += 0.05
        live.add(1, 100)
    assert live.writes == 1
    with bed.db.session() as s:
        assert s.get(Pass, pass_id).copied == 1
    now[0] += 1.0
    live.add(1, 100)
    assert live.writes == 2
    with bed.db.session() as s:
        assert (s.get(Pass, pass_id).copied, s.get(Pass, pass_id).bytes_copied) == (12, 1200)


class WaitsAlways:
    """A limiter that can only wait (as a shared one may): one slot per server."""

    def __init__(self) -> None:
        self.sems: dict[str, threading.Semaphore] = {}
        self.lock = threading.Lock()

    @contextmanager
    def slot(self, server: str) -> Iterator[None]:
        with self.lock:
            sem = self.sems.setdefault(server, threading.Semaphore(1))
        sem.acquire()
        try:
            yield
        finally:
            sem.release()


def test_a_pass_never_waits_for_its_own_extra_connections(bed: Bed,
                                                          limiter: LocalLimiter) -> None:
    """With a cap of one connection and a limiter that cannot refuse, the extra workers
    wait for slots the pass itself holds: the pass must finish without them."""
    old = limits.set_limiter(WaitsAlways())
    try:
        out: list[PassResult] = []
        t = threading.Thread(target=lambda: out.append(run(bed, folder_parallelism=3)),
                             daemon=True)
        t.start()
        t.join(120)
        assert not t.is_alive(), "the pass waited for its own extra connections"
    finally:
        limits.set_limiter(old)
    assert out[0].status == "ok" and out[0].copied == 240
    assert bed.differences() == []
