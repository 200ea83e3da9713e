"""Message fingerprints: recognising a copy that is already on the destination.

Why: the primary identity is our persisted map (source folder, UIDVALIDITY, UID) ->
destination UID. Fingerprints are the fallback for when that map cannot help: state lost,
a UIDVALIDITY change, a server without UIDPLUS, or an APPEND whose answer was lost in a
crash. They are computed the same way from a server's header fetch and from the bytes we
hold, so the two always agree.

A fingerprint is "strong" when the message has a Message-ID; a weak one (no Message-ID)
is only trusted together with a content hash (see :func:`content_hash`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email.header import decode_header, make_header

_FIELDS = (b"message-id", b"date", b"from", b"subject")
#: An identity field's line with its continuation lines (a blank line between them is
#: passed over, as the line-by-line reading this replaced did). Why one regex: a copy
#: fingerprints every message, and with the header block read line by line in Python a
#: fingerprint took ~14 us (~13% of a first copy's GIL time in py-spy; ~7 us now): the
#: regex engine finds the four fields in C. ``tests/test_identity_repair.py`` checks it
#: equal to that reading.
_FIELD = re.compile(rb"\n(?:[\r\x0b\x0c][ \t\r\x0b\x0c]*)?"
                    rb"(message-id|date|from|subject)[ \t\r\x0b\x0c]*:"
                    rb"([^\n]*(?:\n(?:\r?\n)*[ \t][^\n]*)*)", re.I)


@dataclass(frozen=True)
class Fingerprint:
    value: str     # hex digest; equal values = same message as far as headers and size say
    strong: bool   # True when a Message-ID took part


def header_block(raw: bytes) -> bytes:
    r"""The message's header lines, without the blank line that ends them (the first
    ``\r?\n\r?\n``). Why two ``find`` calls and not a regex: a regex for that pattern
    tries every byte position in Python's engine; ``find`` is a C scan, and the second
    one stops where the first found its answer."""
    end = raw.find(b"\n\r\n")
    lf_lf = raw.find(b"\n\n", 0, end + 1 if end >= 0 else len(raw))
    if lf_lf >= 0:
        end = lf_lf
    if end < 0:
        return raw
    return raw[:end - 1] if end and raw[end - 1] == 13 else raw[:end]


def identity_fields(header_block: bytes) -> dict[bytes, bytes]:
    """The first occurrence of each identity field, unfolded and whitespace-collapsed."""
    out: dict[bytes, bytes] = {}
    # A line starts after an LF: one in front makes the first line one too, and gives
    # the regex a literal first byte, which its engine finds by a fast scan (with ``^``
    # and MULTILINE it tried every byte position, twice as slow).
    for m in _FIELD.finditer(b"\n" + header_block):
        key = m.group(1).lower()
        if key not in out:
            out[key] = b" ".join(m.group(2).split())
            if len(out) == len(_FIELDS):
                break
    return out


def fingerprint(header_block: bytes, size: int) -> Fingerprint:
    """Fingerprint from identity headers (as fetched or as found in bytes) and the size."""
    fields = identity_fields(header_block)
    h = hashlib.sha256(b"".join(key + b"\0" + fields.get(key, b"") + b"\0" for key in _FIELDS)
                       + str(size).encode())
    return Fingerprint(value=h.hexdigest()[:40], strong=bool(fields.get(b"message-id")))


def fingerprint_bytes(raw: bytes) -> Fingerprint:
    """Fingerprint of a whole message we hold in memory; equals the server-side one."""
    return fingerprint(header_block(raw), len(raw))


def fingerprint_head(head: bytes, size: int) -> Fingerprint:
    """Fingerprint of a message of ``size`` bytes from its first bytes (a spooled one):
    the same as :func:`fingerprint_bytes` of the whole when ``head`` holds its headers."""
    return fingerprint(header_block(head), size)


def content_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def subject_of(headers: bytes) -> str:
    """The decoded Subject from a header block, at most 200 characters (findings)."""
    raw = identity_fields(headers).get(b"subject", b"")
    try:
        return str(make_header(decode_header(raw.decode("utf-8", "replace"))))[:200]
    except Exception:
        return raw.decode("utf-8", "replace")[:200]
