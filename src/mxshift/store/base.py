"""The Store protocol: what the engine needs from a mail server, and nothing more.

Why a protocol: the engine never speaks IMAP (as mbsync's engine never does). It calls these
operations, each with a stated contract, so the engine's decisions can be read and tested
apart from the protocol's quirks, and other back-ends (a Graph API store, say) can follow.

Contracts that hold for every method:
- UIDs are ints; flags are ``str`` in IMAP syntax (``"\\Seen"``, ``"$Forwarded"``) and
  never include ``\\Recent``; dates are timezone-aware ``datetime``.
- Methods that act on "the selected folder" require a prior :meth:`Store.select`.
- A UID the server no longer has is silently absent from results (never an error).
- Failures raise the graded errors of :mod:`mxshift.errors`; a message the server refuses
  raises :class:`~mxshift.errors.MessageError` carrying the server's own text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Iterable, Iterator, Protocol

from mxshift.mapping import Namespace, RemoteFolder

if TYPE_CHECKING:
    from mxshift.errors import FolderError
    from mxshift.store.spool import Spool


@dataclass(frozen=True)
class FolderStatus:
    """What SELECT/STATUS tell about a folder; enough to decide whether anything changed."""

    uidvalidity: int
    uidnext: int
    messages: int
    highestmodseq: int | None = None
    permanent_flags: frozenset[str] | None = None  # only from SELECT; None = unknown
    size: int | None = None  # bytes, from STATUS when the server has STATUS=SIZE


@dataclass(frozen=True)
class FolderChanges:
    """A folder selected with QRESYNC: its state and what changed since a MODSEQ.

    ``vanished``: UIDs expunged since (VANISHED (EARLIER)), among the known UIDs given;
    ``changed``: UID -> flags of every message changed since, or added above the known
    UIDs (read with one more FETCH when the server limits its answer to them, as Dovecot
    does). ``trusted`` is False
    when a response could not be tied to a UID: the caller must read the folder in full.
    When ``status.uidvalidity`` is not the one asked about, the server ignored the request
    (RFC 7162 3.2.5): both are empty and the folder needs a full scan.
    """

    status: FolderStatus
    vanished: frozenset[int]
    changed: dict[int, frozenset[str]]
    trusted: bool = True
    # Messages added above the known UIDs, with what identifies them (their flags are in
    # ``changed`` too); may be empty where the server reported them itself.
    added: dict[int, "MessageMeta"] = field(default_factory=dict)


@dataclass(frozen=True)
class MessageMeta:
    """Cheap facts about a message: enough to fingerprint it without its body."""

    uid: int
    size: int
    flags: frozenset[str]
    internaldate: datetime
    headers: bytes  # the Message-ID, Date, From, Subject header lines as the server sent them


@dataclass(frozen=True)
class RawMessage:
    uid: int
    raw: bytes | Spool  # a Spool: a large message's bytes in a temporary file (spool.py)
    flags: frozenset[str]
    internaldate: datetime


@dataclass(frozen=True)
class QuotaInfo:
    root: str
    used_bytes: int | None
    limit_bytes: int | None


class Store(Protocol):
    """One logged-in connection to one account on one server."""

    capabilities: frozenset[str]

    def namespace(self) -> Namespace:
        """The personal namespace (prefix, separator)."""
        ...

    def list_folders(self) -> list[RemoteFolder]:
        """Every folder of the account with its LIST flags (incl. special-use)."""
        ...

    def list_folders_status(self) -> tuple[list[RemoteFolder], dict[str, FolderStatus]]:
        """:meth:`list_folders`, plus the STATUS of every selectable folder where the
        server answers both in one command (LIST-STATUS, RFC 5819); the dict is empty
        otherwise, and a folder the server gave no STATUS for is absent from it."""
        ...

    def create_folder(self, name: str) -> None:
        """Create ``name`` (raw wire name); succeeds if it already exists."""
        ...

    def create_folders(self, names: list[str]) -> dict[str, FolderError]:
        """:meth:`create_folder` for several names at once (one round trip where the
        protocol allows); the names refused, each with its error, the others exist."""
        ...

    def delete_folder(self, name: str) -> None:
        """Delete an (empty) folder; only for folders mxshift created and emptied."""
        ...

    def status(self, folder: str) -> FolderStatus:
        """STATUS without selecting; ``permanent_flags`` is None."""
        ...

    def select(self, folder: str, *, readonly: bool) -> FolderStatus:
        """Select ``folder``; source folders are always selected read-only."""
        ...

    def uid_flags(self) -> dict[int, frozenset[str]]:
        """UID -> flags of every message in the selected folder."""
        ...

    def all_uids(self) -> list[int]:
        """Every UID of the selected folder (no flags): for expunge detection."""
        ...

    def changed_since(self, modseq: int) -> dict[int, frozenset[str]]:
        """UID -> flags of messages whose MODSEQ is above ``modseq`` (CONDSTORE only)."""
        ...

    def select_changes(self, folder: str, *, uidvalidity: int, modseq: int,
                       known_uids: Iterable[int]) -> FolderChanges:
        """Select ``folder`` read-only with QRESYNC (only where ``"QRESYNC"`` is in
        :attr:`capabilities`, which then means it was ENABLEd at login): what vanished
        among ``known_uids`` and what changed since ``modseq``, in one round trip."""
        ...

    def fetch_meta(self, uids: Iterable[int]) -> list[MessageMeta]:
        """Size, flags, INTERNALDATE and identity headers of ``uids``; unknown UIDs are absent."""
        ...

    def fetch_sizes(self, uids: Iterable[int]) -> dict[int, int]:
        """RFC822.SIZE of ``uids`` (the selected folder); unknown UIDs are absent. The
        cheapest identification there is: what a first copy needs to plan its batches."""
        ...

    def fetch_header_fields(self, uids: Iterable[int], names: Iterable[str]) -> dict[int, bytes]:
        """The named header lines of ``uids`` as sent (e.g. every ``Received:``)."""
        ...

    def fetch_raw(self, uids: Iterable[int]) -> Iterator[RawMessage]:
        """Full bytes of ``uids`` without setting \\Seen; one server round trip per call."""
        ...

    def fetch_spooled(self, uid: int) -> RawMessage | None:
        """One large message through a temporary file (its ``raw`` is a Spool), read in
        pieces so it is never whole in memory; None when it is gone."""
        ...

    def uids_from(self, first_uid: int) -> list[int]:
        """UIDs >= ``first_uid`` in the selected folder (ascending)."""
        ...

    def append(self, folder: str, raw: bytes | Spool, flags: Iterable[str],
               internaldate: datetime) -> int | None:
        """Append a message; returns its UID when the server says (APPENDUID), else None."""
        ...

    def append_many(self, folder: str,
                    messages: list[tuple[bytes, frozenset[str], datetime]]) -> list[int] | None:
        """Append several messages in one command (MULTIAPPEND): all or none land.

        Returns their UIDs in order when the server says (APPENDUID), else None. A refusal
        of any message raises MessageError and nothing was appended (RFC 3502).
        """
        ...

    def add_flags(self, uids: Iterable[int], flags: Iterable[str]) -> None: ...

    def store_flags(self, commands: Iterable[tuple[bool, Iterable[str], Iterable[int]]]
                    ) -> None:
        """Apply several (add, flags, uids) flag changes to the selected folder in one
        round trip; the caller guarantees they do not depend on each other's order."""
        ...

    def remove_flags(self, uids: Iterable[int], flags: Iterable[str]) -> None: ...

    def move(self, uids: list[int], folder: str) -> dict[int, int] | None:
        """Move from the selected folder; returns old->new UIDs when the server says (COPYUID)."""
        ...

    def expunge(self, uids: list[int], *, marked: bool = False) -> None:
        """Mark ``uids`` \\Deleted and expunge exactly them, never other \\Deleted messages;
        ``marked``: the caller already set \\Deleted on them (:meth:`store_flags`)."""
        ...

    def quota(self) -> QuotaInfo | None:
        """Storage quota of INBOX's quota root, or None when the server has no QUOTA."""
        ...

    def close(self) -> None:
        """Log out; tolerate a dead connection."""
        ...


def store_notes(store: object) -> list[str]:
    """What a store noted for the operator during its life (e.g. "server X throttled:
    connections reduced from 4 to 2"); a store without a ``notes`` list has none."""
    if getattr(store, "opened", True) is False:
        return []  # a LazyStore never logged in: asking it would log it in
    return list(getattr(store, "notes", None) or ())
