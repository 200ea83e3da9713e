"""The pure comparison, without servers."""

from __future__ import annotations

from datetime import datetime, timezone

from mxshift.verify.compare import Item, JournalEntry, PairInput, compare

T = datetime(2021, 1, 1, tzinfo=timezone.utc)


def item(uid: int, fp: str, *, flags: frozenset[str] = frozenset(), size: int = 10,
         at: datetime = T) -> Item:
    return Item(uid=uid, size=size, flags=flags, internaldate=at, fingerprint=fp,
                loose="L" + fp, subject=f"s{fp}")


def test_identical_duplicates_on_the_source_need_two_copies() -> None:
    src = [item(1, "a"), item(2, "a")]
    one = compare([PairInput(1, "INBOX", src, [item(7, "a")], {})])
    assert [d.kind for d in one.differences] == ["missing"]
    two = compare([PairInput(1, "INBOX", src, [item(7, "a"), item(8, "a")], {})])
    assert two.differences == []


def test_uid_map_first_then_date_and_extra_put_there_by_us() -> None:
    journal = {1: JournalEntry(1, 5, "copied"), 9: JournalEntry(9, 6, "copied")}
    later = datetime(2022, 1, 1, tzinfo=timezone.utc)
    c = compare([PairInput(1, "INBOX", [item(1, "a")],
                           [item(5, "a", at=later), item(6, "z")], journal)])
    kinds = sorted(d.kind for d in c.differences)
    assert kinds == ["date_differs", "extra"]
    extra = next(d for d in c.differences if d.kind == "extra")
    assert not extra.explained and "put there by mxshift" in extra.reason


def test_keys_are_stable_for_acceptance() -> None:
    a = compare([PairInput(1, "INBOX", [item(1, "a")], [], {})]).differences[0]
    b = compare([PairInput(1, "INBOX", [item(1, "a")], [], {})]).differences[0]
    assert a.key == b.key
