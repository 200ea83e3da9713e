"""LIST-STATUS (RFC 5819): every folder and its STATUS in one command. Pure: no I/O.

Why: a pass decides per folder whether anything changed from its STATUS (UIDVALIDITY,
UIDNEXT, MESSAGES, HIGHESTMODSEQ). One STATUS per folder is one round trip each (17 for
a typical mailbox, most of a no-change pass); ``LIST "" "*" RETURN (STATUS (...))``
answers them all with the listing. imapclient does not know the RETURN option, so
:meth:`mxshift.store.imap.ImapStore.list_folders_status` sends it through imaplib and
hands the untagged ``LIST`` and ``STATUS`` responses, as imaplib files them, to
:func:`parse_list_status`; this module is tested with recorded server responses.

imaplib files them by type: ``"LIST"`` -> ``[b'(\\\\HasNoChildren) "/" INBOX', ...]``,
``"STATUS"`` -> ``[b'INBOX (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 1 HIGHESTMODSEQ 5)', ...]``;
a name the server sent as a literal arrives as a ``(b'... {5}', b'name')`` tuple followed
by the rest of the line.
"""

from __future__ import annotations

from collections.abc import Sequence

from imapclient.exceptions import ProtocolError
from imapclient.response_parser import parse_response
from imapclient.util import chunk

from mxshift.mapping import RemoteFolder
from mxshift.store.base import FolderStatus

#: What a pass compares to decide whether a folder changed (HIGHESTMODSEQ with CONDSTORE).
STATUS_ITEMS = ("MESSAGES", "UIDNEXT", "UIDVALIDITY")


class ListStatusError(ValueError):
    """A response the parser cannot read: the caller asks STATUS per folder instead."""


def list_command_args(capabilities: frozenset[str]) -> tuple[str, ...]:
    """The arguments after ``LIST``: ``"" "*" RETURN (SPECIAL-USE CHILDREN STATUS (...))``.

    Why SPECIAL-USE and CHILDREN: with a RETURN option the LIST is an extended one (RFC
    5258), and a server need not add the attributes a plain LIST gives unasked (Dovecot
    drops ``\\Sent`` and ``\\HasChildren``). The folder mapping reads special-use
    attributes (roles, Gmail's ``\\All`` view left out), so they are asked for by name.
    """
    items = STATUS_ITEMS + (("HIGHESTMODSEQ",) if "CONDSTORE" in capabilities else ())
    options = (["SPECIAL-USE"] if "SPECIAL-USE" in capabilities else []) + (
        ["CHILDREN"] if {"CHILDREN", "LIST-EXTENDED"} <= capabilities else [])
    options.append(f"STATUS ({' '.join(items)})")
    return ('""', '"*"', "RETURN", f"({' '.join(options)})")


def _name(value: object) -> str:
    if isinstance(value, bytes):  # as ImapStore.list_folders decodes them, exactly
        return value.decode("ascii", "replace")
    if isinstance(value, (int, str)):  # a folder named "2023" parses as an int
        return str(value)
    raise ListStatusError(f"not a folder name: {value!r}")


def _items(data: Sequence[object]) -> list[object]:
    items = [d for d in data if d not in (b"", None)]
    if not items:
        return []
    try:
        return list(parse_response(items))  # type: ignore[arg-type]
    except (ProtocolError, ValueError) as exc:
        raise ListStatusError(f"unreadable response: {exc}") from None


def parse_list(data: Sequence[object]) -> list[RemoteFolder]:
    """The untagged LIST responses -> folders with their flags (names as sent)."""
    out = []
    for flags, _delim, name in chunk(_items(data), 3):
        if not isinstance(flags, tuple):
            raise ListStatusError(f"LIST without flags: {flags!r}")
        out.append(RemoteFolder(name=_name(name), flags=frozenset(_name(f) for f in flags)))
    return out


def parse_statuses(data: Sequence[object]) -> dict[str, FolderStatus]:
    """The untagged STATUS responses -> folder name -> status; a folder without
    UIDVALIDITY, UIDNEXT or MESSAGES in its answer is left out (asked again alone)."""
    out: dict[str, FolderStatus] = {}
    for name, values in chunk(_items(data), 2):
        if not isinstance(values, tuple) or len(values) % 2:
            raise ListStatusError(f"STATUS without items: {values!r}")
        got = {_name(k).upper(): v for k, v in chunk(values, 2)}
        try:
            out[_name(name)] = FolderStatus(
                uidvalidity=int(got["UIDVALIDITY"]), uidnext=int(got["UIDNEXT"]),  # type: ignore[call-overload]
                messages=int(got["MESSAGES"]),  # type: ignore[call-overload]
                highestmodseq=int(got["HIGHESTMODSEQ"])  # type: ignore[call-overload]
                if "HIGHESTMODSEQ" in got else None)
        except (KeyError, TypeError, ValueError):
            continue
    return out


def parse_list_status(untagged: dict[str, list[object]]) -> tuple[list[RemoteFolder],
                                                                  dict[str, FolderStatus]]:
    """Folders and statuses from imaplib's untagged responses to the LIST command.
    A status for a folder the listing does not have is dropped."""
    folders = parse_list(untagged.get("LIST", []))
    statuses = parse_statuses(untagged.get("STATUS", []))
    names = {f.name for f in folders}
    return folders, {n: st for n, st in statuses.items() if n in names}
