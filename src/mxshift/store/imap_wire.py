"""The commands ImapStore writes to the socket itself instead of through imaplib.

Why: these are the hot writes of a pass. imaplib's ``append`` runs a CRLF regex over every
message (a tenth of a full copy's CPU) and imapclient's multi-literal path copies each
message into a new string; and imaplib waits for each command's answer before the next,
where a delta pass's STOREs of one folder can all be in flight at once. Both functions
work on the ``imaplib.IMAP4`` under an imapclient client and leave it in step (every tag
answered), so imapclient goes on using the connection afterwards.
"""

from __future__ import annotations

import imaplib
from datetime import datetime

from imapclient.datetime_util import datetime_to_INTERNALDATE
from imapclient.exceptions import IMAPClientError
from imapclient.imapclient import _quote, seq_to_parenstr

from mxshift.store.spool import Spool

# A message above this size is sent with a synchronising literal even where LITERAL+ is
# offered: the server may refuse it (size, quota) before we send its bytes.
SYNC_LITERAL_ABOVE = 8 * 1024 * 1024
# Commands sent before reading their answers (pipeline_stores): few enough that the
# answers (a tagged OK each) never fill the socket buffers while we are still sending.
PIPELINE_DEPTH = 64


_MONTHS = (b"", b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep",
           b"Oct", b"Nov", b"Dec")


def internaldate(date: datetime) -> bytes:
    """``date`` as an APPEND's date-time ("02-Aug-2016 05:48:46 +0000"), exactly as
    imapclient's ``datetime_to_INTERNALDATE`` writes it. Why our own: that one goes
    through ``strftime`` and the zone's Python ``utcoffset``, ~5% of a first copy's
    CPU in its APPEND loop; this formats the fields directly (a naive date is left to
    imapclient, which gives it the system's zone). A year before 1000 gets its four
    digits, as RFC 3501's date-year wants (``strftime`` writes fewer)."""
    offset = date.utcoffset()
    if offset is None:
        return datetime_to_INTERNALDATE(date).encode("ascii")
    minutes = offset.days * 1440 + offset.seconds // 60
    sign = b"-" if minutes < 0 else b"+"
    hours, minutes = divmod(abs(minutes), 60)
    return b"%02d-%s-%04d %02d:%02d:%02d %s%02d%02d" % (
        date.day, _MONTHS[date.month], date.year, date.hour, date.minute, date.second,
        sign, hours, minutes)


def send_append(imap: imaplib.IMAP4, folder: str,
                messages: list[tuple[bytes | Spool, frozenset[str], datetime]], *,
                literal_plus: bool) -> tuple[str, list]:
    """Send one APPEND (MULTIAPPEND when several messages) and read its answer.

    Each literal goes straight to the socket: LITERAL+ where offered (no round trip per
    message), a synchronising literal for a message above ``SYNC_LITERAL_ABOVE`` so the
    server can refuse it before we send its bytes.
    """
    tag = imap._new_tag()  # type: ignore[attr-defined]
    imap.tagged_commands[tag] = None  # type: ignore[attr-defined]
    # Small pieces are gathered into sends of about 256 KiB; a large literal goes to
    # the socket as it is (no copy).
    parts: list[bytes] = [tag + b" APPEND " + _quote(folder).encode("ascii")]
    gathered = 0

    def flush() -> None:
        nonlocal gathered
        if parts:
            imap.send(b"".join(parts))
            parts.clear()
            gathered = 0

    for raw, flags, date in messages:
        sync = not literal_plus or len(raw) > SYNC_LITERAL_ABOVE
        parts.append(b" " + seq_to_parenstr(sorted(flags)).encode("ascii") + b' "'
                     + internaldate(date) + b'" {'
                     + str(len(raw)).encode("ascii")
                     + (b"}\r\n" if sync else b"+}\r\n"))
        if sync:
            flush()
            while imap._get_response():  # type: ignore[attr-defined]  # None: "+ ..." came
                if imap.tagged_commands.get(tag):  # type: ignore[attr-defined]  # refused
                    return imap._command_complete("APPEND", tag)  # type: ignore[attr-defined]
            _send_literal(imap, raw)
        elif len(raw) < 65536:
            parts.append(raw)
            gathered += len(raw)
            if gathered >= 262144:
                flush()
        else:
            flush()
            _send_literal(imap, raw)
    parts.append(b"\r\n")
    flush()
    return imap._command_complete("APPEND", tag)  # type: ignore[attr-defined]


def _send_literal(imap: imaplib.IMAP4, raw: bytes | Spool) -> None:
    """A literal's bytes: as they are, or a spooled message from its file."""
    if isinstance(raw, Spool):
        raw.send(imap.sock)
    else:
        imap.send(raw)


def pipeline_stores(imap: imaplib.IMAP4, todo: list[tuple[bool, str, str]]) -> None:
    """``UID STORE uidset +FLAGS.SILENT|-FLAGS.SILENT flags`` for each (add, uidset,
    flags), at most ``PIPELINE_DEPTH`` in flight; IMAPClientError with the first refusal.

    RFC 3501 5.5 allows sending commands without waiting where no command's result
    depends on another's; the caller guarantees that (engine/flag_plan.py). A lost
    connection (``imap.abort``) propagates for the caller's retry.
    """
    for i in range(0, len(todo), PIPELINE_DEPTH):
        answers = _in_flight(imap, "STORE", [
            ("UID", "STORE", uidset, "+FLAGS.SILENT" if add else "-FLAGS.SILENT", flags)
            for add, uidset, flags in todo[i:i + PIPELINE_DEPTH]])
        refused = [text for ok, text in answers if not ok]
        if refused:
            raise IMAPClientError(refused[0])


def pipeline_creates(imap: imaplib.IMAP4, names: list[str]) -> list[str | None]:
    """``CREATE name`` for each of ``names`` (raw wire names), at most ``PIPELINE_DEPTH``
    in flight; per name None (created, or there already) or the server's refusal text.

    Why: a first pass creates every folder of the mailbox before its scan; one at a time
    that is a round trip per folder (tens of folders, a few seconds per mailbox at a
    hosted server's distance). The CREATEs are independent (a server creates missing
    parents itself, RFC 3501 6.3.3, and they go in the mapping's order, parents first).
    A lost connection (``imap.abort``) propagates for the caller's retry: CREATE is
    idempotent, so the whole list is sent again.
    """
    out: list[str | None] = []
    for i in range(0, len(names), PIPELINE_DEPTH):
        for ok, text in _in_flight(imap, "CREATE", [("CREATE", _quote(name))
                                                    for name in names[i:i + PIPELINE_DEPTH]]):
            already = "ALREADYEXISTS" in text.upper() or "exists" in text.lower()
            out.append(None if ok or already else text)
    return out


def _in_flight(imap: imaplib.IMAP4, name: str,
               commands: list[tuple[str, ...]]) -> list[tuple[bool, str]]:
    """Send ``commands`` without waiting, then read every answer in order, even after a
    refusal (to stay in step): (OK?, the answer's text; a BAD's message). A lost
    connection (``imap.abort``) propagates."""
    tags = [imap._command(*args) for args in commands]  # type: ignore[attr-defined]
    out: list[tuple[bool, str]] = []
    for tag in tags:
        try:
            typ, data = imap._command_complete(name, tag)  # type: ignore[attr-defined]
        except imap.abort:
            raise
        except imap.error as exc:  # BAD
            out.append((False, str(exc)))
            continue
        out.append((typ == "OK", b" ".join(d for d in data if isinstance(d, bytes))
                    .decode("utf-8", "replace")))
    return out
