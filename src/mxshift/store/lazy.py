"""A store that logs in when it is first used, or in the background when asked to.

Why: a pass whose source shows no change has nothing to do on the destination; its
login (connect, CAPABILITY, LOGIN, ENABLE, NAMESPACE, LIST, LOGOUT) was half of a
no-change pass. The pass holds the destination as a ``LazyStore``: the first use of any
Store method logs in; :meth:`prefetch` starts the login in a thread as soon as the pass
knows it will need it, so a delta pass does not wait for it either.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from mxshift.store.base import Store


class LazyStore:
    """Stands for the store ``open_store`` returns; opens it on first use."""

    def __init__(self, open_store: Callable[[], Store]) -> None:
        self._open = open_store
        self._store: Store | None = None
        self._failed: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def opened(self) -> bool:
        """True once the store was logged in (closing then logs it out)."""
        return self._store is not None

    def prefetch(self) -> None:
        """Log in now, in a thread; the first use waits for it (and raises its error)."""
        with self._lock:
            if self._thread is None and self._store is None and self._failed is None:
                self._thread = threading.Thread(target=self._login, daemon=True)
                self._thread.start()

    def _login(self) -> None:
        try:
            self._store = self._open()
        except BaseException as exc:  # raised to whoever uses the store
            self._failed = exc

    def store(self) -> Store:
        """The logged-in store (logging in now if needed)."""
        self.prefetch()
        assert self._thread is not None
        self._thread.join()
        if self._failed is not None:
            raise self._failed
        assert self._store is not None
        return self._store

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not a Store attribute: never log in for it
            raise AttributeError(name)
        return getattr(self.store(), name)

    @property
    def notes(self) -> list[str]:
        return list(getattr(self._store, "notes", None) or ()) if self._store else []

    def close(self) -> None:
        """Log out if logged in; a login still running is waited for, then logged out."""
        if self._thread is not None:
            self._thread.join()
        if self._store is not None:
            self._store.close()
