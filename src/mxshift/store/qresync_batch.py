"""The QRESYNC scan of several folders in one round trip (pipelined EXAMINEs).

Why: a delta pass read each changed source folder with ``EXAMINE folder (QRESYNC ...)``
and then ``UID FETCH first-new:*`` of the new messages' sizes and identity headers, two
round trips per folder, one folder after another; seventeen changed folders cost 34
round trips, or extra source connections (and their logins, each costing the source
server more CPU than the scan itself) to share them. Every argument of those commands is
known before the first is sent (the saved UIDVALIDITY, HIGHESTMODSEQ and known UIDs; the
first new UID), so they are sent together and their answers read in order, as mbsync
does. RFC 3501 5.5 allows it: a SELECT/EXAMINE that fails leaves no folder selected, so
the FETCH that follows it fails too and never reads another folder.

What the caller gets per folder: the same :class:`FolderChanges` as
``ImapStore.select_changes``, or None where the pipelined answer is not the whole story
(a refusal, a FETCH without FLAGS, new mail the listing did not show): the caller then
scans that folder on its own, as before.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imapclient.exceptions import IMAPClientError

from mxshift.store import qresync
from mxshift.store.base import FolderChanges, FolderStatus
from mxshift.store.fetch_parse import parse_fetch_fast
from mxshift.store.uidset import highest_uid

if TYPE_CHECKING:
    from mxshift.store.imap import ImapStore

# Folders per burst: two commands each, answers small (flag changes, identity headers).
BURST = 24


@dataclass(frozen=True)
class ChangesRequest:
    """One folder to read: what the last complete pass saved, and the first UID above
    the known ones whose sizes and headers to fetch (None: the listing shows none)."""

    folder: str
    uidvalidity: int
    modseq: int
    known_uids: Collection[int]  # a frozenset, or the journal's UidRuns
    first_new: int | None


def select_changes_many(store: "ImapStore", requests: Iterable[ChangesRequest]
                        ) -> list[FolderChanges | None]:
    """The changes of each requested folder, in order (None: read it on its own).

    ``requests`` may be a generator: each folder's commands go out as soon as it yields
    the folder, so the server answers the first ones while the caller reads its journal
    for the next (the known UIDs of a large folder take a few milliseconds)."""
    out: list[FolderChanges | None] = []
    source = iter(requests)
    while True:
        part: list[ChangesRequest] = []
        sent = _Sent(store, source, part)
        answers = store._retry("SELECT", sent.burst)
        out.extend(answers)
        if len(part) < BURST:
            return out


class _Sent:
    """One burst: takes up to BURST requests from ``source`` (remembered in ``part``,
    so that a retry after a reconnect sends the same ones again)."""

    def __init__(self, store: "ImapStore", source: Iterator[ChangesRequest],
                 part: list[ChangesRequest]) -> None:
        self.store, self.source, self.part = store, source, part
        self.drawn = False

    def requests(self) -> Iterator[ChangesRequest]:
        if self.drawn:
            yield from self.part
            return
        self.drawn = True
        for r in self.source:
            self.part.append(r)
            yield r
            if len(self.part) >= BURST:
                return

    def burst(self) -> list[FolderChanges | None]:
        return _burst(self.store, self.requests())


def _burst(store: "ImapStore", requests: Iterable[ChangesRequest]
           ) -> list[FolderChanges | None]:
    from mxshift.store.imap import _META_ITEMS, _metas  # noqa: PLC0415 - no cycle at import

    pending = iter(requests)
    first = next(pending, None)
    if first is None:
        return []  # nothing asked: the connection is left as it is
    c = store._c
    imap = begin_burst(store)
    tags: list[tuple[str, str | None]] = []
    asked: list[ChangesRequest] = []
    for r in itertools.chain([first], pending):
        asked.append(r)
        param = qresync.select_parameter(r.uidvalidity, r.modseq, r.known_uids)
        examine = imap._command("EXAMINE", c._normalise_folder(r.folder), param)
        fetch = None
        if r.first_new is not None:
            fetch = imap._command("UID", "FETCH", f"{r.first_new}:*",
                                  "(" + " ".join(_META_ITEMS) + ")")
        tags.append((examine, fetch))
    out: list[FolderChanges | None] = []
    last: tuple[str, int] | None = None
    for r, (examine, fetch) in zip(asked, tags):
        try:
            typ, _data = imap._command_complete("EXAMINE", examine)
        except imap.abort:
            raise  # the connection is gone: the caller's retry logs in again
        except imap.error:  # BAD: read on, the answers of the others follow
            typ = "BAD"
        untagged, imap.untagged_responses = imap.untagged_responses, {}
        changes = _changes(c, r, untagged) if typ == "OK" else None
        added_data = None
        if fetch is not None:
            try:
                typ2, _data2 = imap._command_complete("FETCH", fetch)
            except imap.abort:
                raise
            except imap.error:  # BAD, e.g. no folder selected after a refused EXAMINE
                typ2 = "BAD"
            fetched, imap.untagged_responses = imap.untagged_responses.pop("FETCH", []), {}
            if typ2 == "OK":
                added_data = parse_fetch_fast(fetched)
            if added_data is None:
                changes = None  # an answer of another shape: read the folder on its own
        if changes is not None:
            last = (r.folder, changes.status.uidvalidity)
            changes = _with_added(changes, r, added_data, _metas)
        out.append(changes)
    if last is not None and out and out[-1] is not None:
        store._selected, store._readonly, store._uidvalidity = last[0], True, last
    else:
        imap.state = "AUTH"  # the last EXAMINE may have failed: nothing known selected
    return out


def begin_burst(store: "ImapStore"):  # type: ignore[no-untyped-def]
    """The store's imaplib client, ready for a pipelined burst of EXAMINEs and UID
    FETCHes (store/body_burst.py too): no folder known as selected, no answers left
    over, and the state imaplib wants before it sends a UID FETCH."""
    imap = store._c._imap  # looked up each time: a reconnect replaces the client
    store._selected = None
    imap.untagged_responses = {}
    imap.is_readonly = True
    imap.state = "SELECTED"  # imaplib sends UID FETCH only in this state
    return imap


def _changes(c, r: ChangesRequest, untagged: dict) -> FolderChanges | None:  # type: ignore[no-untyped-def]
    """The EXAMINE's answer as select_changes reads it; None when not the whole story."""
    try:
        found = qresync.parse_changes(untagged)
    except qresync.QresyncParseError:
        return None
    if any(f is None for f in found.changed.values()):
        return None  # a FETCH without FLAGS (not Dovecot): ask for them on its own
    for key in ("VANISHED", "FETCH"):
        untagged.pop(key, None)
    try:
        st = c._process_select_response(untagged)
    except (IMAPClientError, KeyError, ValueError):
        return None
    if b"UIDNEXT" not in st or b"UIDVALIDITY" not in st:
        return None
    status = FolderStatus(uidvalidity=int(st[b"UIDVALIDITY"]), uidnext=int(st[b"UIDNEXT"]),
                          messages=int(st.get(b"EXISTS", 0)),
                          highestmodseq=int(st[b"HIGHESTMODSEQ"])
                          if b"HIGHESTMODSEQ" in st else None)
    return FolderChanges(status=status, vanished=found.vanished,
                         changed={u: f for u, f in found.changed.items() if f is not None},
                         trusted=found.unkeyed == 0)


def _with_added(changes: FolderChanges, r: ChangesRequest, data: dict | None,  # type: ignore[type-arg]
                metas) -> FolderChanges | None:  # type: ignore[no-untyped-def]
    """Add the new messages' metadata, as select_changes does; None when new mail
    arrived that the request did not fetch (the listing was older than the EXAMINE)."""
    st = changes.status
    known = r.known_uids
    first_new = highest_uid(known) + 1
    if not known or st.uidvalidity != r.uidvalidity or st.uidnext <= first_new:
        return changes  # nothing above the known UIDs (or a full scan follows anyway)
    if data is None:
        return None
    added = {m.uid: m for m in metas(data) if m.uid >= first_new
             and m.uid not in changes.vanished}
    changed = dict(changes.changed)
    changed.update({u: m.flags for u, m in added.items()})
    return FolderChanges(status=st, vanished=changes.vanished, changed=changed,
                         trusted=changes.trusted, added=added)
