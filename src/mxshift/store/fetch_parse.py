"""A fast parser for the FETCH answers mxshift asks for most (pure: no I/O).

Why apart from imap.py: it is a protocol detail with its own tests on recorded answers
(tests/test_parallel_fetch_parse.py), and the store module reads better without it.
"""

from __future__ import annotations

import re

from imapclient.datetime_util import parse_to_datetime

_FETCH_UID = re.compile(rb"[( ]UID (\d+)")
_FETCH_FLAGS = re.compile(rb"[( ]FLAGS \(([^)]*)\)")
_FETCH_DATE = re.compile(rb'[( ]INTERNALDATE "([^"]+)"')
_FETCH_SIZE = re.compile(rb"[( ]RFC822\.SIZE (\d+)")
_FETCH_LITERAL_KEY = re.compile(rb"[( ](BODY\[[^\]]*\](?:<\d+>)?) \{\d+\}$")  # <n>: partial


def parse_fetch_fast(data: list) -> dict[int, dict[bytes, object]] | None:
    """UID -> {item: value} from imaplib's answer to a UID FETCH of our usual items
    (UID, FLAGS, INTERNALDATE, RFC822.SIZE, one BODY[...] literal); None when the answer
    has another shape (the caller then uses imapclient's general parser).

    Why not imapclient's parser: it tokenises every response in Python, which was a
    fifth of a full copy's CPU. imaplib hands a response with a literal over as
    ``(b'7 (UID 9 FLAGS (\\Seen) INTERNALDATE "..." BODY[] {1234}', <literal>)`` followed
    by the rest of its line (``b')'``, or items a server sent after the literal); one
    without a literal as plain bytes. A response without a UID (another session's flag
    change, ``* 2 FETCH (FLAGS (...))``) is left out, as the general path does.
    """
    out: dict[int, dict[bytes, object]] = {}
    i, n = 0, len(data)
    while i < n:
        item = data[i]
        i += 1
        entry: dict[bytes, object] = {}
        if isinstance(item, tuple):
            head = item[0].rstrip()
            key = _FETCH_LITERAL_KEY.search(head)
            if key is None:
                return None
            entry[key.group(1)] = item[1]
            text = head
            if i < n and isinstance(data[i], bytes):
                text += data[i]
                i += 1
        elif isinstance(item, bytes):
            text = item
            if b"{" in text:  # a literal imaplib did not split off: not our shape
                return None
        else:
            continue
        uid = _FETCH_UID.search(text)
        if uid is None:
            continue
        flags = _FETCH_FLAGS.search(text)
        if flags is not None:
            entry[b"FLAGS"] = tuple(flags.group(1).split())
        date = _FETCH_DATE.search(text)
        if date is not None:
            entry[b"INTERNALDATE"] = parse_to_datetime(date.group(1), normalise=False)
        size = _FETCH_SIZE.search(text)
        if size is not None:
            entry[b"RFC822.SIZE"] = int(size.group(1))
        out[int(uid.group(1))] = entry
    return out


def parse_body_fetch(data: list) -> dict[int, dict[bytes, object]]:
    """The answer to a body FETCH: only the responses that carry a BODY[]."""
    parsed = parse_fetch_fast(data) or {}
    return {u: e for u, e in parsed.items() if b"BODY[]" in e and b"INTERNALDATE" in e}
