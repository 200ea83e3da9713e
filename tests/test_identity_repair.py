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


# -- the fast header reading against the line-by-line one it replaced -----------------

def _reference_header_block(raw: bytes) -> bytes:
    import re
    m = re.search(rb"\r?\n\r?\n", raw)
    return raw[: m.start()] if m else raw


def _reference_identity_fields(block: bytes) -> dict[bytes, bytes]:
    """identity.identity_fields as it was until 25 Nov 2026 (a line at a time): stored
    fingerprints were made with it, so the fast one must give the same fields."""
    import re
    fields = (b"message-id", b"date", b"from", b"subject")
    out: dict[bytes, bytes] = {}
    current: bytes | None = None
    for line in re.split(rb"\r?\n", block):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if current is not None and current in out:
                out[current] += b" " + line.strip()
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            current = None
            continue
        key = name.strip().lower()
        current = key if key in fields and key not in out else None
        if current is not None:
            out[key] = value.strip()
    return {k: b" ".join(v.split()) for k, v in out.items()}


_PIECES = (b"Subject", b"subject", b"SUBJECT", b"Subjects", b"From", b"from ", b"Date",
           b"Message-ID", b"message-id", b"Received", b"X-Subject", b":", b": ", b" ",
           b"\t", b"\r", b"\n", b"\r\n", b"\r\n", b"\r\n", b"\r\n ", b"\n\t", b"\x0b", b"\x0c",
           b"<a@b>", b"x", b"h\xc3\xa9", b"=?utf-8?q?h=C3=A9?=", b"Mon, 1 Jan 2024", b"\0")


def test_fast_header_reading_equals_the_line_by_line_one() -> None:
    import random

    from mxshift.identity import header_block, identity_fields
    rng = random.Random(20261125)
    headers = [b"%s: %s\r\n" % (n, v) for n in (b"Subject", b"From", b"Date", b"Message-ID",
                                               b"Received", b"subject ", b"FROM")
               for v in (b"a", b"b  c", b"<x@y>", b"")]
    for i in range(6000):
        if i % 2:  # free-form bytes: every odd line shape
            raw = b"".join(rng.choice(_PIECES) for _ in range(rng.randrange(0, 40)))
        else:  # header-like lines, folded, with stray line ends, then maybe a body
            raw = b"".join(rng.choice(headers) + (rng.choice(_PIECES) if rng.random() < .3
                                                  else b"") for _ in range(rng.randrange(0, 12)))
            raw += rng.choice((b"\r\n", b"\n", b"\r\r\n", b"")) + b"body\r\nSubject: no\r\n"
        assert header_block(raw) == _reference_header_block(raw), raw
        block = header_block(raw)
        assert identity_fields(block) == _reference_identity_fields(block), block
        assert identity_fields(raw) == _reference_identity_fields(raw), raw


def test_fast_header_reading_keeps_the_corpus_fingerprints() -> None:
    """Over the benchmark's generated mail (folded, encoded, no Message-ID at times)."""
    from mxshift.identity import fingerprint_bytes, header_block, identity_fields
    from mxshift.testbed.corpus import CorpusSpec, generate
    seen = 0
    for m in generate(CorpusSpec(messages=300, seed=7, size_profile="small")):
        block = header_block(m.raw)
        assert block == _reference_header_block(m.raw)
        fields = identity_fields(block)
        assert fields == _reference_identity_fields(block)
        seen += len(fields)
        assert fingerprint_bytes(m.raw).strong == bool(fields.get(b"message-id"))
    assert seen > 900  # the four fields were there to compare, not absent
