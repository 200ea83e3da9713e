"""The full copy's pipeline: the next batch is fetched while the current one is appended.

Real Dovecots for the pass tests (harness.Bed); the Prefetcher and the line-end check also
have fast tests of their own (no servers).
"""

from __future__ import annotations

import random
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import Bed, make_message
from mxshift.engine.copier import needs_line_fix
from mxshift.engine.journal import Hooks, Pending, SimulatedCrash
from mxshift.engine.limits import ByteBudget
from mxshift.engine.prefetch import Prefetcher


# -- the line-end check (pure) ----------------------------------------------------------
def _needs_line_fix_reference(raw: bytes) -> bool:
    crlf = raw.count(b"\r\n")
    return crlf != raw.count(b"\n") or crlf != raw.count(b"\r")


def test_needs_line_fix_agrees_with_counting_every_line_end() -> None:
    rng = random.Random(5)
    alphabet = [b"\r", b"\n", b"\r\n", b"a", b"\n\r", b"\r\r\n"]
    for _ in range(5000):
        raw = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
        assert needs_line_fix(raw) is _needs_line_fix_reference(raw), raw


# -- the Prefetcher (pure: a fetch function and a byte budget) ---------------------------
def test_prefetcher_runs_one_job_ahead_and_holds_its_bytes_until_released() -> None:
    budget = ByteBudget(100)
    started = threading.Event()
    go = threading.Event()

    def fetch(job: int) -> int:
        started.set()
        assert go.wait(10)
        return job * 10

    pf: Prefetcher[int, int] = Prefetcher(fetch, budget, background=True)
    try:
        pf.start(1, 30)
        assert started.wait(10)  # runs without the caller waiting for it
        assert budget.free == 70
        go.set()
        held = pf.take()
        assert held.value == 10 and budget.free == 70
        held.release()
        held.release()  # once only
        assert budget.free == 100
    finally:
        pf.close()


def test_prefetcher_close_releases_an_unused_prefetch_and_a_failure() -> None:
    budget = ByteBudget(100)

    def fetch(job: int) -> int:
        if job < 0:
            raise ValueError("source gone")
        return job

    pf: Prefetcher[int, int] = Prefetcher(fetch, budget)
    pf.start(5, 40)
    pf.close()  # never taken: its bytes go back
    assert budget.free == 100 and pf.fetched == 1
    pf = Prefetcher(fetch, budget)
    pf.start(-1, 40)
    with pytest.raises(ValueError):
        pf.take()
    pf.close()
    assert budget.free == 100


def test_prefetcher_without_a_thread_fetches_in_take() -> None:
    budget = ByteBudget(10)
    seen: list[str] = []
    pf: Prefetcher[int, int] = Prefetcher(
        lambda job: seen.append(threading.current_thread().name) or job, budget,
        background=False)
    pf.start(3, 50)  # larger than the budget: clamped, waits for the whole budget
    assert seen == []
    held = pf.take()
    assert held.value == 3 and seen == [threading.current_thread().name]
    assert budget.free == 0
    held.release()
    pf.close()
    assert budget.free == 10


# -- a pass interrupted while the next batch is prefetched ------------------------------
@pytest.fixture
def bed(dovecot_src, dovecot_dst, tmp_path: Path) -> Iterator[Bed]:
    b = Bed.make(dovecot_src, dovecot_dst, tmp_path / "state")
    yield b
    b.close()


class CrashWhilePrefetched(Hooks):
    """At the ``nth`` ``label`` checkpoint (batch ``nth`` appended or journalled, not
    settled), wait until the prefetch thread holds batch ``nth + 1``, then crash."""

    def __init__(self, label: str, nth: int) -> None:
        self.label, self.nth = label, nth
        self.seen = 0
        self.fetched = 0
        self.cond = threading.Condition()
        self.crashed_with_prefetched: int | None = None

    def prefetched(self, count: int) -> None:
        with self.cond:
            self.fetched = count
            self.cond.notify_all()

    def checkpoint(self, label: str) -> None:
        if label != self.label:
            return
        self.seen += 1
        if self.seen != self.nth:
            return
        with self.cond:
            assert self.cond.wait_for(lambda: self.fetched >= self.nth + 1, timeout=30)
            self.crashed_with_prefetched = self.fetched
        raise SimulatedCrash(f"crash at {label} #{self.nth} with batch {self.nth + 1} fetched")


