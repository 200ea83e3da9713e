"""The FETCH items mxshift asks for most, and a fast parser of their answers (pure: no I/O).

Why apart from imap.py: it is a protocol detail with its own tests on recorded answers
(tests/test_parallel_fetch_parse.py), and the store module reads better without it.
"""

from __future__ import annotations

import re

from typing import Iterable

from imapclient.datetime_util import parse_to_datetime

from mxshift.store.base import MessageMeta

IDENTITY_FIELDS = b"BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)]"
_META_ITEMS = ["RFC822.SIZE", "FLAGS", "INTERNALDATE",
               "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)]"]

_FETCH_UID = re.compile(rb"[( ]UID (\d+)")
_FETCH_FLAGS = re.compile(rb"[( ]FLAGS \(([^)]*)\)")
_FETCH_DATE = re.compile(rb'[( ]INTERNALDATE "([^"]+)"')
_FETCH_SIZE = re.compile(rb"[( ]RFC822\.SIZE (\d+)")
_FETCH_LITERAL_KEY = re.compile(rb"[( ](BODY\[[^\]]*\]) \{\d+\}$")


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


def parse_flags_sizes(data: list) -> list[tuple[int, tuple[bytes, ...], int | None]] | None:
    """(uid, flags, size or None) of each response to a ``UID FETCH (FLAGS RFC822.SIZE)``
    in the order sent; None when one has another shape (a literal: the caller then uses
    the general parser). A response without a UID is left out, as in
    :func:`parse_fetch_fast`.

    Why not :func:`parse_fetch_fast`: a scan reads every message of a folder, and a dict
    per message (~300 bytes) was most of the scan's memory high-water mark."""
    out: list[tuple[int, tuple[bytes, ...], int | None]] = []
    for text in data:
        if not isinstance(text, bytes):
            if isinstance(text, tuple):
                return None
            continue
        if b"{" in text:
            return None
        uid = _FETCH_UID.search(text)
        if uid is None:
            continue
        flags = _FETCH_FLAGS.search(text)
        size = _FETCH_SIZE.search(text)
        out.append((int(uid.group(1)), tuple(flags.group(1).split()) if flags else (),
                    int(size.group(1)) if size is not None else None))
    return out


def parse_uid_flags(data: Iterable[object]) -> tuple[dict[int, frozenset[str] | None], int] | None:
    """UID -> flags (None: no FLAGS item) of plain FETCH responses such as a QRESYNC
    SELECT's ``2 (UID 2 MODSEQ (14) FLAGS (\\Seen))``, and how many had no UID; None when
    one has another shape (a literal, a quoted string: the caller then uses imapclient's
    parser, store/qresync.py). A later response for the same UID wins.

    Why: a delta's scan reads one such line per changed message, and imapclient's
    tokeniser was a twentieth of a delta pass's CPU (py-spy, bench/delta_pass.py)."""
    changed: dict[int, frozenset[str] | None] = {}
    unkeyed = 0
    for text in data:
        if not isinstance(text, bytes) or b"{" in text or b'"' in text:
            return None
        uid = _FETCH_UID.search(text)
        if uid is None:
            unkeyed += 1
            continue
        flags = _FETCH_FLAGS.search(text)
        changed[int(uid.group(1))] = (_flags(tuple(flags.group(1).split()))
                                      if flags is not None else None)
    return changed, unkeyed


def scan_ranges(exists: int, uidnext: int, chunk: int) -> list[str]:
    """UID ranges that cover a folder of ``exists`` messages below ``uidnext`` in about
    ``chunk`` messages each: ``["1:*"]`` for a small folder; else ``ceil(exists / chunk)``
    equal spans of the UID space, the last one open (``"N:*"``, which also matches the
    highest UID when it is below N: the caller drops what is below N there).

    Why spans of the UID space, not sequence numbers: UIDs do not shift when another
    session expunges between two commands, so no message is skipped; the number of
    commands follows the message count even when UIDs are sparse (an uneven spread only
    makes some spans larger, never more of them)."""
    if exists <= chunk or uidnext <= 2:
        return ["1:*"]
    parts = -(-exists // chunk)
    step = max(1, -(-(uidnext - 1) // parts))
    out = []
    first = 1
    while first + step <= uidnext - 1 and len(out) < parts - 1:
        out.append(f"{first}:{first + step - 1}")
        first += step
    out.append(f"{first}:*")
    return out


def parse_body_fetch(data: list) -> dict[int, dict[bytes, object]]:
    """The answer to a body FETCH: only the responses that carry a BODY[]."""
    parsed = parse_fetch_fast(data) or {}
    return {u: e for u, e in parsed.items() if b"BODY[]" in e and b"INTERNALDATE" in e}


def _s(value: bytes | str) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value


def _flags(raw: Iterable[bytes | str]) -> frozenset[str]:
    """The flags of one message; equal flag lists share one frozenset.

    Why shared: a scan holds the flags of every message of a mailbox for the whole pass,
    and a mailbox has a few dozen distinct flag sets, not one per message (~200 bytes
    each: 1 MB per 5,000 messages)."""
    key = raw if isinstance(raw, tuple) else tuple(raw)
    found = _FLAG_SETS.get(key)
    if found is None:
        found = frozenset(_s(f) for f in key if _s(f).lower() != "\\recent")
        if len(_FLAG_SETS) < 4096:  # bounded: keywords could make every set unique
            _FLAG_SETS[key] = found
    return found


_FLAG_SETS: dict[tuple, frozenset[str]] = {}


def _metas(data: dict[int, dict[bytes, object]],
           uids: Iterable[int] | None = None) -> list[MessageMeta]:
    """MessageMeta of each answer to a FETCH of ``_META_ITEMS`` (of ``uids``, in order)."""
    out = []
    for uid in sorted(data) if uids is None else uids:
        item = data.get(uid)
        if item is None or b"RFC822.SIZE" not in item:
            continue
        header = next((v for k, v in item.items()
                       if k.startswith(b"BODY[HEADER.FIELDS")), b"") or b""
        out.append(MessageMeta(uid=uid, size=int(item[b"RFC822.SIZE"]),  # type: ignore[call-overload]
                               flags=_flags(item.get(b"FLAGS", ())),  # type: ignore[arg-type]
                               internaldate=item[b"INTERNALDATE"],  # type: ignore[arg-type]
                               headers=header))  # type: ignore[arg-type]
    return out
