"""Least-invasive repairs for real-world mail a destination refuses as it is.

Why: old servers stored messages that newer ones reject (bare LF line ends, NUL bytes).
Dropping such a message silently is not an option and neither is rewriting it freely.
Each repair here is the smallest change that commonly makes a message acceptable; the
copy is recorded as differing from the source, with the repair's description, and is
tried only after the destination refused the original bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

_BARE_LF = re.compile(rb"(?<!\r)\n")
_BARE_CR = re.compile(rb"\r(?!\n)")


@dataclass(frozen=True)
class Repair:
    name: str
    description: str
    applies: Callable[[bytes], bool]
    apply: Callable[[bytes], bytes]


def _crlf(raw: bytes) -> bytes:
    return _BARE_LF.sub(b"\r\n", _BARE_CR.sub(b"\r\n", raw))


REPAIRS: tuple[Repair, ...] = (
    Repair("crlf", "bare LF/CR line ends converted to CRLF",
           lambda raw: bool(_BARE_LF.search(raw) or _BARE_CR.search(raw)), _crlf),
    Repair("nul", "NUL bytes removed",
           lambda raw: b"\0" in raw, lambda raw: raw.replace(b"\0", b"")),
)


def line_ends(raw: bytes) -> tuple[bytes, str] | None:
    """The CRLF repair when ``raw`` needs it, else None.

    IMAP literals carry CRLF line ends; Python's imaplib rewrites bare LF/CR on APPEND
    anyway. Doing it ourselves, before identifying the message, keeps the fingerprint equal
    to what the destination stores and makes the change visible instead of silent.
    """
    rep = REPAIRS[0]
    return (rep.apply(raw), rep.description) if rep.applies(raw) else None


def candidates(raw: bytes) -> list[tuple[bytes, str]]:
    """Repaired versions to try, least invasive first, each with what was changed.

    Repairs accumulate: the second candidate includes the first when both apply.
    """
    out: list[tuple[bytes, str]] = []
    current, notes = raw, []
    for rep in REPAIRS:
        if rep.applies(current):
            current = rep.apply(current)
            notes.append(rep.description)
            out.append((current, "; ".join(notes)))
    return out