@pytest.mark.parametrize("label,nth", [("multiappend", 1), ("multiappend", 3),
                                       ("journal pending appends", 2)])
def test_a_crash_while_the_next_batch_is_prefetched_then_rerun_is_exact(
        bed: Bed, label: str, nth: int) -> None:
    bed.put(("INBOX",), [make_message(i) for i in range(14)])
    bed.put(("INBOX",), [make_message(100 + i, message_id=False) for i in range(4)])
    hooks = CrashWhilePrefetched(label, nth)
    with pytest.raises(SimulatedCrash):
        bed.run(hooks=hooks, batch_messages=3)
    assert hooks.crashed_with_prefetched == nth + 1
    assert bed.differences() != []  # stopped half-way
    result = bed.run(batch_messages=3)
    assert result.status == "ok", result.error
    assert bed.differences() == []  # exact: nothing lost, nothing twice
    assert len(bed.uids("INBOX", side="dst")) == 18
    assert bed.journal_states() == {"copied": 18}
    again = bed.run(batch_messages=3)
    assert (again.copied, again.adopted) == (0, 0)


# -- peak memory follows the batch budget, not the mailbox ------------------------------
def _copy_peak(bed: Bed, count: int, size: int) -> int:
    filler = "x" * 76 + "\r\n"
    body = filler * (size // len(filler))
    bed.put(("INBOX",), [make_message(i, body=f"{i}\r\n{body}") for i in range(count)])
    tracemalloc.start()
    try:
        result = bed.run(batch_messages=4, batch_bytes=1024 * 1024)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status == "ok" and result.copied == count, result.error
    assert bed.differences() == []
    return peak


def test_peak_memory_of_a_copy_does_not_grow_with_the_mailbox(
        dovecot_src, dovecot_dst, tmp_path: Path) -> None:
    beds = [Bed.make(dovecot_src, dovecot_dst, tmp_path / f"s{i}") for i in range(3)]
    try:
        size = 40_000
        _copy_peak(beds[0], 10, size)  # warm-up: imports, compiled statements, caches
        small = _copy_peak(beds[1], 30, size)
        large = _copy_peak(beds[2], 120, size)
    finally:
        for b in beds:
            b.close()
    # 4x the mailbox (3.6 MB more message data) may cost bookkeeping per message, not its
    # bytes: two batches of 4 x 40 KB are in flight at most.
    assert large - small < 600_000, (small, large)
    assert large < 4 * 4 * size + 3_000_000, (small, large)


# -- the journal's bulk writes on SQLite (no servers) -----------------------------------
def _one_pair_state(directory: Path, url: str | None = None):  # type: ignore[no-untyped-def]
    """A state database with one project, mailbox, folder pair and running pass:
    (db, mailbox id, pair id, pass id). SQLite in ``directory``, or the (upgraded)
    database at ``url``."""
    from mxshift.state.db import open_state, upgrade_state
    from mxshift.state.models import FolderPair, Mailbox, Pass, Project

    if url is not None:
        upgrade_state(directory, url=url)
    db = open_state(directory, url=url)
    with db.session() as s, s.begin():
        project = Project(name="t")
        s.add(project)
        s.flush()
        mb = Mailbox(project_id=project.id, source_user="a", destination_user="b")
        s.add(mb)
        s.flush()
        pair = FolderPair(mailbox_id=mb.id, source_name="INBOX", destination_name="INBOX")
        run = Pass(mailbox_id=mb.id, kind="delta", status="running")
        s.add_all([pair, run])
        s.flush()
        return db, mb.id, pair.id, run.id


def _journal_rows(journal_cls: type, directory: Path) -> list[tuple]:
    import sqlite3

    directory.mkdir()
    db, mailbox_id, pair_id, _pass_id = _one_pair_state(directory)
    try:
        journal = journal_cls(db, mailbox_id, Hooks())
        items = [Pending(i, f"{i:040x}", i % 2 == 0, "c" * 64 if i % 4 else "", 1000 + i,
                         frozenset({"\\Seen", "$x"}) if i % 3 else frozenset(),
                         repair="line ends" if i == 7 else None) for i in range(1, 41)]
        for k in range(0, 40, 9):
            journal.record_pending(pair_id, items[k:k + 9], 5)
        journal.settle_copied(pair_id, {p.source_uid: (p.source_uid + 10 if p.source_uid % 5
                                                       else None) for p in items[:30]})
        con = sqlite3.connect(next(directory.glob("*.db")))
        try:
            return con.execute(
                "SELECT folder_pair_id, source_uid, destination_uid, fingerprint, strong,"
                " typeof(strong), content_hash, size, flags, state, origin, dest_uid_floor,"
                " repair, pending_flags, typeof(updated_at), length(updated_at)"
                " FROM message ORDER BY source_uid").fetchall()
        finally:
            con.close()
    finally:
        db.dispose()


def test_the_bulk_journal_writes_store_what_the_orm_journal_stores(tmp_path: Path) -> None:
    from mxshift.engine.journal import Journal
    from mxshift.engine.serial_journal import SerialJournal

    orm = _journal_rows(Journal, tmp_path / "orm")
    bulk = _journal_rows(SerialJournal, tmp_path / "bulk")
    assert len(bulk) == 40
    assert [r[9] for r in bulk].count("copied") == 30
    assert bulk == orm


def test_the_byte_budget_serves_a_large_reservation_before_later_small_ones() -> None:
    budget = ByteBudget(100)
    order: list[str] = []
    first = budget.hold(30)
    first.__enter__()
    large_waiting = threading.Event()

    def large() -> None:
        large_waiting.set()
        with budget.hold(100):
            order.append("large")

    def small() -> None:
        with budget.hold(10):  # would fit now, but the large one asked first
            order.append("small")

    t1 = threading.Thread(target=large)
    t1.start()
    assert large_waiting.wait(10)
    while budget._tickets < 2:  # the large one holds ticket 1
        threading.Event().wait(0.001)
    t2 = threading.Thread(target=small)
    t2.start()
    threading.Event().wait(0.05)
    assert order == []  # both wait: the large one for the budget, the small one its turn
    first.__exit__(None, None, None)
    t1.join(10)
    t2.join(10)
    assert order == ["large", "small"] and budget.free == 100


def test_a_fenced_bulk_write_on_sqlite_stops_a_pass_that_lost_its_lease(
        tmp_path: Path) -> None:
    """The bare DBAPI transaction (Journal.bulk_tx, StateDB.raw_write) keeps tx's
    promises: a fenced intent commits only while the pass row says ``running`` (else a
    MailboxError and nothing written), and a crash inside it rolls everything back."""
    from mxshift.engine.serial_journal import SerialJournal
    from mxshift.errors import MailboxError
    from mxshift.state.models import Message, Pass, utcnow
    from sqlalchemy import func, select, update

    db, mailbox_id, pair_id, pass_id = _one_pair_state(tmp_path)
    try:
        journal = SerialJournal(db, mailbox_id, Hooks())
        journal.fence = pass_id
        items = [Pending(i, f"{i:040x}", True, "", 100 + i, frozenset()) for i in (1, 2)]

        def rows() -> int:
            with db.session() as s:
                return s.scalar(select(func.count()).select_from(Message))

        journal.record_pending(pair_id, items[:1], 1)  # running: written
        assert rows() == 1
        with db.session() as s, s.begin():  # another pass took the mailbox over
            s.execute(update(Pass).where(Pass.id == pass_id).values(status="interrupted"))
        with pytest.raises(MailboxError, match="lost its lease"):
            journal.record_pending(pair_id, items[1:], 1)
        assert rows() == 1
        with pytest.raises(SimulatedCrash):
            with journal.bulk_tx("crash inside") as tx:
                from mxshift.engine.serial_journal import _SETTLE
                from mxshift.state.prepared import executemany
                executemany(tx, _SETTLE, [{"b_pair": pair_id, "b_uid": 1, "b_dest": 9,
                                           "b_now": utcnow()}])
                raise SimulatedCrash("kill")
        with db.session() as s:
            assert s.scalar(select(Message.destination_uid)) is None  # rolled back
    finally:
        db.dispose()


def test_the_journalled_uids_as_runs_equal_the_rows(tmp_path: Path) -> None:
    """``Journal.uid_runs`` (runs found in SQL) and ``count`` agree with the rows that
    ``known`` reads, on sparse random UID sets with every row state; ``UidRuns`` writes
    the set as ``compress_uids`` does and answers membership like the set."""
    from mxshift.engine.journal import Journal
    from mxshift.state.models import Message
    from mxshift.store.uidset import UidRuns, compress_uids, highest_uid

    db, mailbox_id, pair_id, _pass_id = _one_pair_state(tmp_path)
    try:
        journal = Journal(db, mailbox_id, Hooks())
        assert len(journal.uid_runs(pair_id)) == 0 and journal.count(pair_id) == 0
        rng = random.Random(11)
        have: set[int] = set()
        for _ in range(6):
            more = {rng.choice([rng.randint(1, 60), rng.randint(1, 5000)])
                    for _ in range(rng.randint(1, 80))} - have
            have |= more
            with db.session() as s, s.begin():
                s.add_all(Message(folder_pair_id=pair_id, source_uid=u, fingerprint=f"f{u}",
                                  state=rng.choice(["copied", "skipped", "pending"]))
                          for u in more)
            runs = journal.uid_runs(pair_id)
            # a fresh Journal: known() caches, and these rows were not written through it
            assert set(runs) == have == set(Journal(db, mailbox_id, Hooks()).known(pair_id))
            assert len(runs) == journal.count(pair_id) == len(have)
            assert runs.text() == compress_uids(have)
            assert highest_uid(runs) == max(have) == runs.highest
            for probe in range(0, 5002, 7):
                assert (probe in runs) == (probe in have)
    finally:
        db.dispose()
    # runs that overlap or touch merge (a UID journalled twice)
    merged = UidRuns([(5, 7), (1, 2), (6, 9), (3, 3), (12, 12)])
    assert merged.runs == [(1, 3), (5, 9), (12, 12)] and len(merged) == 9
    assert merged.text() == "1:3,5:9,12" == compress_uids(merged)
    assert 12 in merged and 4 not in merged and 10 not in merged


def test_doomed_rows_equal_the_orm_rows(tmp_path: Path) -> None:
    """``Journal.doomed`` (the deletion step's plain read) gives each journalled UID's
    row id and destination UID as the ORM rows have them, skips UIDs not journalled,
    and reads past its 500-UID slices."""
    from mxshift.engine.journal import Journal
    from mxshift.state.models import Message

    db, mailbox_id, pair_id, _pass_id = _one_pair_state(tmp_path)
    try:
        rng = random.Random(5)
        have = set(rng.sample(range(1, 4000), 1300))
        with db.session() as s, s.begin():
            s.add_all(Message(folder_pair_id=pair_id, source_uid=u, fingerprint=f"f{u}",
                              destination_uid=rng.choice([None, u + 7]), state="copied")
                      for u in have)
        journal = Journal(db, mailbox_id, Hooks())
        asked = set(rng.sample(range(1, 4000), 1800))
        doomed = journal.doomed(pair_id, asked)
        rows = journal.rows(pair_id, asked)
        assert set(doomed) == set(rows) == asked & have and len(doomed) > 500
        assert {u: (d.id, d.destination_uid) for u, d in doomed.items()} == \
            {u: (r.id, r.destination_uid) for u, r in rows.items()}
        assert any(d.destination_uid is None for d in doomed.values())
        assert journal.doomed(pair_id, []) == {}
    finally:
        db.dispose()
