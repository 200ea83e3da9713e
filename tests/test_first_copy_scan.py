"""A first copy sizes new messages only (RFC822.SIZE), on real Dovecots.

Why it matters: the header fetch and fingerprint of every message were a seventh of a
5,000-message copy and ~600 bytes per message held for the whole pass. What must still
hold: the journal's fingerprints (taken from the bytes) serve the next pass's move
detection; a destination that already holds copies is still adopted, not duplicated; a
message too large to copy is skipped with its subject. The commands are recorded by
wrapping imaplib's ``send`` (the real send follows; nothing is faked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from harness import Bed, make_message
from mxshift.engine.mailbox_pass import MailboxPass
from mxshift.engine.settings import PassSettings
from mxshift.engine.pass_result import PassResult
from mxshift.identity import fingerprint_bytes
from mxshift.state.models import FolderPair, Message
from mxshift.store.imap import ImapStore
from sqlalchemy import select


def _recording(store: ImapStore, lines: list[str]) -> ImapStore:
    imap = store._c._imap
    send = imap.send

    def recording_send(data: bytes) -> None:
        if data.startswith(imap.tagpre):
            lines.append(data.split(b"\r\n", 1)[0].decode("ascii", "replace"))
        send(data)

    imap.send = recording_send  # type: ignore[method-assign]
    return store


def run(bed: Bed, lines: list[str], **settings: object) -> PassResult:
    assert bed.db is not None
    settings.setdefault("batch_messages", 4)
    return MailboxPass(
        bed.db, bed.mailbox_id,
        source=lambda: _recording(bed.store(bed.src_server, bed.su, bed.sp), lines),
        destination=lambda: bed.store(bed.dst_server, bed.du, bed.dp),
        settings=PassSettings(**settings)).run()  # type: ignore[arg-type]


@pytest.fixture
def bed(dovecot_src, dovecot_dst, tmp_path: Path) -> Iterator[Bed]:
    b = Bed.make(dovecot_src, dovecot_dst, tmp_path / "state")
    yield b
    b.close()


def _journal_fingerprints(bed: Bed) -> dict[tuple[str, int], str]:
    assert bed.db is not None
    with bed.db.session() as s:
        return {(name, uid): fp for name, uid, fp in s.execute(
            select(FolderPair.source_name, Message.source_uid, Message.fingerprint)
            .join(FolderPair).where(FolderPair.mailbox_id == bed.mailbox_id))}


def test_a_first_copy_sizes_only_and_its_fingerprints_serve_the_next_moves(bed: Bed) -> None:
    bed.put(("INBOX",), [make_message(i) for i in range(10)], flags=("\\Seen",))
    bed.put(("INBOX",), [make_message(50 + i, message_id=False) for i in range(3)])
    bed.create("Archive")
    bed.put(("Archive",), [make_message(20 + i) for i in range(5)])
    lines: list[str] = []
    first = run(bed, lines)
    assert first.status == "ok" and first.copied == 18, first
    assert bed.differences() == []
    fetches = [line for line in lines if "FETCH" in line]
    assert any("RFC822.SIZE" in line and "HEADER" not in line for line in fetches), fetches
    assert not any("HEADER.FIELDS" in line for line in fetches), fetches
    # The journal holds each message's fingerprint, taken from its bytes: the one the
    # server-side header fetch of a later pass gives.
    fps = _journal_fingerprints(bed)
    src = bed.source()
    src.select_folder(bed.folder("src", "INBOX"))
    for uid, item in src.fetch(src.search("ALL"), ["BODY.PEEK[]"]).items():
        assert fps[("INBOX", uid)] == fingerprint_bytes(item[b"BODY[]"]).value
    # A move on the source is found as a move by the next pass (fingerprints match).
    src.move([src.search("ALL")[2]], bed.folder("src", "Archive"))
    lines.clear()
    second = run(bed, lines)
    assert second.status == "ok" and (second.moved, second.copied) == (1, 0), second
    assert any("HEADER.FIELDS" in line for line in lines)  # not a first copy: identified
    assert bed.differences() == []
    assert len(bed.uids("Archive", side="dst")) == 6


def test_a_first_copy_still_adopts_what_the_destination_holds(bed: Bed) -> None:
    messages = [make_message(i) for i in range(8)]
    bed.put(("INBOX",), messages)
    bed.put(("INBOX",), messages[:5], side="dst")  # copied earlier by another tool
    lines: list[str] = []
    result = run(bed, lines)
    assert result.status == "ok" and (result.adopted, result.copied) == (5, 3), result
    assert bed.differences() == []
    assert len(bed.uids("INBOX", side="dst")) == 8  # nothing twice


def test_a_first_copy_skips_a_too_large_message_with_its_subject(bed: Bed) -> None:
    big = make_message(1, subject="the big one", body="x" * 60_000)
    bed.put(("INBOX",), [make_message(0), big, make_message(2)])
    result = run(bed, [], max_message_size=30_000)
    assert (result.status, result.copied, result.skipped) == ("ok", 2, 1), result
    [finding] = bed.findings("skipped")
    assert finding.subject == "the big one" and finding.size == len(big)
