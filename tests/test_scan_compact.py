"""The compact scan of a first copy, piece by piece (pure: no servers).

Why: a first copy keeps every folder's flags and new messages as arrays (FlagMap,
SizedNew) and reads a folder's flags and sizes in UID slices (scan_ranges); the planning
code takes them where it took dicts, so they must answer exactly as the dicts did.
"""

from __future__ import annotations

from array import array

import pytest

from mxshift.engine.copier import MULTIAPPEND_MAX, NewMessage, iter_batches
from mxshift.engine.folder_scan import SizedNew
from mxshift.engine.plan import Known, plan_folder
from mxshift.store.fetch_parse import parse_flags_sizes, scan_ranges
from mxshift.store.flag_map import NO_SIZE, FlagMap, FlagMapBuilder

SEEN = frozenset({"\\Seen"})
NONE: frozenset[str] = frozenset()


def uids(msgs: list[NewMessage], max_count: int, max_bytes: int) -> list[list[int]]:
    """The UIDs of the copier's batches."""
    return [[m.uid for m in batch] for batch in iter_batches(msgs, max_count, max_bytes)]


def test_flag_map_answers_as_the_dict_it_replaces() -> None:
    flags = {7: SEEN, 3: NONE, 12: frozenset({"$Label1", "\\Seen"}), 9: SEEN}
    fm = FlagMap.of(flags)
    assert fm == flags and dict(fm) == flags and dict(fm.items()) == flags
    assert list(fm) == [3, 7, 9, 12] and len(fm) == 4
    assert fm[7] is fm[9]  # one object per distinct set
    assert 7 in fm and 8 not in fm and -1 not in fm and "7" not in fm and 2**40 not in fm
    with pytest.raises(KeyError):
        fm[8]


def test_builder_sorts_and_keeps_a_uids_last_flags_and_its_size() -> None:
    b = FlagMapBuilder()
    b.add(5, SEEN, 100)
    b.add(9, NONE, 200)
    b.add(5, NONE)        # an unsolicited FETCH (flags only) of an earlier message
    b.add(2, SEEN, 50)
    b.add(9, SEEN)        # the same message again, straight after
    fm = b.done()
    assert dict(fm) == {2: SEEN, 5: NONE, 9: SEEN}
    assert list(b.sizes()) == [50, 100, 200]
    b2 = FlagMapBuilder()
    b2.add(4, SEEN)
    assert list(b2.done()) == [4] and list(b2.sizes()) == [NO_SIZE]


def test_plan_folder_takes_a_flag_map() -> None:
    source = {1: SEEN, 2: NONE, 4: SEEN}
    known = {1: Known(1, 10, NONE, "a", "copied"), 3: Known(3, 11, NONE, "b", "copied"),
             4: Known(4, 12, SEEN, "c", "copied")}
    a, b = plan_folder(source, known), plan_folder(FlagMap.of(source), known)
    assert a == b and b.new == [2] and b.vanished == [3]
    assert [(c.source_uid, c.add) for c in b.flag_changes] == [(1, SEEN)]


def test_sized_new_is_a_mapping_of_new_messages_in_uid_order() -> None:
    new = SizedNew(array("I", [2, 5, 9]), array("Q", [10, 20, 30]))
    assert len(new) == 3 and list(new) == [2, 5, 9]
    assert list(new.values()) == [NewMessage(2, 10), NewMessage(5, 20), NewMessage(9, 30)]
    assert new[5] == NewMessage(5, 20) and 4 not in new
    assert new.pop(5) == NewMessage(5, 20) and 5 not in new and len(new) == 2
    with pytest.raises(KeyError):
        del new[5]
    new[5] = NewMessage(5, 21)  # back, as a plain size
    assert new[5] == NewMessage(5, 21) and len(new) == 3
    marked = NewMessage(9, 30, fingerprint="f", subject="s")
    new[9] = marked  # identified: kept whole, still in order
    assert new[9] is marked and len(new) == 3
    assert [m.uid for m in new.values()] == [2, 5, 9] and list(new.values())[2] is marked
    del new[9]
    assert list(new) == [2, 5] and dict(new.items()) == {2: NewMessage(2, 10),
                                                          5: NewMessage(5, 21)}


def test_iter_batches_as_copy_batches_did() -> None:
    big = MULTIAPPEND_MAX + 1
    msgs = [NewMessage(1, 1000), NewMessage(2, big), NewMessage(3, 1000),
            NewMessage(4, big), NewMessage(5, 2000)]
    assert uids(msgs, 2, 10**9) == [[1, 3], [5], [2], [4]]
    assert uids(msgs, 100, 1500) == [[1], [3], [5], [2], [4]]
    sized = SizedNew(array("I", [m.uid for m in msgs]), array("Q", [m.size for m in msgs]))
    assert [[m.uid for m in b] for b in iter_batches(sized.values(), 2, 10**9)] == [
        [1, 3], [5], [2], [4]]
    assert list(iter_batches([], 2, 10)) == []


def test_scan_ranges_cover_every_uid_in_about_chunk_messages() -> None:
    assert scan_ranges(100, 101, 2000) == ["1:*"]
    assert scan_ranges(8000, 8001, 2000) == ["1:2000", "2001:4000", "4001:6000", "6001:*"]
    # sparse UIDs: as many commands as the message count asks, never more
    assert scan_ranges(5000, 1_000_001, 2000) == ["1:333334", "333335:666668", "666669:*"]
    for exists, uidnext in [(2001, 2002), (4001, 9000), (3000, 3), (10_000, 10_001)]:
        ranges = scan_ranges(exists, uidnext, 2000)
        assert len(ranges) <= -(-exists // 2000) and ranges[-1].endswith(":*")
        bounds = [tuple(int(x) for x in r.split(":")) for r in ranges[:-1]]
        expect = 1
        for lo, hi in bounds:  # contiguous, no gap, no overlap
            assert lo == expect and hi >= lo
            expect = hi + 1
        assert int(ranges[-1].split(":")[0]) == expect


def test_parse_flags_sizes_reads_dovecots_lines_and_refuses_other_shapes() -> None:
    data = [b"1 (UID 4 FLAGS (\\Seen $Label1) RFC822.SIZE 2345)",
            b"2 (FLAGS () UID 7 RFC822.SIZE 10)",
            b"3 (FLAGS (\\Seen))",                 # no UID: another session's change
            b"3 (UID 9 FLAGS (\\Flagged))"]        # flags only
    assert parse_flags_sizes(data) == [(4, (b"\\Seen", b"$Label1"), 2345), (7, (), 10),
                                       (9, (b"\\Flagged",), None)]
    assert parse_flags_sizes([(b"1 (UID 4 BODY[] {3}", b"abc"), b")"]) is None
