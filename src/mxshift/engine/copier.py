"""Copying new messages of one folder: adopt what is already there, append the rest.

Why batches: memory is bounded by ``batch_messages``/``batch_bytes``, not by the folder;
a message too large for a MULTIAPPEND travels alone, and one above ``spool.SPOOL_ABOVE``
through a temporary file, a chunk at a time (store/spool.py), so it holds one chunk of
the budget and never its whole size. Each batch is journalled as
``pending`` in one transaction before the first APPEND and settled in one after the last,
so a kill anywhere in between is settled by reconcile.py from what the destination holds.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from collections.abc import Collection
from itertools import chain, islice
from operator import attrgetter
from typing import TYPE_CHECKING, Callable, Iterator

from sqlalchemy import update

from mxshift import repair
from mxshift.repair import needs_line_fix
from mxshift.engine.journal import Pending
from mxshift.engine.limits import ByteBudget
from mxshift.engine.serial_journal import writing
from mxshift.engine.locate import locate
from mxshift.engine.plan import batches, copyable_flags
from mxshift.errors import MessageError
from mxshift.engine import malloc_tuning
from mxshift.engine.prefetch import Prefetcher
from mxshift.identity import (Fingerprint, content_hash, fingerprint, fingerprint_bytes,
                               fingerprint_head, header_block, subject_of)
from mxshift.providers import oversize_reason, profile
from mxshift.state.db import StateDB
from mxshift.state.models import Finding, FolderPair, Pass
from mxshift.store.base import FolderStatus, RawMessage, Store
from mxshift.store.spool import SPOOL_ABOVE, Spool, held_bytes

if TYPE_CHECKING:
    from mxshift.engine.mailbox_pass import MailboxPass
    from mxshift.engine.pass_result import PassResult


# Messages up to this size share one MULTIAPPEND; larger ones go alone, with a
# synchronising literal, so a server can refuse one before we send its bytes.
MULTIAPPEND_MAX = 256 * 1024


class Cancelled(BaseException):
    """Another worker of the pass failed: stop between batches (each batch is settled)."""


# Seconds between two live progress writes of a pass (at most).
LIVE_INTERVAL = 1.0


class LiveProgress:
    """The pass row's copied/bytes_copied counters, kept current while a pass runs.

    Why: ``mxshift status`` and a dashboard in another process read progress from the
    database. Writes are throttled to one per ``interval`` seconds (one small UPDATE), so
    they cost nothing next to the copy; the pass's final write sets the exact totals.
    Thread-safe: the workers of a pass share one.
    """

    def __init__(self, db: StateDB, pass_id: int, interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db, self.pass_id, self.clock = db, pass_id, clock
        self.interval = LIVE_INTERVAL if interval is None else interval
        self.copied = 0
        self.bytes_copied = 0
        self._lock = threading.Lock()
        self._last = float("-inf")  # the first batch is shown at once, then once per interval
        self.writes = 0

    def add(self, copied: int, size: int) -> None:
        with self._lock:
            self.copied += copied
            self.bytes_copied += size
            now = self.clock()
            if now - self._last < self.interval:
                return
            self._last = now
            values = {"copied": self.copied, "bytes_copied": self.bytes_copied}
            self.writes += 1
        with writing(self.db), self.db.session() as s, s.begin():
            s.execute(update(Pass).where(Pass.id == self.pass_id).values(**values))


def iter_batches(messages: Collection[NewMessage], max_count: int,
                 max_bytes: int) -> Iterator[list[NewMessage]]:
    """Batches bounded by count and bytes (plan.batches), the small messages' first;
    a message too large for one MULTIAPPEND goes alone, so at most one large message and
    never a batch with it is held in memory.

    Made as the copy goes (``messages`` is read twice: small, then large): the copy of a
    large folder holds a batch of them, not a list of every batch (issue #3)."""
    yield from batches((m for m in messages if m.size <= MULTIAPPEND_MAX), max_count,
                       max_bytes, size=attrgetter("size"))
    yield from ([m] for m in messages if m.size > MULTIAPPEND_MAX)


@dataclass
class BatchPlan:
    """One batch's decisions made before its bytes are fetched."""

    msgs: list["NewMessage"]
    oversize: list["NewMessage"] = field(default_factory=list)
    adopted: list[tuple[Pending, int, frozenset[str]]] = field(default_factory=list)
    fetch: list["NewMessage"] = field(default_factory=list)


@dataclass
class Fetched:
    """A fetched message with its identity, computed in the prefetch thread."""

    raw: RawMessage
    fingerprint: Fingerprint
    content_hash: str
    repair: str | None  # the line-end repair made, if any


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A source message not yet on the destination, as identified by the scan.

    Slots: a scan holds one per new message for the whole pass (no ``__dict__`` each:
    ~100 bytes less per message, 0.5 MB per 5,000)."""

    uid: int
    size: int = 0
    fingerprint: str = ""
    strong: bool = True
    subject: str = ""


def subject_from(raw: bytes | Spool) -> str:
    """The Subject of a message from its bytes, for a finding about a message whose
    scan fetched its size only (a first copy: mailbox_pass._identify_new)."""
    return subject_of(header_block(raw.head if isinstance(raw, Spool) else raw))


def appendlimit(capabilities: frozenset[str]) -> int | None:
    for cap in capabilities:
        m = re.fullmatch(r"APPENDLIMIT=(\d+)", cap, re.I)
        if m:
            return int(m.group(1))
    return None


class FolderCopier:
    def __init__(self, owner: "MailboxPass", src: Store, dst: Store, pair: FolderPair,
                 status: FolderStatus, result: "PassResult", *,
                 batch_bytes: int | None = None, live: LiveProgress | None = None,
                 cancel: threading.Event | None = None,
                 budget: ByteBudget | None = None,
                 early: dict[int, RawMessage] | None = None) -> None:
        self.owner = owner
        # Messages the pass read before this copy (engine/early_fetch.py), taken as
        # they are copied; their bytes are held in the budget by the early read.
        self.early = early if early is not None else {}
        self.journal = owner.journal
        self.hooks = owner.hooks
        self.settings = owner.settings
        self.src, self.dst, self.pair, self.result = src, dst, pair, result
        self.next_uid = status.uidnext
        self.dest_messages = status.messages
        self.permanent = status.permanent_flags
        self.dropped: dict[str, int] = defaultdict(int)
        limits = [x for x in (self.settings.max_message_size, appendlimit(dst.capabilities))
                  if x]
        self.size_limit = min(limits) if limits else None
        # A worker's share of the pass's memory budget (folders copied in parallel),
        # halved: the copier holds two batches at once (one appended, one prefetched).
        self.batch_bytes = max(1, (batch_bytes or self.settings.batch_bytes) // 2)
        self.live = live
        self.cancel = cancel
        self.budget = budget or self.settings.budget or ByteBudget(self.settings.batch_bytes)

    def copy(self, messages: Collection[NewMessage], *, adopt: bool) -> None:
        """Copy ``messages`` (in UID order; read more than once) in batches, fetching
        the next batch while one is appended (see :mod:`mxshift.engine.prefetch`);
        journal writes stay in this thread, in batch order."""
        malloc_tuning.tune()
        pool = self._adoption_pool() if adopt and self.dest_messages else None
        messages = self._identified(messages, pool is not None)
        groups = iter_batches(messages, self.settings.batch_messages, self.batch_bytes)
        head = list(islice(groups, 2))  # a second batch: worth a prefetch thread
        plans = (self._plan(batch, pool) for batch in chain(head, groups))
        prefetch: Prefetcher[list[NewMessage], list[Fetched]] = Prefetcher(
            self._fetch, self.budget, background=len(head) > 1,
            name=f"prefetch-{self.pair.id}",
            on_fetched=getattr(self.hooks, "prefetched", None))
        try:
            plan = next(plans, None)
            if plan is not None:
                self._check_cancel()
                prefetch.start(plan.fetch, self._held(plan.fetch))
            while plan is not None:
                held = prefetch.take()
                try:
                    self._check_cancel()
                    current, plan = plan, next(plans, None)
                    if plan is not None:  # the source reads the next batch meanwhile
                        prefetch.start(plan.fetch, self._held(plan.fetch))
                    self._batch(current, held.value, pool)
                finally:
                    held.release()
                    malloc_tuning.released(held.size)  # its bytes are freed by now
        finally:
            prefetch.close()
        for keyword, count in sorted(self.dropped.items()):
            self.journal.finding(self._finding(
                "flag_dropped", None, None, None,
                f"the destination does not accept the keyword {keyword!r} (PERMANENTFLAGS); "
                f"it was not set on {count} message(s)"))

    def _held(self, msgs: list[NewMessage]) -> int:
        """Budget a batch's fetch reserves: none for what the pass read early."""
        return sum(held_bytes(m.size) for m in msgs if m.uid not in self.early)

    def _identified(self, messages: Collection[NewMessage],
                    adopting: bool) -> Collection[NewMessage]:
        """Fingerprint and subject, from the source's header fetch, of the messages a
        first copy's scan only sized (mailbox_pass._identify_new) that need them before
        their bytes are read: all of them when adopting (matched by fingerprint), else
        those too large to copy (their skip is recorded with the subject)."""
        need = [m.uid for m in messages if not m.fingerprint and (
            adopting or (self.size_limit is not None and m.size > self.size_limit))]
        if not need:
            return messages
        from mxshift.engine.folder_scan import new_message  # folder_scan imports this module
        found: dict[int, NewMessage] = {}
        for i in range(0, len(need), 1000):
            found.update((meta.uid, new_message(meta))
                         for meta in self.src.fetch_meta(need[i:i + 1000]))
        return [found.get(m.uid, m) for m in messages]

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()

    # -- adoption -------------------------------------------------------------------
    def _adoption_pool(self) -> dict[str, list[tuple[int, frozenset[str]]]]:
        """Fingerprints of destination messages we do not map yet (lost state, old tool)."""
        mapped = self.journal.mapped_dest_uids(self.pair.id)
        uids = [u for u in self.dst.uids_from(1) if u not in mapped]
        pool: dict[str, list[tuple[int, frozenset[str]]]] = defaultdict(list)
        for i in range(0, len(uids), 1000):
            for meta in self.dst.fetch_meta(uids[i:i + 1000]):
                pool[fingerprint(meta.headers, meta.size).value].append((meta.uid, meta.flags))
        return pool

    def _confirm_weak(self, options: list[tuple[int, frozenset[str]]],
                      chash: str) -> tuple[int, frozenset[str]] | None:
        """Without a Message-ID, headers and size are not enough: compare the bytes."""
        for option in options:
            for raw in self.dst.fetch_raw([option[0]]):
                if content_hash(raw.raw) == chash:
                    options.remove(option)
                    return option
        return None

    # -- one batch ------------------------------------------------------------------
    def _plan(self, msgs: list[NewMessage],
              pool: dict[str, list[tuple[int, frozenset[str]]]] | None) -> BatchPlan:
        """What to skip, adopt and fetch (no I/O: the journal writes wait for the batch's
        turn, so they keep a serial copy's order)."""
        plan = BatchPlan(msgs)
        for m in msgs:
            if self.size_limit and m.size > self.size_limit:
                plan.oversize.append(m)
            elif pool is not None and m.strong and pool.get(m.fingerprint):
                uid, flags = pool[m.fingerprint].pop(0)
                plan.adopted.append((Pending(m.uid, m.fingerprint, True, "", m.size, flags),
                                     uid, flags))
            else:
                plan.fetch.append(m)
        return plan

    def _fetch(self, msgs: list[NewMessage]) -> list[Fetched]:
        """The batch's bytes from the source with what needs no journal (runs in the
        prefetch thread: nothing here may touch the journal or the destination)."""
        wanted = {m.uid: m for m in msgs}
        out: list[Fetched] = []
        for raw in self._fetch_raw(list(wanted), wanted):
            note = None
            body = raw.raw
            if isinstance(body, Spool) and body.needs_line_fix():
                # A repair changes the literal's length: this rare one is mended in memory.
                raw = RawMessage(raw.uid, body.read_all(), raw.flags, raw.internaldate)
                body.close()
                body = raw.raw
            if isinstance(body, bytes) and needs_line_fix(body):
                # IMAP carries CRLF only: say so, identify what lands
                body, note = repair.line_ends(body)  # type: ignore[misc]
                raw = RawMessage(raw.uid, body, raw.flags, raw.internaldate)
            known = wanted.get(raw.uid)
            if note is None and known is not None and known.fingerprint \
                    and known.size == len(body):
                # The scan's fingerprint (from the server's header fetch and size) is the
                # one of these bytes: identity.fingerprint_bytes equals it by design.
                fp = Fingerprint(known.fingerprint, known.strong)
            elif isinstance(body, Spool):
                fp = fingerprint_head(body.head, len(body))
            else:
                fp = fingerprint_bytes(body)
            # The content hash identifies a message whose headers cannot (no Message-ID:
            # adoption compares bytes, _confirm_weak). A strong fingerprint is matched
            # without it, so its SHA-256 (0.5 ms per MB, ~10% of a first copy's CPU)
            # is not computed; the journal records "" as for an adopted message.
            chash = "" if fp.strong else (
                body.sha256() if isinstance(body, Spool) else content_hash(body))
            out.append(Fetched(raw, fp, chash, note))
        return out

    def _fetch_raw(self, uids: list[int], wanted: dict[int, NewMessage]) -> Iterator[RawMessage]:
        """The bytes of ``uids``: in memory, or spooled for a message above SPOOL_ABOVE
        (which travels alone, so a batch is one or the other); first what the pass
        read early (engine/early_fetch.py)."""
        if self.early:
            mine = [u for u in uids if u in self.early]
            uids = [u for u in uids if u not in self.early]
            for uid in mine:
                yield self.early.pop(uid)
        for uid in [u for u in uids if wanted[u].size > SPOOL_ABOVE]:
            spooled = self.src.fetch_spooled(uid)
            if spooled is not None:  # None: expunged meanwhile
                yield spooled
        rest = [u for u in uids if wanted[u].size <= SPOOL_ABOVE]
        if rest:  # none: the source (a worker's logs in on first use) is not touched
            yield from self.src.fetch_raw(rest)

    def _batch(self, plan: BatchPlan, fetched: list[Fetched],
               pool: dict[str, list[tuple[int, frozenset[str]]]] | None) -> None:
        msgs = plan.msgs
        for m in plan.oversize:
            self._skip(m.uid, m.fingerprint, m.size, m.subject,
                       oversize_reason(profile(self.settings.destination_provider),
                                       m.size, self.size_limit or 0),
                       existing=False)
        self.journal.adopt(self.pair.id, plan.adopted)
        self.result.adopted += len(plan.adopted)
        subjects = {m.uid: m.subject for m in plan.fetch}
        raws: dict[int, RawMessage] = {}
        pending: list[Pending] = []
        for item in fetched:
            raw, fp, chash = item.raw, item.fingerprint, item.content_hash
            kept, dropped = copyable_flags(raw.flags, self.permanent)
            for keyword in dropped:
                self.dropped[keyword] += 1
            if pool is not None and not fp.strong and pool.get(fp.value):
                match = self._confirm_weak(pool[fp.value], chash)
                if match:
                    self.journal.adopt(self.pair.id, [(Pending(raw.uid, fp.value, False, chash,
                                                               len(raw.raw), match[1]),
                                                       match[0], match[1])])
                    self.result.adopted += 1
                    continue
            pending.append(Pending(raw.uid, fp.value, fp.strong, chash, len(raw.raw), kept,
                                   repair=item.repair))
            raws[raw.uid] = raw
        fetched.clear()  # the bytes live on in ``raws`` only, and go as they are sent
        if not pending:
            self.owner.progress.advance(self.result.mailbox, len(msgs),
                                        sum(m.size for m in msgs))
            return
        floor = self.next_uid
        self.journal.record_pending(self.pair.id, pending, floor)
        landed: dict[int, int | None] = {}
        final_fp: dict[int, str] = {}
        sent_bytes = 0
        together = [p for p in pending if p.size <= MULTIAPPEND_MAX]
        if "MULTIAPPEND" in self.dst.capabilities and len(together) > 1:
            uids = self._append_together(together, raws, subjects)
            if uids is not False:
                for p, uid in zip(together, uids or [None] * len(together)):
                    landed[p.source_uid], final_fp[p.source_uid] = uid, p.fingerprint
                    sent_bytes += p.size
                    del raws[p.source_uid]
                pending = [p for p in pending if p.source_uid in raws]
        for p in pending:
            raw = raws.pop(p.source_uid)
            try:
                outcome = self._append(p, raw, subjects.get(p.source_uid, ""))
            finally:
                if isinstance(raw.raw, Spool):
                    raw.raw.close()  # its file goes now, not when collected
            if outcome is None:
                continue
            landed[p.source_uid], final_fp[p.source_uid], size = outcome
            sent_bytes += size
        unknown = [(uid, final_fp[uid]) for uid, d in landed.items() if d is None]
        if unknown:
            found = locate(self.dst, floor, self.journal.mapped_dest_uids(self.pair.id), unknown)
            landed.update(found)  # type: ignore[arg-type]
        self.journal.settle_copied(self.pair.id, landed)
        known_uids = [d for d in landed.values() if d is not None]
        if known_uids:
            self.next_uid = max(self.next_uid, max(known_uids) + 1)
        self.result.copied += len(landed)
        self.result.bytes_copied += sent_bytes
        if self.live is not None:
            self.live.add(len(landed), sent_bytes)
        self.owner.progress.advance(self.result.mailbox, len(msgs), sum(m.size for m in msgs))

    def _append_together(self, items: list[Pending], raws: dict[int, RawMessage],
                          subjects: dict[int, str]) -> list[int] | None | bool:
        """One MULTIAPPEND for the batch's small messages (one round trip, not one each).

        False when the destination refused it: MULTIAPPEND is all-or-nothing, so the
        caller appends them one by one to find and skip only the refused message.
        """
        try:
            uids = self.dst.append_many(self.pair.destination_name, [
                (raws[p.source_uid].raw, p.flags, raws[p.source_uid].internaldate)
                for p in items])
        except MessageError:
            return False
        self.hooks.checkpoint("multiappend")
        for p in items:
            if p.repair:
                self._repaired(p.source_uid, subjects.get(p.source_uid, "")
                               or subject_from(raws[p.source_uid].raw), p.size, p.repair)
        return uids

    def _append(self, p: Pending, raw: RawMessage,
                subject: str) -> tuple[int | None, str, int] | None:
        """APPEND, repairing minimally if refused; None when skipped (finding recorded)."""
        try:
            uid = self.dst.append(self.pair.destination_name, raw.raw, p.flags, raw.internaldate)
            self.hooks.checkpoint("append")
            if p.repair:
                self._repaired(p.source_uid, subject or subject_from(raw.raw), p.size,
                               p.repair)
            return uid, p.fingerprint, len(raw.raw)
        except MessageError as exc:
            refusal = str(exc)
        subject = subject or subject_from(raw.raw)  # a first copy's scan did not read it
        original = raw.raw if isinstance(raw.raw, bytes) else raw.raw.read_all()
        for fixed, note in repair.candidates(original):
            fp = fingerprint_bytes(fixed)
            self.journal.update_pending(self.pair.id, p.source_uid, fp.value, fp.strong,
                                        content_hash(fixed), len(fixed), note)
            try:
                uid = self.dst.append(self.pair.destination_name, fixed, p.flags,
                                      raw.internaldate)
            except MessageError:
                continue
            self.hooks.checkpoint("append repaired")
            self._repaired(p.source_uid, subject, len(raw.raw), note,
                           f"the destination refused the original ({refusal}); ")
            return uid, fp.value, len(fixed)
        self._skip(p.source_uid, p.fingerprint, p.size, subject,
                   f"the destination refused the message: {refusal}", existing=True)
        return None

    def _repaired(self, uid: int, subject: str, size: int, note: str, why: str = "") -> None:
        self.journal.finding(self._finding(
            "repaired", uid, subject, size,
            f"{why}copied with a repair: {note}. This copy differs from the source."))

    def _skip(self, uid: int, fp: str, size: int, subject: str, reason: str, *,
              existing: bool) -> None:
        self.journal.mark_skipped(self.pair.id, uid, fingerprint=fp, size=size,
                                  finding=self._finding("skipped", uid, subject, size, reason),
                                  existing=existing)
        self.result.skipped += 1

    def _finding(self, kind: str, uid: int | None, subject: str | None, size: int | None,
                 reason: str) -> Finding:
        return Finding(mailbox_id=self.journal.mailbox_id, pass_id=self.owner.pass_id,
                       kind=kind, folder=self.pair.display_name or self.pair.source_name,
                       source_uid=uid, subject=subject, size=size, reason=reason)
