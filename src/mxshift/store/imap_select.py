"""Selecting a folder on an ImapStore: STATUS, SELECT/EXAMINE (and reusing a read-write
selection's status), and the QRESYNC EXAMINE that reads a folder's changes.

Why apart: what is selected, and how, is one job of the store (the reconnect re-selects
it, a burst forgets it); :class:`mxshift.store.imap.ImapStore` mixes this in.
"""

from __future__ import annotations

from typing import Iterable

from imapclient.exceptions import IMAPClientError

from mxshift.errors import FolderError
from mxshift.store import qresync
from mxshift.store.base import FolderChanges, FolderStatus, MessageMeta
from mxshift.store.fetch_parse import _META_ITEMS, _flags, _metas, _s
from mxshift.store.imap_session import _clean
from mxshift.store.uidset import compress_uids


class Selecting:
    """Mixed into :class:`mxshift.store.imap.ImapStore` (which provides ``_c``,
    ``_retry``, ``_call``, ``_fetch``, ``capabilities`` and sets ``_selected_name``,
    ``_reusable``, ``_readonly`` and ``_uidvalidity`` in its ``__init__``)."""

    def status(self, folder: str) -> FolderStatus:
        items = ["MESSAGES", "UIDNEXT", "UIDVALIDITY"]
        if "CONDSTORE" in self.capabilities:
            items.append("HIGHESTMODSEQ")
        if "STATUS=SIZE" in self.capabilities:
            items.append("SIZE")
        try:
            st = self._retry("STATUS", lambda: self._c.folder_status(folder, items))
        except IMAPClientError as exc:
            self._raise_if_back_pressure(exc, "STATUS")
            raise FolderError(f"STATUS {folder!r}: {_clean(str(exc))}") from None
        return FolderStatus(uidvalidity=int(st[b"UIDVALIDITY"]), uidnext=int(st[b"UIDNEXT"]),
                            messages=int(st[b"MESSAGES"]),
                            highestmodseq=int(st[b"HIGHESTMODSEQ"])
                            if b"HIGHESTMODSEQ" in st else None,
                            size=int(st[b"SIZE"]) if b"SIZE" in st else None)

    @property
    def _selected(self) -> str | None:
        return self._selected_name

    @_selected.setter
    def _selected(self, folder: str | None) -> None:
        """Whatever changes (or forgets) the selection forgets the reusable status."""
        self._selected_name = folder
        self._reusable = None

    def select(self, folder: str, *, readonly: bool) -> FolderStatus:
        """SELECT (or EXAMINE) ``folder``; a read-write SELECT of the folder this
        connection already has selected read-write, with no APPEND to it since, is not
        sent again: its status is reused.

        Why: a delta's move step selects a folder read-write to UID MOVE out of it, and
        that folder's own copy step, next on the same connection, selected it again:
        4.4-4.6 ms of the destination's time for the benchmark's 2,000-message INBOX, on
        the pass's critical path. What the status then says still holds for its uses:
        UIDVALIDITY and PERMANENTFLAGS do not change while a folder is selected; UIDNEXT
        only grows, and the copier takes it as the floor above which it looks for its
        appends (a lower floor only widens that search); EXISTS only shrinks by a move or
        an expunge, and a higher count only makes a first copy look for copies to adopt.
        An APPEND to the folder or another selection forgets it (a reconnect selects the
        same folder in the same mode again and checks its UIDVALIDITY)."""
        if not readonly and self._reusable is not None and self._selected == folder \
                and not self._readonly:
            return self._reusable
        try:
            st = self._retry("SELECT", lambda: self._c.select_folder(folder, readonly=readonly))
        except IMAPClientError as exc:
            self._raise_if_back_pressure(exc, "SELECT")
            raise FolderError(f"SELECT {folder!r}: {_clean(str(exc))}") from None
        self._selected = folder
        self._readonly = readonly
        self._uidvalidity = (folder, int(st[b"UIDVALIDITY"]))
        uidnext = st.get(b"UIDNEXT")
        if uidnext is None:  # some servers omit it from SELECT; STATUS always has it
            uidnext = self.status(folder).uidnext
        perm = st.get(b"PERMANENTFLAGS")
        status = FolderStatus(uidvalidity=int(st[b"UIDVALIDITY"]), uidnext=int(uidnext),
                              messages=int(st.get(b"EXISTS", 0)),
                              highestmodseq=int(st[b"HIGHESTMODSEQ"])
                              if b"HIGHESTMODSEQ" in st else None,
                              permanent_flags=frozenset(_s(f) for f in perm)
                              if perm is not None else None)
        self._reusable = None if readonly else status
        return status

    # -- reading --------------------------------------------------------------------
    def select_changes(self, folder: str, *, uidvalidity: int, modseq: int,
                       known_uids: Iterable[int]) -> FolderChanges:
        """EXAMINE folder (QRESYNC (uidvalidity modseq known-uids)): one round trip.

        imaplib's ``select`` takes no parameters, so this is its body with one more
        argument (flush the untagged responses, send, track the state), after which the
        VANISHED and FETCH responses it filed are read by :mod:`mxshift.store.qresync`.
        """
        if not {"QRESYNC", "CONDSTORE"} <= self.capabilities:
            raise FolderError("QRESYNC is not offered (or disabled) on this server")
        known = set(known_uids)
        param = qresync.select_parameter(uidvalidity, modseq, known)

        def once() -> dict[str, list[object]]:
            imap = self._c._imap  # looked up each time: a reconnect replaces the client
            imap.untagged_responses = {}
            imap.is_readonly = True
            imap.state = "AUTH"  # until the server says OK, nothing is selected
            typ, data = imap._simple_command("EXAMINE", self._c._normalise_folder(folder),
                                             param)
            if typ != "OK":  # a NO: graded below like any refused command
                raise IMAPClientError(b" ".join(d for d in data if isinstance(d, bytes))
                                      .decode("utf-8", "replace"))
            imap.state = "SELECTED"
            return imap.untagged_responses

        self._selected = None
        try:
            untagged = self._retry("SELECT", once)
        except IMAPClientError as exc:
            self._raise_if_back_pressure(exc, "SELECT")
            raise FolderError(f"SELECT {folder!r} (QRESYNC): {_clean(str(exc))}") from None
        self._selected = folder
        self._readonly = True
        try:
            found = qresync.parse_changes(untagged)
        except qresync.QresyncParseError:
            found = qresync.QresyncChanges(frozenset(), {}, unkeyed=1)
        for key in ("VANISHED", "FETCH"):
            untagged.pop(key, None)
        st = self._c._process_select_response(untagged)
        uidnext = st.get(b"UIDNEXT")
        if uidnext is None:
            uidnext = self.status(folder).uidnext
        status = FolderStatus(uidvalidity=int(st[b"UIDVALIDITY"]), uidnext=int(uidnext),
                              messages=int(st.get(b"EXISTS", 0)),
                              highestmodseq=int(st[b"HIGHESTMODSEQ"])
                              if b"HIGHESTMODSEQ" in st else None)
        self._uidvalidity = (folder, status.uidvalidity)
        changed = {u: f for u, f in found.changed.items() if f is not None}
        missing = sorted(u for u, f in found.changed.items() if f is None)
        if missing:  # a FETCH without FLAGS: ask for them (rare; not Dovecot)
            data2 = self._call(self._fetch, compress_uids(missing), ["FLAGS"])
            changed.update({u: _flags(i.get(b"FLAGS", ())) for u, i in data2.items()})
        # Given known-uids, the server reports changes among them only (Dovecot does, as
        # RFC 7162 3.2.5.2 allows): messages added above them are read here, when any.
        # They come with what identifies them (size, date, identity headers), so the pass
        # needs no second SELECT of the folder to fingerprint them.
        first_new = max(known, default=0) + 1
        added: dict[int, MessageMeta] = {}
        if known and status.uidvalidity == uidvalidity and status.uidnext > first_new:
            data3 = self._call(self._fetch, f"{first_new}:*", _META_ITEMS)
            added = {m.uid: m for m in _metas(data3) if m.uid >= first_new
                     and m.uid not in found.vanished}
            changed.update({u: m.flags for u, m in added.items()})
        return FolderChanges(status=status, vanished=found.vanished, changed=changed,
                             trusted=found.unkeyed == 0, added=added)
