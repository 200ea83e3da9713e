"""Fingerprints, repairs and UID-set parsing: pure helpers the engine trusts."""

from __future__ import annotations

import pytest

from mxshift import repair
from mxshift.identity import content_hash, fingerprint, fingerprint_bytes
from mxshift.store.uidset import expand_uid_set, parse_uidplus
from mxshift.store.uidset import compress_uids

RAW = (b"Received: from x\r\nMessage-ID: <a@b>\r\nSubject: =?utf-8?q?h=C3=A9?=\r\n"
       b" folded\r\nFrom: A <a@b>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nbody\r\n")


def test_fingerprint_from_bytes_equals_server_header_fetch() -> None:
    # What a server returns for BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)].
    fetched = (b"Message-ID: <a@b>\r\nSubject: =?utf-8?q?h=C3=A9?=\r\n folded\r\n"
               b"From: A <a@b>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n")
    assert fingerprint(fetched, len(RAW)) == fingerprint_bytes(RAW)
    assert fingerprint_bytes(RAW).strong


def test_fingerprint_distinguishes_size_and_headers() -> None:
    assert fingerprint_bytes(RAW) != fingerprint_bytes(RAW + b"x")
    assert fingerprint_bytes(RAW) != fingerprint_bytes(RAW.replace(b"<a@b>", b"<c@d>"))
    weak = fingerprint_bytes(RAW.replace(b"Message-ID: <a@b>\r\n", b""))
    assert not weak.strong
    assert content_hash(RAW) != content_hash(RAW + b"x")


def test_repairs_least_invasive_first_and_cumulative() -> None:
    raw = b"Subject: x\n\nline\nnul\0byte\n"
    cands = repair.candidates(raw)
    assert cands[0] == (b"Subject: x\r\n\r\nline\r\nnul\0byte\r\n",
                        "bare LF/CR line ends converted to CRLF")
    assert cands[1][0] == b"Subject: x\r\n\r\nline\r\nnulbyte\r\n"
    assert "NUL bytes removed" in cands[1][1]
    assert repair.candidates(b"Subject: x\r\n\r\nok\r\n") == []


@pytest.mark.parametrize("uids,text", [([1, 2, 3, 5], "1:3,5"), ([7], "7"),
                                       ([9, 3, 4, 4], "3:4,9")])
def test_compress_uids(uids, text) -> None:
    assert compress_uids(uids) == text
    assert expand_uid_set(text) == sorted(set(uids))


def test_parse_uidplus_codes() -> None:
    assert parse_uidplus(b"[APPENDUID 38505 3955] APPEND completed") == \
        ("APPENDUID", 38505, [], [3955])
    assert parse_uidplus(b"OK [COPYUID 38505 304,319:320 3956:3958] Done") == \
        ("COPYUID", 38505, [304, 319, 320], [3956, 3957, 3958])
    assert parse_uidplus(b"APPEND completed") is None


def test_line_end_repair_only_when_needed_and_fingerprint_follows() -> None:
    assert repair.line_ends(RAW) is None
    bare = RAW.replace(b"\r\n", b"\n")
    fixed, note = repair.line_ends(bare)  # type: ignore[misc]
    assert fixed == RAW and "CRLF" in note
    assert fingerprint_bytes(fixed) == fingerprint_bytes(RAW) != fingerprint_bytes(bare)
