"""A first copy's scan of a folder, as methods of :class:`mxshift.store.imap.ImapStore`.

Why a mixin of its own: store/imap.py holds the Store contract's verbs and is kept under
600 lines; this is a read only a first copy asks for (engine/mailbox_pass.py checks for
``flags_and_sizes``, so a Store without it scans as before).
"""

from __future__ import annotations

from array import array
from typing import Any, Callable

from imapclient.response_parser import parse_fetch_response

from mxshift.store.fetch_parse import _flags, parse_flags_sizes, scan_ranges
from mxshift.store.flag_map import FlagMap, FlagMapBuilder

#: Messages per FETCH of a first copy's scan (:meth:`FirstScan.flags_and_sizes`).
SCAN_CHUNK = 2000


class FirstScan:
    """Mixed into ImapStore (which provides ``_c``, ``_call`` and ``_fetch_answer``)."""

    _c: Any
    _call: Callable[..., Any]
    _fetch_answer: Callable[[list[str]], list]

    def flags_and_sizes(self, exists: int, uidnext: int) -> tuple[FlagMap, array]:
        """UID -> flags of every message of the selected folder, and their sizes in the
        map's UID order (``flag_map.NO_SIZE`` where the server gave none): a first
        copy's scan (engine/mailbox_pass.py), which needs both and nothing else.

        One ``UID FETCH (FLAGS RFC822.SIZE)`` per ``SCAN_CHUNK`` messages (as SELECT
        counted them: fetch_parse.scan_ranges), parsed into arrays. Why not ``1:*``:
        imaplib holds a command's whole answer, so the pass's peak memory followed the
        largest folder (issue #3)."""
        build = FlagMapBuilder()
        for uidset in scan_ranges(exists, uidnext, SCAN_CHUNK):
            first = int(uidset.partition(":")[0])
            for uid, raw, size in self._call(self._fetch_flags_sizes, uidset):
                if uid >= first:  # "N:*" matches the highest UID even when below N
                    build.add(uid, _flags(raw), size)
        return build.done(), build.sizes()

    def _fetch_flags_sizes(self, uidset: str) -> list[tuple[int, tuple[bytes, ...], int | None]]:
        data = self._fetch_answer(["UID", "FETCH", uidset, "(FLAGS RFC822.SIZE)"])
        fast = parse_flags_sizes(data)
        if fast is not None:
            return fast
        by_seq = parse_fetch_response(data, self._c.normalise_times, False)
        return [(int(i[b"UID"]), tuple(i.get(b"FLAGS", ())),  # type: ignore[call-overload, arg-type]
                 int(i[b"RFC822.SIZE"]) if b"RFC822.SIZE" in i else None)  # type: ignore[call-overload]
                for i in by_seq.values() if b"UID" in i]
