"""Scanning the changed folders of one mailbox over several source connections.

Used with CONDSTORE (several round trips per folder); with QRESYNC the pass reads every
changed folder in one pipelined round trip instead (store/qresync_batch.py) and only
warms the copy phase's connections here (:meth:`SpareSources.warm`).

Why: a delta pass reads each changed source folder in two round trips (EXAMINE with
QRESYNC, then the new messages' sizes and headers), one folder after the other; with
seventeen changed folders that was a fifth of the issue's benchmark delta. Scans are
independent (each reads its own folder and its own journal rows), so a few source
connections share them. The connections are then handed to the copy phase
(:class:`mxshift.engine.folder_pool.FolderPool` takes them through ``open_source``),
so a pass logs in to the source no more often than it did.

What keeps the promises: a scan writes nothing to the destination; its only journal
writes (forgetting rows of skipped messages gone from the source, a first UIDVALIDITY)
are single transactions, as in the serial loop. The first failure other than a
folder's own error is re-raised in the pass's thread after every scan stopped.
"""

from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

from mxshift.engine.folder_pool import join_working, refused_quietly
from mxshift.engine.limits import NoFreeSlot, without_waiting
from mxshift.errors import FolderError
from mxshift.store.base import Store

P = TypeVar("P")
R = TypeVar("R")


class SpareSources:
    """Stores opened ahead of the copy phase (the scan's source connections, or
    destination connections logged in while the source is scanned: :meth:`warm`),
    handed out again by :meth:`open` (then new ones are opened); :meth:`drain` gives
    back those nobody took."""

    def __init__(self, open_source: Callable[[], Store]) -> None:
        self._open = open_source
        self._spare: list[Store] = []
        self._lock = threading.Condition()
        self._drained = False
        self._warming = 0  # logins started by warm() and not yet done

    def add(self, store: Store) -> None:
        """Keep ``store`` for the copy phase; after :meth:`drain` (the pass is over) it
        is logged out at once."""
        with self._lock:
            if not self._drained:
                self._spare.append(store)
                self._lock.notify()
                return
        store.close()

    def warm(self, count: int) -> None:
        """Log in ``count`` stores in threads, for :meth:`open` to hand out.

        Why: the copy phase of a delta opened its extra destination connections when it
        started, and waited for their logins (connect, greeting, LOGIN, ENABLE) with
        the work in front of it; opened while the source is scanned, they are ready.
        Only free slots are taken (``without_waiting``); a refusal here is not an error,
        the copy phase's own attempt reports it."""
        def login() -> None:
            store = None
            try:
                with without_waiting():
                    store = self._open()
            except Exception:  # noqa: BLE001 - the copy phase's own open() reports it
                pass
            finally:
                with self._lock:  # kept and counted done at once: open() never misses it
                    self._warming -= 1
                    if store is not None and not self._drained:
                        self._spare.append(store)
                        store = None
                    self._lock.notify_all()
            if store is not None:  # the pass is over
                store.close()

        with self._lock:
            self._warming += count
        for i in range(count):
            threading.Thread(target=login, name=f"warm-{i}", daemon=True).start()

    def open_now(self) -> Store:
        """:meth:`open`, for a copy worker that finds it needs a source connection after
        all (engine/early_fetch.py: a destination folder whose UIDVALIDITY changed is
        copied again): only if a slot is free now. Opened inside the worker, a wait could
        be a wait for itself (limits.without_waiting); without a slot, that folder waits
        for the next pass."""
        try:
            with without_waiting():
                return self.open()
        except NoFreeSlot as exc:
            raise FolderError(f"no source connection free for this folder now: {exc}") from None

    def open(self) -> Store:
        """A spare store, waiting for one being warmed; else a new one."""
        with self._lock:
            while not self._spare and self._warming and not self._drained:
                self._lock.wait()
            if self._spare:
                return self._spare.pop()
        return self._open()

    def drain(self) -> list[Store]:
        """The stores nobody took, for the caller to read their notes and close; any
        added later is closed by :meth:`add`."""
        with self._lock:
            spare, self._spare, self._drained = self._spare, [], True
        return spare


class ParallelScan(Generic[P, R]):
    """Run ``scan(src, item)`` for every item on the pass's source plus up to
    ``workers - 1`` more source connections (kept in ``spares`` afterwards)."""

    def __init__(self, src: Store, spares: SpareSources,
                 scan: Callable[[Store, P], R]) -> None:
        self.src, self.spares, self.scan = src, spares, scan
        self._lock = threading.Lock()
        self._queue: list[P] = []
        self.results: list[tuple[P, R | FolderError]] = []
        self._failure: BaseException | None = None
        self.notes: list[str] = []
        self._finished = False           # the pass's own connection is done
        self._working: set[str] = set()  # extra workers that got their connection

    def run(self, items: list[P], workers: int) -> list[tuple[P, R | FolderError]]:
        """Results in no fixed order: a FolderError is that folder's, for the caller to
        record; any other failure is raised here once every worker stopped."""
        self._queue = list(items)
        threads = [threading.Thread(target=self._extra, name=f"scan-{i}", daemon=True)
                   for i in range(1, workers)]
        for t in threads:
            t.start()
        self._work(self.src)
        # Wait for the workers that are scanning; one still waiting for a connection (a
        # shared limiter that cannot refuse at once) is left behind, as in FolderPool:
        # the pass never waits for itself.
        with self._lock:
            self._finished = True
        join_working(threads, self._lock, self._working)
        if self._failure is not None:
            raise self._failure
        return self.results

    def _next(self) -> P | None:
        with self._lock:
            if self._failure is not None or not self._queue:
                return None
            return self._queue.pop(0)

    def _work(self, src: Store) -> None:
        try:
            while (item := self._next()) is not None:
                try:
                    out: R | FolderError = self.scan(src, item)
                except FolderError as exc:
                    out = exc
                with self._lock:
                    self.results.append((item, out))
        except BaseException as exc:  # incl. a simulated kill: the pass re-raises it
            with self._lock:
                if self._failure is None:
                    self._failure = exc

    def _extra(self) -> None:
        """One more source connection, if the server has a free slot now; it joins the
        spares afterwards, for the copy phase."""
        with self._lock:
            if not self._queue or self._failure is not None:
                return
        try:
            with without_waiting():
                src = self.spares._open()
        except BaseException as exc:
            if refused_quietly(exc, self._lock, self.notes):
                return
            with self._lock:
                if self._failure is None:
                    self._failure = exc
            return
        with self._lock:
            late = self._finished
            if not late:
                self._working.add(threading.current_thread().name)
        if late:  # the scan is over: the copy phase may still use the connection
            self.spares.add(src)
            return
        try:
            self._work(src)
        finally:
            self.spares.add(src)
