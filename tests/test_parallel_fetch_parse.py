"""The fast FETCH parser (store/imap.py) on recorded server responses.

Why its own tests: it replaced imapclient's tokenizer on the copy's hot path; a wrong
UID, flag or date here would copy the wrong thing, so every shape a server sends is
checked against what the general parser would give, and anything else must fall back.
"""

from __future__ import annotations

from imapclient.response_parser import parse_fetch_response

from mxshift.store.imap import parse_body_fetch, parse_fetch_fast


def general(data: list) -> dict[int, dict[bytes, object]]:
    return {int(i[b"UID"]): i for i in parse_fetch_response(data, False, False).values()
            if b"UID" in i}


BODY_ANSWER = [
    (b'1 (UID 11 FLAGS (\\Seen $Label1) INTERNALDATE "17-Jul-2020 02:44:25 -0700" '
     b'BODY[] {5}', b"hello"),
    b")",
    b"2 (FLAGS (\\Flagged) UID 12)",  # another session's flag change: no body
    (b'3 (UID 13 BODY[] {3}', b"abc"),  # items after the literal
    b' FLAGS () INTERNALDATE "01-Jan-2021 00:00:00 +0000")',
    (b'4 (FLAGS () INTERNALDATE "01-Jan-2021 00:00:00 +0000" BODY[] {1}', b"x"),
    b")",  # no UID: cannot be keyed, left out
]


def test_body_fetch() -> None:
    out = parse_body_fetch(BODY_ANSWER)
    assert sorted(out) == [11, 13]
    assert out[11][b"BODY[]"] == b"hello"
    assert set(out[11][b"FLAGS"]) == {b"\\Seen", b"$Label1"}  # type: ignore[arg-type]
    date = out[11][b"INTERNALDATE"]
    assert (date.hour, date.utcoffset().total_seconds()) == (2, -7 * 3600)  # type: ignore
    assert out[13][b"BODY[]"] == b"abc" and out[13][b"FLAGS"] == ()


def test_same_as_the_general_parser_for_meta_flags_and_changedsince() -> None:
    answers = [
        BODY_ANSWER,
        [(b'1 (UID 7 RFC822.SIZE 2345 FLAGS (\\Answered) INTERNALDATE '
          b'"02-Feb-2022 10:00:00 +0100" BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)] '
          b'{22}', b"Subject: hi\r\nFrom: a\r\n"), b")",
         (b'2 (UID 9 RFC822.SIZE 10 FLAGS () INTERNALDATE "02-Feb-2022 10:00:00 +0100" '
          b'BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)] {2}', b"\r\n"), b")"],
        [b"1 (UID 3 FLAGS (\\Seen))", b"2 (UID 4 FLAGS ())", b"3 (FLAGS (\\Seen))"],
        [b"1 (UID 3 MODSEQ (12) FLAGS (\\Seen $X))"],
    ]
    for data in answers:
        fast, slow = parse_fetch_fast(data), general(data)
        assert fast is not None and set(fast) == set(slow)
        for uid, item in slow.items():
            for key, value in item.items():
                if key in (b"UID", b"SEQ", b"MODSEQ"):
                    continue
                got = fast[uid][key]
                if key == b"FLAGS":
                    got, value = set(got), set(value)  # type: ignore[arg-type]
                assert got == value, (uid, key)


def test_another_shape_falls_back_to_the_general_parser() -> None:
    # a literal that is not a BODY[...] section, and a literal imaplib left inline
    assert parse_fetch_fast([(b'1 (UID 3 ENVELOPE ("x" {3}', b"abc"), b"))"]) is None
    assert parse_fetch_fast([b'1 (UID 3 BODY[] {3}\r\nabc)']) is None
    assert parse_fetch_fast([]) == {}
