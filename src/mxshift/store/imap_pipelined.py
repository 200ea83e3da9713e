"""The delta pass's pipelined reads, as a method of :class:`mxshift.store.imap.ImapStore`.

Why a mixin of its own: store/imap.py holds the Store contract's verbs one by one and is
kept under 600 lines; this sends several of them in one round trip, which only the delta
pass asks for (engine/mailbox_pass.py checks for it, so a Store without it works as
before).

Not here, on purpose: UID EXPUNGE pipelined with the UID STOREs that set \\Deleted.
Dovecot runs pipelined commands that use no sequence numbers in parallel, so the
EXPUNGE can run before the STORE and leave the message (the engine sends it after the
STOREs' answers). SELECT/EXAMINE is safe to pipeline: Dovecot starts no later command
until a mailbox change is done.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mxshift.store.base import FolderChanges
    from mxshift.store.qresync_batch import ChangesRequest


class Pipelined:
    """Mixed into ImapStore (which provides ``_c``, ``_retry``, ``_selected`` ...)."""

    def select_changes_many(self, requests: Iterable["ChangesRequest"]
                            ) -> list["FolderChanges | None"]:
        """``select_changes`` of several folders in one round trip (store/qresync_batch.py);
        None for a folder to read on its own."""
        from mxshift.store.qresync_batch import select_changes_many
        return select_changes_many(self, requests)  # type: ignore[arg-type]
