"""A delta's new messages, read from the source while the destination logs in.

Why: a delta pass scans the source (one pipelined QRESYNC burst), then waits for the
destination's login, its folder list and the moves; only then did each folder's copy
select the source folder again and fetch its new messages, on a connection of its own.
The source sat idle through that wait, and every extra copy worker logged in to it. The
new messages are known once the moves are planned (pure), so their bytes are read then,
in one pipelined burst on the scan's connection (``EXAMINE`` + ``UID FETCH`` per folder;
a message above the spool threshold into its temporary file, one chunk in memory),
while the destination logs in and moves. The copy phase then needs no source connection
at all. Measured on the issue's delta (bench/README.md).

What keeps memory bounded: the bytes held are reserved in the run's byte budget
(engine/limits.py ``ByteBudget.try_take``) before anything is read, without waiting and
leaving half of it free for the copy's own reservations; when the budget has no room,
or the delta is larger than :data:`EARLY_MAX_BYTES`, nothing is read early and the copy
fetches as it always did. All or nothing: the read is planned for every message the copy
will need, or not made. What it leaves free is at least the copy's largest single
reservation, so a copy that fetches after all (the read failed, or a folder is copied
again) is still served while this pass holds its share.

Journalling is untouched: the copier records each batch as pending before its APPEND
and settles it after, whether its bytes came from here or from the source just then.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast

from mxshift.engine.limits import ByteBudget
from mxshift.store.base import RawMessage
from mxshift.store.spool import CHUNK, SPOOL_ABOVE, Spool

if TYPE_CHECKING:
    from mxshift.engine.folder_scan import FolderScan
    from mxshift.engine.plan import Candidate
    from mxshift.engine.settings import PassSettings

#: A delta with more new bytes than this is copied as a first copy is (batch by batch,
#: fetched as the copy goes): the early read is for the hourly delta, not a backlog.
EARLY_MAX_BYTES = 64 * 1024 * 1024


class BodySource(Protocol):
    """What the early read needs of the source store (store/imap.py)."""

    def fetch_bodies_many(self, requests: list[tuple[str, int, list[int]]]
                          ) -> list[dict[int, RawMessage] | None]: ...

    def select(self, folder: str, readonly: bool = False) -> object: ...

    def fetch_spooled(self, uid: int) -> RawMessage | None: ...


@dataclass
class EarlyPlan:
    """What to read early, per folder scan: small messages (in memory) and large ones
    (spooled), by UID; ``memory``: the bytes to reserve."""

    folders: list[tuple["FolderScan", list[int], list[int]]] = field(default_factory=list)
    memory: int = 0


def plan_early(scans: Iterable["FolderScan"], moved: Collection[tuple[int, int]],
               *, size_limit: int | None = None) -> EarlyPlan | None:
    """The early read of these scans' new messages, or None when there is none to make
    (pure). ``moved``: (pair id, source UID) of new messages the moves account for (they
    are moved on the destination, not copied); ``size_limit``: messages above it are
    skipped by the copy, so not read. None too when the delta is larger than
    :data:`EARLY_MAX_BYTES`."""
    plan = EarlyPlan()
    total = 0
    spooled = False
    for scan in scans:
        small: list[int] = []
        large: list[int] = []
        for uid, m in scan.new.items():
            if (scan.pair.id, uid) in moved or (size_limit and m.size > size_limit):
                continue
            if not m.size or not m.fingerprint:
                return None  # not identified (a first copy's scan): read as the copy goes
            total += m.size
            if m.size > SPOOL_ABOVE:
                large.append(uid)
                spooled = True
            else:
                small.append(uid)
                plan.memory += m.size
        if small or large:
            plan.folders.append((scan, sorted(small), sorted(large)))
    if not plan.folders or total > EARLY_MAX_BYTES:
        return None
    plan.memory += CHUNK if spooled else 0  # a spool holds one chunk while it is read
    return plan


def read_early(src: object, scans: "dict[int, FolderScan]",
               moves: "list[tuple[Candidate, Candidate]]", settings: "PassSettings",
               budget: ByteBudget, *, enabled: bool = True) -> "EarlyFetch | None":
    """Start reading a delta's new messages on ``src`` (the pass's scan connection) while
    the destination logs in and moves; None when there is nothing worth reading early,
    the store cannot (no pipelined reads), Gmail labelling matches the new messages
    itself, or the budget has no room."""
    if not enabled or settings.gmail_labels == "labels" or not hasattr(src, "fetch_bodies_many"):
        return None
    plan = plan_early(sorted(scans.values(), key=lambda s: s.pair.id),
                      {(new.pair_id, new.source_uid) for _, new in moves},
                      size_limit=settings.max_message_size)
    if plan is None:
        return None
    early = EarlyFetch(cast(BodySource, src), plan, budget)
    return early if early.start() else None


def keep_free(budget: ByteBudget) -> int:
    """Budget the early read leaves free: half of it, and at least the largest single
    reservation the copy makes (a message up to the spool threshold, or a spool's chunk),
    so that every ``hold`` of a copy can still be served."""
    return max(budget.total // 2, min(budget.total, max(SPOOL_ABOVE, CHUNK)))


class EarlyFetch:
    """The early read of one delta pass, in a thread on the pass's source store.

    :meth:`start` reserves the budget and starts the thread (False: nothing read early).
    :meth:`folder` waits for one folder's messages only (those without a large message
    are in after the first round trip), so a copy worker starts on a folder while the
    large messages of another still stream into their files; {} when the read failed
    before that folder was handed out (the copy then fetches them itself, from a source
    no longer in use: the thread is done). :meth:`join` waits for the whole read: the
    source store is the caller's again. :meth:`close` joins, gives the budget back and
    removes the temporary files nobody took."""

    def __init__(self, src: BodySource, plan: EarlyPlan, budget: ByteBudget) -> None:
        self.src, self.plan, self.budget = src, plan, budget
        self._held = 0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._got: dict[int, dict[int, RawMessage]] = {}
        self._ready = {scan.pair.id: threading.Event() for scan, _, _ in plan.folders}
        self._handed: set[int] = set()
        self._failed = False

    def start(self) -> bool:
        if not self.budget.try_take(self.plan.memory, keep_free=keep_free(self.budget)):
            return False
        self._held = self.plan.memory
        self._thread = threading.Thread(target=self._read, name="early-fetch", daemon=True)
        self._thread.start()
        return True

    def _read(self) -> None:
        try:
            small = [(scan, uids) for scan, uids, _ in self.plan.folders if uids]
            answers = self.src.fetch_bodies_many(
                [(s.pair.source_name, s.uidvalidity, uids) for s, uids in small])
            for (scan, uids), found in zip(small, answers):
                if found is None or set(found) != set(uids):
                    return self._fail()  # refused, expunged meanwhile, another UIDVALIDITY
                self._got[scan.pair.id] = dict(found)
            for scan, _, large in self.plan.folders:
                if not large:
                    self._ready[scan.pair.id].set()
            for scan, _, large in self.plan.folders:
                if not large:
                    continue
                self.src.select(scan.pair.source_name, readonly=True)
                mine = self._got.setdefault(scan.pair.id, {})
                for uid in large:
                    raw = self.src.fetch_spooled(uid)
                    if raw is None:
                        return self._fail()
                    mine[uid] = raw
                self._ready[scan.pair.id].set()
        except Exception:  # noqa: BLE001 - the copy fetches them itself and reports errors
            self._fail()

    def _fail(self) -> None:
        """Drop what nobody took yet; every folder still waiting gets {}."""
        with self._lock:
            self._failed = True
            dropped = [found for pid, found in self._got.items() if pid not in self._handed]
            self._got = {pid: f for pid, f in self._got.items() if pid in self._handed}
        _close_spools(dropped)
        for event in self._ready.values():
            event.set()

    def folder(self, pair_id: int) -> dict[int, RawMessage]:
        """The folder pair's messages read early (UID -> message), once they are in;
        taken by the caller (its copy pops them)."""
        event = self._ready.get(pair_id)
        if event is None or self._thread is None:
            return {}
        event.wait()
        with self._lock:
            if pair_id in self._handed or (self._failed and pair_id not in self._got):
                return {}
            self._handed.add(pair_id)
            return self._got.get(pair_id, {})

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        self.join()
        with self._lock:
            left, self._got = list(self._got.values()), {}
        _close_spools(left)
        if self._held:
            self.budget.give_back(self._held)
            self._held = 0


class AfterEarly:
    """The pass's own source store as its copy worker sees it: any use first waits for
    the early read on it to end (one connection, one command stream). A worker that
    copies what was read early never uses it, so never waits."""

    def __init__(self, store: object, early: EarlyFetch) -> None:
        self._store, self._early = store, early

    def __getattr__(self, name: str) -> object:
        if name.startswith("_"):
            raise AttributeError(name)
        self._early.join()
        return getattr(self._store, name)


def _close_spools(folders: Iterable[dict[int, RawMessage]]) -> None:
    for found in folders:
        for raw in found.values():
            if isinstance(raw.raw, Spool):
                raw.raw.close()
