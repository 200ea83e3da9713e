"""Copying the folders of one mailbox over several connections at once.

Why: one IMAP connection pair waits on each server in turn (FETCH, then APPEND); with a
few pairs the servers work while mxshift parses and journals, and the destination
accepts far more over several connections than over one. Folders are independent once
moves are done (each folder's journal rows, UIDs and UIDVALIDITY are its own), so each
worker takes whole folders, largest first, with its own source and destination store.

What keeps the promise "nothing lost, nothing duplicated": every batch is journalled
exactly as in a single-connection pass (each journal write is its own transaction).
When a worker fails (a lost server, a kill), the others stop between two batches, and
the first failure is raised by the pass as if there were one connection; the next pass
reconciles whatever was in flight.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable

from mxshift.engine import malloc_tuning
from mxshift.engine.copier import Cancelled
from mxshift.engine.limits import NoFreeSlot, without_waiting
from mxshift.errors import FolderError, SyncError
from mxshift.store.base import Store, store_notes

if TYPE_CHECKING:
    from mxshift.engine.folder_scan import FolderScan
    from mxshift.engine.pass_result import PassResult


# Below this many new bytes in a pass, extra connections cost more (logins) than they save.
PARALLEL_MIN_BYTES = 16 * 1024 * 1024
# Changed folders that justify one more source connection for a delta's scan.
FOLDERS_PER_PAIR = 4
# Changed folders that justify one more connection pair for a delta's copy phase. Its
# workers need no source connection when the new messages were read early
# (engine/early_fetch.py), so a folder costs them a few destination round trips, and an
# extra login costs the destination more than it saves: on the delta (17 changed
# folders), cold CLI passes took 152 ms median with 2 pairs, 158 with 3, 178 with 4.
DELTA_FOLDERS_PER_PAIR = 8
_COUNTERS = ("copied", "bytes_copied", "adopted", "flags_updated", "moved", "deleted",
             "skipped", "errors")


def worker_count(scans: list["FolderScan"], wanted: int) -> int:
    """How many connection pairs are worth opening for these folders (pure).

    A full copy: one per folder with new mail, when there are enough new bytes. A delta
    (little to copy, but a handful of round trips per changed folder: SELECT, FETCH,
    APPEND, STORE, EXPUNGE, each waiting on a server): :func:`delta_pairs`."""
    if wanted <= 1 or len(scans) <= 1:
        return 1
    busy = [s for s in scans if s.new]
    new_bytes = sum(m.size for s in busy for m in s.new.values())
    if new_bytes >= PARALLEL_MIN_BYTES and len(busy) > 1:
        return min(wanted, len(busy))
    return delta_pairs(len(scans), wanted)


def delta_pairs(changed: int, wanted: int) -> int:
    """Connection pairs for a delta's copy phase over ``changed`` folders (pure): one per
    ``DELTA_FOLDERS_PER_PAIR``, so the logins an extra pair costs are repaid."""
    return max(1, min(wanted, changed // DELTA_FOLDERS_PER_PAIR))


def scan_workers(changed: int, wanted: int) -> int:
    """Source connections worth opening to scan ``changed`` folders (pure): the delta
    rule of :func:`worker_count`, as the copy phase then takes the same connections."""
    return max(1, min(wanted, changed // FOLDERS_PER_PAIR))


def schedule(scans: list["FolderScan"]) -> list["FolderScan"]:
    """Largest folders first (by new bytes), so the last one to finish is a small one."""
    return sorted(scans, key=lambda s: (-sum(m.size for m in s.new.values()), s.pair.id))


def merge(into: "PassResult", part: "PassResult") -> None:
    for name in _COUNTERS:
        setattr(into, name, getattr(into, name) + getattr(part, name))
    into.notes.extend(part.notes)


class FolderPool:
    """Run ``apply_one(src, dst, scan, result)`` for every scan on ``workers`` connection
    pairs: the pass's own pair plus pairs opened here (and closed when done)."""

    def __init__(self, *, src: Store, dst: Store, open_source: Callable[[], Store],
                 open_destination: Callable[[], Store],
                 apply_one: Callable[[Store, Store, "FolderScan", "PassResult"], None],
                 fresh_result: Callable[[], "PassResult"], result: "PassResult",
                 cancel: threading.Event) -> None:
        self.src, self.dst = src, dst
        self.open_source, self.open_destination = open_source, open_destination
        self.apply_one, self.fresh_result = apply_one, fresh_result
        self.result = result
        self.cancel = cancel
        self._lock = threading.Lock()
        self._queue: list["FolderScan"] = []
        self._failure: BaseException | None = None
        self.extra_opened = 0
        self.notes: list[str] = []
        self._finished = False          # the pass's own worker is done
        self._working: set[str] = set()  # extra workers that got their connections

    def run(self, scans: list["FolderScan"], workers: int) -> None:
        malloc_tuning.tune()  # before the workers allocate
        self._queue = schedule(scans)
        threads = [threading.Thread(target=self._extra, name=f"folders-{i}", daemon=True)
                   for i in range(1, workers)]
        for t in threads:
            t.start()
        self._work(self.src, self.dst)
        # Wait for the workers that are copying; one still waiting for a connection (a
        # shared limiter that cannot refuse at once) is left behind: it closes what it
        # gets and copies nothing (see _extra), so the pass never waits for itself.
        with self._lock:
            self._finished = True
        join_working(threads, self._lock, self._working)
        if self._failure is not None:
            raise self._failure
        self.result.notes.extend(self.notes)

    def _next(self) -> "FolderScan | None":
        with self._lock:
            if self.cancel.is_set() or not self._queue:
                return None
            return self._queue.pop(0)

    def _work(self, src: Store, dst: Store) -> None:
        try:
            while (scan := self._next()) is not None:
                part = self.fresh_result()
                try:
                    self.apply_one(src, dst, scan, part)
                finally:
                    with self._lock:
                        merge(self.result, part)
        except Cancelled:
            return
        except BaseException as exc:  # incl. a simulated kill: the pass re-raises it
            with self._lock:
                if self._failure is None:
                    self._failure = exc
            self.cancel.set()

    def _extra(self) -> None:
        """A worker with its own connection pair; if the servers refuse more connections
        now, the pass's other workers simply take its folders."""
        with self._lock:
            if not self._queue or self.cancel.is_set():
                return
        src = dst = None
        try:
            try:
                with without_waiting():
                    src = self.open_source()
                    dst = self.open_destination()
            except BaseException as exc:
                if refused_quietly(exc, self._lock, self.notes):
                    return
                with self._lock:
                    if self._failure is None and not self._finished:
                        self._failure = exc
                self.cancel.set()
                return
            with self._lock:
                if self._finished:
                    return  # too late: the pass is over (the finally closes the stores)
                self._working.add(threading.current_thread().name)
                self.extra_opened += 1
            self._work(src, dst)
        finally:
            for store in (src, dst):
                if store is not None:
                    notes = store_notes(store)
                    if notes:
                        with self._lock:
                            self.notes.extend(notes)
                    store.close()


