"""LIST-STATUS answers read with two regular expressions. Pure: no I/O.

Why: every pass starts with ``LIST "" "*" RETURN (... STATUS (...))``; imapclient's
general tokenizer (Python, byte by byte) took ~1 ms of CPU for a 17-folder mailbox, a
tenth of a no-change pass's own CPU, on a machine where a run over hundreds of
mailboxes is CPU-bound. Servers answer in a few plain shapes: flags, a quoted
delimiter, the name as an atom or a quoted string; the STATUS items as atom/number
pairs. :func:`parse` reads exactly those and gives what
:func:`mxshift.store.list_status.parse_list_status` gives for them (names as that
parser spells them: an atom as sent, a quoted string unescaped); for anything else (a
name sent as a literal, NIL where a name or flag belongs, extended LIST data, an
unusual atom) it returns None and the caller uses that parser.
``tests/test_list_status_lines.py`` compares the two on recorded and generated answers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mxshift.mapping import RemoteFolder
from mxshift.store.base import FolderStatus

# A name: a quoted string (group "q") or an atom of plain characters (group "a"): no
# brackets, braces, quotes, backslashes, wildcards or controls, which imapclient's
# tokenizer would read differently.
_NAME = rb'(?:"(?P<q>(?:[^"\\\r\n]|\\.)*)"|(?P<a>[!#$&\'+,\-./0-9:;<=>?@A-Z^_`a-z|~\x80-\xff]+))'
_LIST = re.compile(rb'\((?P<flags>[^()"{}\[\]%\r\n]*)\) (?:"(?:[^"\\\r\n]|\\.)"|NIL) '
                   + _NAME + rb"\Z")
_STATUS = re.compile(_NAME + rb' \((?P<items>[A-Za-z0-9 =.\-]*)\)\Z')
_ESCAPE = re.compile(rb"\\([\\\"])")


def _name(m: re.Match[bytes]) -> str:
    quoted = m.group("q")
    raw = m.group("a") if quoted is None else _ESCAPE.sub(rb"\1", quoted)
    return raw.decode("ascii", "replace")


def _lines(data: Sequence[object]) -> list[bytes] | None:
    out = []
    for d in data:
        if d == b"" or d is None:
            continue
        if not isinstance(d, bytes):
            return None  # a literal: the general parser
        out.append(d)
    return out


def parse(untagged: dict[str, list[object]]
          ) -> tuple[list[RemoteFolder], dict[str, FolderStatus]] | None:
    """Folders and statuses as ``parse_list_status`` gives them, or None when the answer
    has a shape this reader leaves to it."""
    lists = _lines(untagged.get("LIST", []))
    stats = _lines(untagged.get("STATUS", []))
    if lists is None or stats is None:
        return None
    folders = []
    for line in lists:
        m = _LIST.match(line)
        if m is None:
            return None
        flags = m.group("flags").split()
        if b"NIL" in flags or m.group("a") == b"NIL":
            return None  # None to imapclient: the general parser refuses it
        folders.append(RemoteFolder(name=_name(m), flags=frozenset(
            f.decode("ascii", "replace") for f in flags)))
    statuses: dict[str, FolderStatus] = {}
    for line in stats:
        m = _STATUS.match(line)
        if m is None or m.group("a") == b"NIL":
            return None
        items = m.group("items").split()
        if len(items) % 2:
            return None  # the general parser refuses it; let it say so
        got = {k.decode("ascii").upper(): v for k, v in zip(items[::2], items[1::2])}
        try:
            status = FolderStatus(
                uidvalidity=int(got["UIDVALIDITY"]), uidnext=int(got["UIDNEXT"]),
                messages=int(got["MESSAGES"]),
                highestmodseq=int(got["HIGHESTMODSEQ"]) if "HIGHESTMODSEQ" in got else None)
        except (KeyError, ValueError):
            continue  # as the general parser: asked again alone
        statuses[_name(m)] = status
    names = {f.name for f in folders}
    return folders, {n: st for n, st in statuses.items() if n in names}
