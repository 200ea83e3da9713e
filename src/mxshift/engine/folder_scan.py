"""What the scan of one source folder found, and the pure helpers that read it.

Why apart from mailbox_pass.py: the sweep (engine/sweep.py), the split passes
(engine/folder_tasks.py) and the Gmail labels (engine/gmail_labels.py) read scans too;
the decisions here (which delta mode a server allows, whether a QRESYNC answer adds up
to the whole folder) are pure and tested on their own (tests/test_qresync.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from mxshift.engine.copier import NewMessage
from mxshift.engine.plan import Known
from mxshift.identity import fingerprint, subject_of  # noqa: F401 - sweep.py imports it here
from mxshift.state.models import FolderPair
from mxshift.store.base import FolderChanges, FolderStatus, MessageMeta


@dataclass
class FolderScan:
    pair: FolderPair
    source_flags: dict[int, frozenset[str]]
    new: dict[int, NewMessage]
    vanished: list[int]
    uidvalidity: int
    uidnext: int
    highestmodseq: int | None = None
    mode: str = "full-scan"   # qresync | condstore | full-scan: how the source was read
    complete: bool = True     # False when something was held back (e.g. mass deletion)
    identified: bool = False  # the new messages' sizes and fingerprints were read


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

