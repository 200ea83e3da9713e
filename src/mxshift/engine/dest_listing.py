"""The destination's login, namespace and folder list, read while the source is scanned.

Why: a delta pass mapped folders before scanning, and mapping needs the destination
(its namespace and folder list), so the destination's connect, greeting, LOGIN,
NAMESPACE and LIST (about a tenth of the issue's benchmark delta) waited in front of
the scan. When the source lists exactly the folders the state already maps
(engine/folder_listing.py: ``listing_known``) the folder pairs are known without the
destination, and the scan reads the source only; so the destination is listed in a
thread meanwhile and the mapping (which then only re-creates destination folders someone
deleted) runs after the scan, before anything is written there.

What keeps one connection used by one thread: every use of the destination by the pass
goes through :class:`ListedInBackground`, which waits for the thread first.
"""

from __future__ import annotations

import threading
from typing import Any

from mxshift.mapping import Namespace, RemoteFolder
from mxshift.store.base import Store


class ListedInBackground:
    """Stands for the destination store while a thread logs in and lists its folders;
    any use waits for that thread (and raises its error, as the use itself would)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._listing: tuple[Namespace, list[RemoteFolder]] | None = None
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._read, name="dest-listing", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            self._listing = (self._store.namespace(), self._store.list_folders())
        except BaseException as exc:  # raised to the pass on its first use
            self._failed = exc

    def listing(self) -> tuple[Namespace, list[RemoteFolder]]:
        """The destination's namespace and folders (waits; raises the thread's error)."""
        self._thread.join()
        if self._failed is not None:
            raise self._failed
        assert self._listing is not None
        return self._listing

    def wait(self) -> None:
        """Wait for the thread without raising: before the pass closes the store."""
        self._thread.join()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        self.listing()
        return getattr(self._store, name)
