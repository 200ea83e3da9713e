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
_HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class Fingerprint:
    value: str     # hex digest; equal values = same message as far as headers and size say
    strong: bool   # True when a Message-ID took part


def header_block(raw: bytes) -> bytes:
    """The message's header lines, without the blank line that ends them."""
    m = _HEADER_END.search(raw)
    return raw[: m.start()] if m else raw



def identity_fields(header_block: bytes) -> dict[bytes, bytes]:
    """The first occurrence of each identity field, unfolded and whitespace-collapsed."""
    out: dict[bytes, bytes] = {}
    current: bytes | None = None
    for line in re.split(rb"\r?\n", header_block):
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
        current = key if key in _FIELDS and key not in out else None
        if current is not None:
            out[key] = value.strip()
    return {k: b" ".join(v.split()) for k, v in out.items()}


def fingerprint(header_block: bytes, size: int) -> Fingerprint:
    """Fingerprint from identity headers (as fetched or as found in bytes) and the size."""
    fields = identity_fields(header_block)
    h = hashlib.sha256()
    for key in _FIELDS:
        h.update(key + b"\0" + fields.get(key, b"") + b"\0")
    h.update(str(size).encode())
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
