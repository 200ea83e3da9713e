"""The pass's bookkeeping in Core (engine/pass_rows.py) records what the ORM recorded:
the pass row (kind, status, counters, start and end), the mailbox's status and running
totals, the lease's takeover of a dead holder; and a no-change pass decided on plain
rows (PairRow) still settles a folder gone from the source with real rows. Real
Dovecots, SQLite state (PostgreSQL: tests/test_distributed*.py run the same code)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from harness import Bed, make_message
from sqlalchemy import select, text, update

from mxshift.engine import lease, pass_rows
from mxshift.state.models import FolderPair, Mailbox, Pass


@pytest.fixture
def bed(dovecot_src, dovecot_dst, tmp_path: Path):  # type: ignore[no-untyped-def]
    b = Bed.make(dovecot_src, dovecot_dst, tmp_path / "bed")
    yield b
    b.close()


def _passes(bed: Bed) -> list[Pass]:
    assert bed.db is not None
    with bed.db.session() as s:
        return list(s.scalars(select(Pass).where(Pass.mailbox_id == bed.mailbox_id)
                              .order_by(Pass.id)))


def _mailbox(bed: Bed) -> Mailbox:
    assert bed.db is not None
    with bed.db.session() as s:
        mb = s.get(Mailbox, bed.mailbox_id)
        assert mb is not None
        return mb


def test_pass_rows_and_mailbox_totals_over_a_copy_and_a_no_change_pass(bed: Bed) -> None:
    bed.create("Work")
    bed.put(("INBOX",), [make_message(i) for i in range(3)])
    bed.put(("Work",), [make_message(10 + i) for i in range(2)])
    first = bed.run()
    assert first.status == "ok" and first.copied == 5 and first.kind == "prestage"
    quiet = bed.run()
    assert quiet.status == "ok" and quiet.copied == 0 and quiet.kind == "delta"
    assert quiet.unchanged_folders == 2 and bed.differences() == []

    rows = _passes(bed)
    assert [(p.kind, p.status, p.copied) for p in rows] == [("prestage", "ok", 5),
                                                            ("delta", "ok", 0)]
    for p, r in zip(rows, (first, quiet)):
        assert p.owner and p.finished_at is not None and p.started_at <= p.finished_at
        assert p.seconds == pytest.approx(r.seconds) and p.error is None
        assert p.bytes_copied == r.bytes_copied and p.errors == 0
    mb = _mailbox(bed)
    assert (mb.status, mb.messages_copied, mb.bytes_copied, mb.messages_failed) == (
        "synced", 5, first.bytes_copied, 0)
    assert mb.last_pass_at == rows[-1].finished_at


def test_a_dead_holders_row_is_taken_over_and_a_live_one_refuses(bed: Bed) -> None:
    assert bed.db is not None
    with bed.db.session() as s, s.begin():
        dead = Pass(mailbox_id=bed.mailbox_id, kind="delta", owner="nohost:1")
        s.add(dead)
    # another machine's row: we cannot tell it is dead, so it holds the lease
    with pytest.raises(Exception, match=lease.BUSY):
        lease.acquire(bed.db, bed.mailbox_id, "delta")
    with bed.db.session() as s, s.begin():
        import socket
        s.execute(update(Pass).where(Pass.id == dead.id)
                  .values(owner=f"{socket.gethostname()}:999999999"))  # no such process
    pass_id = lease.acquire(bed.db, bed.mailbox_id, "delta")
    lease.release(pass_id)
    rows = {p.id: p for p in _passes(bed)}
    assert rows[dead.id].status == "interrupted" and rows[dead.id].finished_at is not None
    assert rows[pass_id].status == "running" and rows[pass_id].kind == "delta"
    assert _mailbox(bed).status == "running"


def test_a_no_change_pass_with_a_folder_gone_settles_it_on_real_rows(bed: Bed) -> None:
    bed.create("Old")
    bed.put(("INBOX",), [make_message(1)])
    assert bed.run().status == "ok"
    assert bed.db is not None
    with bed.db.session() as s, s.begin():  # a folder the source dropped, not ours to delete
        s.execute(update(FolderPair).where(FolderPair.source_name == "Old")
                  .values(present=False, created=False))
    bed.source().delete_folder(bed.folder("src", "Old"))
    result = bed.run()
    assert result.status == "ok" and result.errors == 0
    pairs = pass_rows.folder_pairs(bed.db, bed.mailbox_id)
    old = next(p for p in pairs if p.source_name == "Old")
    assert old.present is False and old.last_synced_at is not None  # settled this pass
    with pytest.raises(AttributeError, match="read-only"):
        old.present = True


def test_reads_do_not_wait_for_the_writer(bed: Bed) -> None:
    """StateDB.reading begins DEFERRED: it reads while another connection holds the
    write lock (WAL), where BEGIN IMMEDIATE would sleep in the busy handler."""
    assert bed.db is not None
    held = threading.Event()
    release = threading.Event()

    def writer() -> None:
        assert bed.db is not None
        with bed.db.engine.begin() as conn:  # BEGIN IMMEDIATE: the write lock
            conn.execute(text("UPDATE mailbox SET status = 'x' WHERE id = :i"),
                         {"i": bed.mailbox_id})
            held.set()
            release.wait(10)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert held.wait(10)
        t0 = time.monotonic()
        user, passed = pass_rows.start_info(bed.db, bed.mailbox_id)
        assert time.monotonic() - t0 < 1.0
        assert user == bed.su and passed is False
        with bed.db.reading() as conn:  # the uncommitted write is not seen
            assert conn.execute(text("SELECT status FROM mailbox WHERE id = :i"),
                                {"i": bed.mailbox_id}).scalar() != "x"
    finally:
        release.set()
        t.join()
