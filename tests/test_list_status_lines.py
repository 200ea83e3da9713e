"""The regex reader of LIST-STATUS answers gives what imapclient's tokenizer gives.

Why a table and a generator: the reader must never name a folder differently from the
general parser (a folder pair is keyed by the name the source sent; another spelling
would look like a new folder). It either agrees or declines (None).
"""

from __future__ import annotations

import random

from test_list_status import RECORDED

from mxshift.store import list_status, list_status_lines


def _both(untagged: dict[str, list[object]]):  # type: ignore[no-untyped-def]
    fast = list_status_lines.parse(untagged)
    try:
        slow = list_status.parse_list_status(untagged)
    except ValueError:  # ListStatusError, or a shape its chunking cannot take
        slow = None
    return fast, slow


def test_recorded_dovecot_answer_is_read_the_same() -> None:
    fast, slow = _both(RECORDED)
    assert fast is not None and fast == slow
    folders, statuses = fast
    assert {f.name for f in folders} >= {'Say "hi"', "2023", "R&AOk-"}
    assert statuses["INBOX"].messages == 1 and "P" not in statuses


def test_shapes_left_to_the_general_parser() -> None:
    declined = [
        {"LIST": [(b'() "/" {5}', b"ab cd"), b""], "STATUS": []},   # a literal name
        {"LIST": [b'NIL "/" A'], "STATUS": []},                     # no flags
        {"LIST": [b'(\\X) "/" NIL'], "STATUS": []},                 # NIL name
        {"LIST": [b'(NIL) "/" A'], "STATUS": []},                   # NIL flag
        {"LIST": [b'() "/" a[b c]'], "STATUS": []},                 # bracketed atom
        {"LIST": [b'() "/" A ("CHILDINFO" ("SUBSCRIBED"))'], "STATUS": []},  # extended
        {"LIST": [b'() "/" A'], "STATUS": [b"A (MESSAGES 1 UIDNEXT)"]},      # odd items
    ]
    for untagged in declined:
        assert list_status_lines.parse(untagged) is None, untagged


def test_missing_items_and_unlisted_folders_as_the_general_parser() -> None:
    untagged = {"LIST": [b'() "/" A', b'(\\Marked) NIL "B C"'],
                "STATUS": [b"A (MESSAGES 3 UIDNEXT 9)",            # no UIDVALIDITY
                           b'"B C" (messages 3 uidnext 09 uidvalidity 7 HIGHESTMODSEQ NIL)',
                           b"Z (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 3)"]}
    fast, slow = _both(untagged)
    assert fast == slow
    assert fast is not None and set(fast[1]) == set()  # NIL modseq: left out, as before


def _quote(name: str) -> bytes:
    return b'"' + name.encode("utf-8").replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def test_generated_answers_agree_or_decline() -> None:
    rng = random.Random(7)
    alphabet = list("abcXYZ019 ._-&+/'\"\\%*[]()") + ["é", "0", "00"]
    agreed = 0
    for _ in range(3000):
        lists, stats = [], []
        for _ in range(rng.randint(1, 6)):
            name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
            raw = name.encode("utf-8")
            sent = _quote(name) if rng.random() < 0.5 or not raw.strip() else raw
            flags = " ".join(rng.sample(["\\HasNoChildren", "\\Sent", "\\Noselect", "$X",
                                         "7", "\\Foo%"], rng.randint(0, 3)))
            delim = rng.choice([b'"/"', b'"."', b'"\\\\"', b"NIL"])
            lists.append(b"(" + flags.encode() + b") " + delim + b" " + sent)
            values = [("MESSAGES", rng.choice(["0", "5", "012", "NIL"])),
                      ("UIDNEXT", str(rng.randint(1, 99))),
                      ("UIDVALIDITY", str(rng.randint(1, 2**32 - 1)))]
            if rng.random() < 0.5:
                values.append(("HIGHESTMODSEQ", str(rng.randint(1, 2**40))))
            rng.shuffle(values)
            stats.append(sent + b" (" + " ".join(f"{k} {v}" for k, v in values).encode()
                         + b")")
        fast, slow = _both({"LIST": lists, "STATUS": stats})
        if fast is not None:
            assert fast == slow, (lists, stats)
            agreed += 1
    assert agreed > 300  # the plain shapes (most real names) are read by the fast reader
