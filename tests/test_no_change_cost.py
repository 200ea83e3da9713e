"""A pass with nothing to do costs the same whatever the mailbox's size, on the state
database's side too (issue #3: "cost grows with the changes, not with the mailbox").

Why measured as SQLite virtual-machine steps: they count the work of every statement
the pass runs, deterministically, where a timing would be noise. The same folders hold
10x more messages in the large bed; a no-change pass of it must not run noticeably more
steps. A statement that reads every journal row of the mailbox (as
``Journal.any_passing`` did before its partial index, migration 0006) multiplies them.
Real Dovecots, real state database.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event

from harness import Bed, make_message

FOLDERS = ("INBOX", "Archive", "Sent", "Work")
EVERY = 1  # SQLite calls the progress handler every EVERY virtual-machine steps (of a
#            statement: with 100, statements shorter than that were not counted at all)


def _no_change_steps(bed: Bed, per_folder: int) -> int:
    for k, name in enumerate(FOLDERS):
        if name != "INBOX":
            bed.create(name)
        bed.put((name,), [make_message(k * 10_000 + i) for i in range(per_folder)])
    first = bed.run()
    assert first.status == "ok" and first.copied == len(FOLDERS) * per_folder, first
    assert bed.db is not None
    ticks = [0]

    def count() -> int:
        ticks[0] += 1
        return 0  # go on

    def hook(dbapi_connection: object, _record: object, _proxy: object = None) -> None:
        dbapi_connection.set_progress_handler(count, EVERY)  # type: ignore[attr-defined]

    event.listen(bed.db.engine, "checkout", hook)
    try:
        quiet = bed.run()
    finally:
        event.remove(bed.db.engine, "checkout", hook)
    assert quiet.status == "ok" and (quiet.copied, quiet.flags_updated) == (0, 0), quiet
    assert bed.differences() == []
    return ticks[0] * EVERY


def test_a_no_change_pass_reads_no_more_of_the_journal_for_a_10x_larger_mailbox(
        dovecot_src, dovecot_dst, tmp_path: Path) -> None:
    small = Bed.make(dovecot_src, dovecot_dst, tmp_path / "small")
    large = Bed.make(dovecot_src, dovecot_dst, tmp_path / "large")
    try:
        steps_small = _no_change_steps(small, 30)
        steps_large = _no_change_steps(large, 300)
    finally:
        small.close()
        large.close()
    assert steps_small > 0
    # 10x the messages (measured: 378 steps for both; the full read that any_passing made
    # before migration 0006: 1,700 against 13,580)
    assert steps_large <= 1.3 * steps_small, (steps_small, steps_large)