def refused_quietly(exc: BaseException, lock: threading.Lock, notes: list[str]) -> bool:
    """True when an extra connection's failure only means fewer folders in parallel: a
    server's cap reached now (no complaint) or a refusal (noted for the pass's result).
    Anything else is the pass's failure."""
    if isinstance(exc, NoFreeSlot):
        return True
    if isinstance(exc, SyncError):
        with lock:
            notes.append(f"an extra connection was refused, fewer folders in parallel: {exc}")
        return True
    return False


def join_working(threads: list[threading.Thread], lock: threading.Lock,
                 working: set[str]) -> None:
    """Join the extra workers that got their connections (their names are in
    ``working``); one still waiting for a slot is left to close what it gets."""
    while True:
        with lock:
            busy = [t for t in threads if t.name in working and t.is_alive()]
        if not busy:
            return
        busy[0].join()


def apply_guarded(apply: Callable[[Store, Store, "FolderScan", "PassResult"], None],
                  folder_error: Callable[["FolderScan", FolderError, "PassResult"], None]
                  ) -> Callable[[Store, Store, "FolderScan", "PassResult"], None]:
    """A folder's own error fails that folder only (recorded), as in the serial loop."""
    def run(src: Store, dst: Store, scan: "FolderScan", result: "PassResult") -> None:
        try:
            apply(src, dst, scan, result)
        except FolderError as exc:
            folder_error(scan, exc, result)
    return run

