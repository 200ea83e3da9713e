"""Commands sent several at once, as methods of :class:`mxshift.store.imap.ImapStore`.

Why a mixin of its own: store/imap.py holds the Store contract's verbs one by one and is
kept under 600 lines; these send several of them in one round trip: the delta pass's
reads (engine/mailbox_pass.py checks for them, so a Store without them works as before)
and a first pass's CREATEs (engine/folder_step.py).

Not here, on purpose: UID EXPUNGE pipelined with the UID STOREs that set \\Deleted.
Dovecot runs pipelined commands that use no sequence numbers in parallel, so the
EXPUNGE can run before the STORE and leave the message (the engine sends it after the
STOREs' answers). SELECT/EXAMINE is safe to pipeline: Dovecot starts no later command
until a mailbox change is done.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable

from imapclient.exceptions import IMAPClientError

from mxshift.errors import FolderError, Retry
from mxshift.store import imap_wire, throttle
from mxshift.store.imap_session import _clean

if TYPE_CHECKING:
    from mxshift.store.base import FolderChanges, RawMessage
    from mxshift.store.qresync_batch import ChangesRequest


class Pipelined:
    """Mixed into ImapStore (which provides ``_c``, ``_retry``, ``_selected`` ...)."""

    _c: Any
    _retry: Callable[..., Any]
    _raise_if_back_pressure: Callable[..., None]

    def create_folders(self, names: list[str]) -> dict[str, FolderError]:
        """:meth:`create_folder` for each name in one pipelined burst
        (imap_wire.pipeline_creates); the refused ones, each with its FolderError.
        Back-pressure in any answer waits and sends the whole burst again (idempotent)."""
        if not names:
            return {}

        def once() -> list[str | None]:  # the client looked up each time (reconnects)
            answers = imap_wire.pipeline_creates(self._c._imap, names)
            for text in answers:
                if text is not None and throttle.classify(_clean(text), command="CREATE"):
                    raise IMAPClientError(text)  # _retry backs off and sends them again
            return answers

        try:
            answers = self._retry("CREATE", once)
        except IMAPClientError as exc:
            self._raise_if_back_pressure(exc, "CREATE")
            raise FolderError(f"CREATE: {_clean(str(exc))}") from None
        return {name: FolderError(f"cannot create folder {name!r}: {_clean(text)}",
                                  retry=Retry.FINAL)
                for name, text in zip(names, answers) if text is not None}

    def fetch_bodies_many(self, requests: list[tuple[str, int, list[int]]]
                          ) -> list[dict[int, "RawMessage"] | None]:
        """The bytes, flags and INTERNALDATE of several folders' messages in one round
        trip (store/body_burst.py): per (folder, UIDVALIDITY, UIDs), UID -> message, or
        None where the answer is not the whole story."""
        from mxshift.store.body_burst import fetch_bodies_many
        return fetch_bodies_many(self, requests)  # type: ignore[arg-type]

    def select_changes_many(self, requests: Iterable["ChangesRequest"]
                            ) -> list["FolderChanges | None"]:
        """``select_changes`` of several folders in one round trip (store/qresync_batch.py);
        None for a folder to read on its own."""
        from mxshift.store.qresync_batch import select_changes_many
        return select_changes_many(self, requests)  # type: ignore[arg-type]
