"""QRESYNC (RFC 7162): the SELECT parameter and the responses imapclient does not parse.

Why a module of its own: ``SELECT folder (QRESYNC (uidvalidity modseq known-uids))``
answers with untagged ``VANISHED (EARLIER) <uid-set>`` (messages expunged since
``modseq``) and ``FETCH (UID FLAGS MODSEQ)`` (messages changed or added since), so a delta
pass costs what changed, not what the folder holds. imapclient knows neither; this is
the thin, pure adapter in front of it (no I/O), tested with recorded server responses.
:meth:`mxshift.store.imap.ImapStore.select_changes` sends the command and hands the
untagged responses, as imaplib files them, to :func:`parse_changes`.

imaplib files an untagged response by its type: ``"VANISHED"`` -> ``[b"(EARLIER) 3:4,7"]``;
``"FETCH"`` -> ``[b"2 (UID 2 MODSEQ (14) FLAGS (\\\\Seen))"]``, or, where the server sent a
literal, a ``(b"... {12}", b"literal bytes")`` tuple followed by the rest of the line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from imapclient.exceptions import ProtocolError
from imapclient.response_parser import parse_fetch_response

from mxshift.store.fetch_parse import parse_uid_flags
from mxshift.store.uidset import UidRuns, compress_uids

_UID_SET_RE = re.compile(r"^\d+(?::\d+)?(?:,\d+(?::\d+)?)*$")


class QresyncParseError(ValueError):
    """A QRESYNC response the adapter cannot read: the caller falls back to a full scan."""


@dataclass(frozen=True)
class QresyncChanges:
    """What the untagged responses to a QRESYNC SELECT said.

    ``changed`` maps a UID to its flags, or to None when the server sent the FETCH without
    FLAGS (the caller then asks for them). ``unkeyed`` counts FETCH responses without a
    UID: their message cannot be named, so a caller must not trust the delta.
    """

    vanished: frozenset[int]
    changed: dict[int, frozenset[str] | None]
    unkeyed: int = 0
    earlier: bool = True  # every VANISHED carried (EARLIER); False: some were live expunges


def select_parameter(uidvalidity: int, modseq: int, known_uids: Iterable[int] = ()) -> str:
    """``(QRESYNC (uidvalidity modseq known-uids))``; ``known-uids`` left out when empty.

    The known UIDs are sent compressed ("1:4000,4002"): it is what bounds the server's
    VANISHED (EARLIER) answer to messages we actually hold, at one short line.
    """
    if uidvalidity <= 0 or modseq <= 0:
        raise ValueError(f"QRESYNC needs a UIDVALIDITY and a MODSEQ > 0, "
                         f"not {uidvalidity}/{modseq}")
    if isinstance(known_uids, UidRuns):
        text = known_uids.text() if known_uids else ""
    else:
        uids = set(known_uids)
        text = compress_uids(uids) if uids else ""
    inner = f"{uidvalidity} {modseq}" + (f" {text}" if text else "")
    return f"(QRESYNC ({inner}))"


def parse_uid_set(text: str) -> set[int]:
    """``"3:5,9"`` -> ``{3, 4, 5, 9}``; a ``*`` is refused (VANISHED never sends one)."""
    text = text.strip()
    if not _UID_SET_RE.match(text):
        raise QresyncParseError(f"not a UID set: {text!r}")
    out: set[int] = set()
    for part in text.split(","):
        if ":" in part:
            a, b = (int(x) for x in part.split(":"))
            out.update(range(min(a, b), max(a, b) + 1))
        else:
            out.add(int(part))
    return out


def parse_vanished(data: Iterable[bytes | str]) -> tuple[frozenset[int], bool]:
    """Every VANISHED response's UIDs, and whether all were ``(EARLIER)``."""
    uids: set[int] = set()
    earlier = True
    for item in data:
        text = item.decode("ascii", "replace") if isinstance(item, bytes) else item
        text = text.strip()
        if text.upper().startswith("(EARLIER)"):
            text = text[len("(EARLIER)"):]
        else:
            earlier = False
        uids |= parse_uid_set(text)
    return frozenset(uids), earlier


def _flag_set(raw: Iterable[bytes | str]) -> frozenset[str]:
    out = set()
    for f in raw:
        s = f.decode("ascii", "replace") if isinstance(f, bytes) else str(f)
        if s.lower() != "\\recent":
            out.add(s)
    return frozenset(out)


def parse_fetches(data: Sequence[bytes | tuple[bytes, bytes]]) -> tuple[
        dict[int, frozenset[str] | None], int]:
    """UID -> flags (None: no FLAGS sent) of the FETCH responses, and how many had no UID.

    Plain lines (the usual answer) are read by ``fetch_parse.parse_uid_flags``; any
    other shape by imapclient's own FETCH parser (literals included). A later response
    for the same UID wins, as it is the newer state.
    """
    if not data:
        return {}, 0
    fast = parse_uid_flags(data)
    if fast is not None:
        return fast
    try:
        parsed = parse_fetch_response(list(data), False, False)
    except (ProtocolError, ValueError) as exc:
        raise QresyncParseError(f"unreadable FETCH response: {exc}") from None
    changed: dict[int, frozenset[str] | None] = {}
    unkeyed = 0
    for item in parsed.values():
        uid = item.get(b"UID")
        if uid is None:
            unkeyed += 1
            continue
        flags = item.get(b"FLAGS")
        changed[int(uid)] = _flag_set(flags) if flags is not None else None  # type: ignore[arg-type]
    return changed, unkeyed


def parse_changes(untagged: Mapping[str, Sequence[object]]) -> QresyncChanges:
    """The VANISHED and FETCH responses among ``untagged`` (imaplib's dict), read.

    A UID reported both vanished and changed is vanished: the expunge is the later fact
    (RFC 7162 3.2.5.1 lets a server send the FETCH of a message it expunges after).
    """
    vanished, earlier = parse_vanished(untagged.get("VANISHED", ()))  # type: ignore[arg-type]
    changed, unkeyed = parse_fetches(untagged.get("FETCH", ()))  # type: ignore[arg-type]
    for uid in vanished:
        changed.pop(uid, None)
    return QresyncChanges(vanished=vanished, changed=changed, unkeyed=unkeyed, earlier=earlier)
