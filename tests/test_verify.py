"""Verification against real Dovecot: after a clean copy, damage the destination one way at a
time and check that verify reports exactly that finding and no other."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Callable

import pytest

from harness import BASE_DATE as BED_DATE, Bed, make_message
from mxshift.testbed.dovecot import DovecotServer
from mxshift.verify.run import MailboxVerification, verify_mailbox

_n = itertools.count()


def verify(bed: Bed, *, deep: bool = False) -> MailboxVerification:
    assert bed.db is not None
    return verify_mailbox(bed.db, bed.mailbox_id,
                          lambda: bed.store(bed.src_server, bed.su, bed.sp),
                          lambda: bed.store(bed.dst_server, bed.du, bed.dp), deep=deep)


def kinds(v: MailboxVerification) -> list[str]:
    return sorted(f["kind"] for f in v.findings)


@pytest.fixture
def bed(dovecot_src: DovecotServer, dovecot_dst: DovecotServer, tmp_path: Path):  # type: ignore[no-untyped-def]
    b = Bed.make(dovecot_src, dovecot_dst, tmp_path / f"bed{next(_n)}")
    b.create("Archive")
    b.put(("INBOX",), [make_message(i) for i in range(3)], flags=["\\Seen"])
    b.put(("Archive",), [make_message(i) for i in range(10, 12)])
    assert b.run().status == "ok"
    yield b
    b.close()


def _dest_inbox(bed: Bed):  # type: ignore[no-untyped-def]
    c = bed.dest()
    c.select_folder(bed.folder("dst", "INBOX"))
    return c, sorted(c.search("ALL"))


def delete_one(bed: Bed) -> None:
    c, uids = _dest_inbox(bed)
    c.delete_messages(uids[:1])
    c.expunge()


def add_one(bed: Bed) -> None:
    bed.put(("INBOX",), [make_message(99)], side="dst")


def change_flag(bed: Bed) -> None:
    c, uids = _dest_inbox(bed)
    c.add_flags(uids[:1], ["\\Flagged"])


def move_one(bed: Bed) -> None:
    c, uids = _dest_inbox(bed)
    c.move(uids[:1], bed.folder("dst", "Archive"))


def duplicate_one(bed: Bed) -> None:
    c, uids = _dest_inbox(bed)
    c.copy(uids[:1], bed.folder("dst", "INBOX"))


def alter_size(bed: Bed) -> None:
    c, uids = _dest_inbox(bed)
    c.delete_messages(uids[:1])
    c.expunge()
    c.append(bed.folder("dst", "INBOX"), make_message(0, body="a longer, different body"),
             flags=("\\Seen",), msg_time=BED_DATE)


DAMAGE: dict[str, tuple[Callable[[Bed], None], str, bool]] = {
    # name: (damage, the one finding expected, does it block "verified"?)
    "delete": (delete_one, "missing", True),
    "add": (add_one, "extra", False),
    "flag": (change_flag, "flags_differ", True),
    "move": (move_one, "wrong_folder", True),
    "duplicate": (duplicate_one, "duplicate", True),
    "alter": (alter_size, "content_differs", True),
}


def test_clean_copy_verifies_with_no_finding(bed: Bed) -> None:
    v = verify(bed)
    assert v.verdict == "verified" and v.findings == []
    assert v.counts["source_messages"] == v.counts["destination_messages"] == 5
    assert verify(bed, deep=True).findings == []


@pytest.mark.parametrize("name", list(DAMAGE))
def test_each_damage_is_exactly_one_finding(bed: Bed, name: str) -> None:
    damage, kind, blocks = DAMAGE[name]
    damage(bed)
    v = verify(bed)
    assert kinds(v) == [kind], v.findings
    f = v.findings[0]
    assert f["subject"] and f["from"] == "Alice <alice@example.test>" and f["date"]
    assert f["size"] and f["reason"] and f["folder"] == "INBOX"
    if kind != "extra":
        assert f["source_uid"] is not None
    assert v.verdict == ("failed" if blocks else "verified")
    if name == "move":
        assert f["other_folder"] == "Archive"
    if name == "add":
        assert "not put there by mxshift" in f["reason"]


def test_same_size_different_bytes_only_seen_by_deep(bed: Bed) -> None:
    c, uids = _dest_inbox(bed)
    c.delete_messages(uids[:1])
    c.expunge()
    raw = make_message(0).replace(b"body of message 0", b"BODY OF MESSAGE 0")
    c.append(bed.folder("dst", "INBOX"), raw, flags=("\\Seen",), msg_time=BED_DATE)
    assert verify(bed).findings == []
    deep = verify(bed, deep=True)
    assert kinds(deep) == ["content_differs"]
    assert "hash" in deep.findings[0]["reason"]


def test_skipped_message_is_explained_by_its_recorded_reason(
        dovecot_src: DovecotServer, dovecot_dst: DovecotServer, tmp_path: Path) -> None:
    b = Bed.make(dovecot_src, dovecot_dst, tmp_path / "skip")
    try:
        b.put(("INBOX",), [make_message(1), make_message(2, body="x" * 3000)])
        b.run(max_message_size=1000)
        v = verify(b)
        assert kinds(v) == ["skipped"]
        f = v.findings[0]
        assert f["explained"] and not f["open"] and "max_message_size" in f["reason"]
        assert v.verdict == "verified"
    finally:
        b.close()
