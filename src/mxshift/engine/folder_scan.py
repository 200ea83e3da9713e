"""What the scan of one source folder found, and the pure helpers that read it.

Why apart from mailbox_pass.py: the sweep (engine/sweep.py), the split passes
(engine/folder_tasks.py) and the Gmail labels (engine/gmail_labels.py) read scans too;
the decisions here (which delta mode a server allows, whether a QRESYNC answer adds up
to the whole folder) are pure and tested on their own (tests/test_qresync.py).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterator, Mapping, MutableMapping, ValuesView
from dataclasses import dataclass

from mxshift.engine.copier import NewMessage
from mxshift.engine.plan import Known
from mxshift.identity import fingerprint, subject_of  # noqa: F401 - sweep.py imports it here
from mxshift.state.models import FolderPair
from mxshift.store.base import FolderChanges, FolderStatus, MessageMeta


@dataclass
class FolderScan:
    pair: FolderPair
    source_flags: Mapping[int, frozenset[str]]  # a dict, or a first copy's FlagMap
    new: MutableMapping[int, NewMessage]        # a dict, or a first copy's SizedNew
    vanished: list[int]
    uidvalidity: int
    uidnext: int
    highestmodseq: int | None = None
    mode: str = "full-scan"   # qresync | condstore | full-scan: how the source was read
    complete: bool = True     # False when something was held back (e.g. mass deletion)
    identified: bool = False  # the new messages' sizes and fingerprints were read
    # qresync/condstore: the UIDs the source reported changed since the saved
    # HIGHESTMODSEQ (new ones included). That HIGHESTMODSEQ was saved with the journal's
    # flags in step, so only these can have flag changes: the flag plan reads their rows,
    # not the folder's (the pass's cost follows the changes). None: every UID was read.
    changed: frozenset[int] | None = None
    # Set when the scan read the journal rows of the changed UIDs only (a QRESYNC
    # answer, MailboxPass._scan_read): ``source_flags`` then holds the changed UIDs'
    # flags, not the folder's. None: ``source_flags`` is the whole folder.
    partial: "Partial | None" = None


@dataclass
class Partial:
    """What a scan that read only the changed messages' rows knows of the rest."""

    rows: dict[int, Known]   # journal rows of the UIDs the source named (changed, vanished)
    messages: int            # messages in the source folder (the answer's EXISTS)


class SizedNew(MutableMapping[int, NewMessage]):
    """A first copy's new messages of one folder: UID and size only, 12 bytes a message.

    Why: a first copy knows nothing else of them until their bytes are read (see
    ``MailboxPass._identify_new``), and a pass holds every folder's new messages from
    the scan to the folder's copy: as a dict of :class:`NewMessage` that was ~150 bytes a
    message, so the pass's peak memory grew with the mailbox (issue #3). Reads make a
    :class:`NewMessage` on the fly; iteration and :meth:`values` are in UID order, so
    the copier takes ``values()`` as it is. A message set with more than a size (a
    fingerprint: adoption, Gmail labels) is kept aside in a dict.
    """

    _GONE = (1 << 64) - 1

    def __init__(self, uids: array, sizes: array) -> None:
        self._uids, self._sizes = uids, sizes  # uids ascending and unique
        self._live = len(uids)
        self._other: dict[int, NewMessage] = {}

    def _slot(self, uid: object) -> int:
        if not isinstance(uid, int) or not 0 <= uid < 1 << 32:
            return -1
        i = bisect_left(self._uids, uid)
        return i if i < len(self._uids) and self._uids[i] == uid else -1

    def __getitem__(self, uid: int) -> NewMessage:
        found = self._other.get(uid)
        if found is not None:
            return found
        i = self._slot(uid)
        if i < 0 or self._sizes[i] == self._GONE:
            raise KeyError(uid)
        return NewMessage(uid=uid, size=self._sizes[i])

    def __setitem__(self, uid: int, message: NewMessage) -> None:
        i = self._slot(uid)
        plain = not message.fingerprint and not message.subject and message.strong
        if i >= 0 and plain:
            self._other.pop(uid, None)
            if self._sizes[i] == self._GONE:
                self._live += 1
            self._sizes[i] = message.size
            return
        if i >= 0 and self._sizes[i] != self._GONE:
            self._sizes[i] = self._GONE
            self._live -= 1
        self._other[uid] = message

    def __delitem__(self, uid: int) -> None:
        if self._other.pop(uid, None) is not None:
            return
        i = self._slot(uid)
        if i < 0 or self._sizes[i] == self._GONE:
            raise KeyError(uid)
        self._sizes[i] = self._GONE
        self._live -= 1

    def __len__(self) -> int:
        return self._live + len(self._other)

    def __iter__(self) -> Iterator[int]:
        return (m.uid for m in self._ordered())

    def values(self) -> ValuesView[NewMessage]:
        return _SizedValues(self)

    def _ordered(self) -> Iterator[NewMessage]:
        gone = self._GONE
        live = (NewMessage(uid=u, size=z) for u, z in zip(self._uids, self._sizes)
                if z != gone)
        if not self._other:
            return live
        return iter(sorted([*live, *self._other.values()], key=lambda m: m.uid))


class _SizedValues(ValuesView[NewMessage]):
    """values() in UID order without a binary search per message."""

    _mapping: SizedNew

    def __iter__(self) -> Iterator[NewMessage]:
        return self._mapping._ordered()


def status_as_saved(pair: FolderPair, st: FolderStatus | None) -> bool:
    """The source folder's STATUS is what the last complete pass saved, so nothing in it
    changed (HIGHESTMODSEQ is saved only when a folder was fully in step). ``pair`` may
    also be a :class:`mxshift.engine.pass_rows.PairRow` (same attribute names)."""
    return (st is not None and pair.source_highestmodseq is not None
            and bool(pair.source_uidvalidity)
            and (st.uidvalidity, st.uidnext, st.messages, st.highestmodseq) == (
                pair.source_uidvalidity, pair.source_uidnext, pair.source_messages,
                pair.source_highestmodseq))


def delta_mode(capabilities: frozenset[str]) -> str:
    """How a changed source folder is read: "qresync", "condstore" or "full-scan".

    QRESYNC builds on CONDSTORE (RFC 7162): a server, or a ``disable_capabilities`` entry,
    that takes CONDSTORE away takes QRESYNC with it. The store ENABLEs QRESYNC at login
    and drops it from its capabilities when the server does not confirm.
    """
    if {"QRESYNC", "CONDSTORE", "ENABLE"} <= capabilities:
        return "qresync"
    return "condstore" if "CONDSTORE" in capabilities else "full-scan"


def qresync_flags(known: dict[int, Known], changes: FolderChanges,
                  exists: int) -> dict[int, frozenset[str]] | None:
    """UID -> flags of the whole folder from the journal plus a QRESYNC answer; None when
    they do not add up to the folder's message count (a message we never journalled, a
    response without UID, a server that misreports): then the folder is read in full.
    """
    if not changes.trusted:
        return None
    flags = {u: k.flags for u, k in known.items() if u not in changes.vanished}
    flags.update(changes.changed)
    return flags if len(flags) == exists else None


def new_message(meta: MessageMeta) -> NewMessage:
    """A new source message as the copy and the move planning need it."""
    fp = fingerprint(meta.headers, meta.size)
    return NewMessage(uid=meta.uid, size=meta.size, fingerprint=fp.value, strong=fp.strong,
                      subject=subject_of(meta.headers))

