"""One pass over one mailbox: the order of operations that keeps every promise.

    1. log in to both sides (a bad login fails this mailbox, not the night)
    2. map folders (pure), create what the destination lacks, record folder pairs
       (when the source lists exactly the known folders, the destination is listed in a
       thread and this step runs after step 4, before any write: engine/dest_listing.py)
    3. reconcile journal rows an interrupted pass left passing (see reconcile.py)
    4. scan every source folder: UIDs and flags; identity of the new messages
    5. plan moves across folders: a message that vanished from one folder and appeared in
       another is moved on the destination, never copied twice
    6. per folder: execute moves, adopt copies already there, append new messages in
       bounded batches, apply flag changes, then deletions (under the ceiling)
    7. record counters and the pass result

Before cutover the source is authoritative for the messages we copied: their flags,
deletions and moves follow it. Messages we did not put on the destination are never
touched. Every write to the destination is journalled first (journal.py).
"""

from __future__ import annotations

import threading
import time
from array import array
from typing import Callable, Iterator, cast

from sqlalchemy import delete, select

from mxshift.engine import gmail_labels, lease, pass_rows
from mxshift.engine.copier import FolderCopier, LiveProgress, NewMessage
from mxshift.engine.dest_listing import ListedInBackground
from mxshift.engine.early_fetch import AfterEarly, read_early
from mxshift.engine.folder_pool import (FolderPool, apply_guarded, delta_pairs, scan_workers,
                                       worker_count)
from mxshift.engine.parallel_scan import ParallelScan, SpareSources
from mxshift.engine.limits import ByteBudget
from mxshift.engine.serial_journal import SerialJournal
from mxshift.engine.journal import Doomed, Hooks, Journal
from mxshift.engine.plan import deletion_blocked, plan_folder
from mxshift.engine.reconcile import reconcile
from mxshift.engine.settings import PassSettings
from mxshift.errors import FolderError, MailboxError, SyncError
from mxshift.mapping import Namespace, RemoteFolder
from mxshift.state.db import StateDB
from mxshift.state.models import Finding, FolderPair, Message, utcnow
from mxshift.store.lazy import LazyStore
from mxshift.store.uidset import UidRuns
from mxshift.store.base import FolderChanges, FolderStatus, Store, store_notes
from mxshift.engine.folder_scan import (FolderScan, Partial, SizedNew, delta_mode, new_message,
                                        qresync_flags, status_as_saved)
from mxshift.store.flag_map import NO_SIZE
from mxshift.engine.pass_result import NoProgress, PassResult, Progress
from mxshift.engine.folder_step import FolderStep
from mxshift.engine.move_step import MoveStep
from mxshift.engine.flag_step import FlagStep


class MailboxPass(FolderStep, MoveStep, FlagStep):
    #: A part of a split pass (engine/folder_tasks.py) works on these folder pairs only
    #: and leaves the folder mapping to its plan pass; None: the whole mailbox.
    folders: frozenset[int] | None = None
    #: A delta reads its new messages while the destination logs in (early_fetch.py);
    #: a pass that may hand its folders to other tasks does not.
    reads_early: bool = True

    def __init__(self, db: StateDB, mailbox_id: int, *, source: Callable[[], Store],
                 destination: Callable[[], Store], settings: PassSettings,
                 hooks: Hooks | None = None, progress: Progress | None = None,
                 kind: str | None = None) -> None:
        self.db = db
        self.kind = kind  # None: prestage the first time, delta afterwards; or "final"
        self.mailbox_id = mailbox_id
        self.open_source = source
        self.open_destination = destination
        self.settings = settings
        self.hooks = hooks or Hooks()
        self.progress = progress or NoProgress()
        self.journal = Journal(db, mailbox_id, self.hooks)
        # The run's byte budget (sync.py), or this pass's own.
        self.budget = settings.budget or ByteBudget(settings.batch_bytes)
        # STATUS of the source folders as the pass's first LIST answered it (LIST-STATUS)
        self.source_status: dict[str, FolderStatus] = {}
        # journalled UIDs of the folders the QRESYNC burst asked about (_changes_many)
        self._uid_runs: dict[int, UidRuns] = {}

    # -- the pass -------------------------------------------------------------------
    def run(self) -> PassResult:
        started = time.monotonic()
        label, has_passed = pass_rows.start_info(self.db, self.mailbox_id)
        result = PassResult(mailbox=label,
                            kind=self.kind or ("delta" if has_passed else "prestage"))
        try:
            self.pass_id = self._acquire(result.kind)
            self.journal.fence = self.pass_id  # intents commit only while we hold it
        except MailboxError as exc:
            result.status, result.error = "failed", str(exc)
            self.progress.finish(label, result)
            return result
        try:
            return self._run_leased(label, result, started)
        finally:
            lease.release(self.pass_id)  # also on a (simulated) kill: this process is done

    def _acquire(self, kind: str) -> int:
        """The lease and the pass row (a part of a split pass takes its folders' lease)."""
        return lease.acquire(self.db, self.mailbox_id, kind)

    def _handed_off(self, scans: dict[int, FolderScan], result: PassResult) -> bool:
        """After moves: True when the folders' work went to other tasks (a split pass,
        engine/folder_tasks.py) and this pass ends here."""
        return False

    def _run_leased(self, label: str, result: PassResult, started: float) -> PassResult:
        self.hooks.checkpoint("journal pass start")
        src = dst = None
        self.spares = SpareSources(self.open_source)  # scan connections, for the copy
        # destination connections of the copy phase, logged in during the scan
        self.spare_destinations = SpareSources(self.open_destination)
        try:
            src = self.open_source()
            # The destination logs in on first use: a pass with nothing to do never
            # does (see _nothing_to_do); one with work to do does after the source's.
            dst = cast(Store, LazyStore(self.open_destination))
            self._run(src, dst, result)
            result.status = "ok"
        except SyncError as exc:
            result.status, result.error = "failed", str(exc)
        finally:
            for store in (src, dst, *self.spares.drain(), *self.spare_destinations.drain()):
                if store is not None:
                    result.notes.extend(store_notes(store))
                    store.close()
        for note in result.notes:
            if "throttled" in note:  # the admin sees back-pressure in status and the report
                self.journal.event("warning", note)
        result.seconds = time.monotonic() - started
        self._finish(result)
        self.progress.finish(label, result)
        return result

    def _run(self, src: Store, dst: Store, result: PassResult) -> None:
        self._deferred_map: tuple[ListedInBackground, list[RemoteFolder], Namespace] | None
        self._deferred_map = None
        pairs = (self._map_folders(src, dst, result) if self.folders is None
                 else self._load_pairs())
        if self._deferred_map is None:
            self._run_mapped(src, dst, pairs, result)
            return
        listed = self._deferred_map[0]
        try:  # every use of the destination waits for its listing thread
            self._run_mapped(src, cast(Store, listed), pairs, result)
        finally:
            listed.wait()  # before the pass closes the destination

    def _run_mapped(self, src: Store, dst: Store, pairs: dict[int, FolderPair],
                    result: PassResult) -> None:
        if reconcile(self.journal, dst, pairs):
            pairs = self._load_pairs()  # reconcile may have reset a folder's map
        scans: dict[int, FolderScan] = {}
        for pair, scan in self._scan_all(src, pairs, result):
            if isinstance(scan, FolderError):
                self._folder_error(pair, scan, result)
            elif scan is None:
                result.unchanged_folders += 1
            else:
                scans[pair.id] = scan
        if self._deferred_map is not None:
            # Step 2 after the scan, before any write to the destination: with the
            # folders known this only re-creates destination folders someone deleted.
            listed, src_folders, src_ns = self._deferred_map
            dst_ns, dst_folders = listed.listing()
            self._map_with(src, dst, src_folders, src_ns, dst_ns, dst_folders, result)
        self._identify_new(src, scans)
        moves = self._plan_moves(scans)
        early = read_early(src, scans, moves, self.settings, self.budget,
                           enabled=self.reads_early)
        try:
            self._execute_moves(dst, scans, moves, pairs, result)
            if self._handed_off(scans, result):
                return
            labels = gmail_labels.take_labels(self, dst, scans)  # [options] gmail_labels
            self.early_read = early
            self.progress.start(result.mailbox, sum(len(s.new) for s in scans.values()),
                                sum(m.size for s in scans.values() for m in s.new.values()))
            self._apply_all(src, dst, [scan for _, scan in sorted(scans.items())], result)
        finally:
            if early is not None:  # its thread joined (the source is this thread's
                early.close()      # again), the budget back, spools nobody took removed
        gmail_labels.apply_labels(self, src, dst, labels, scans, result)
        self._drop_gone_folders(dst, [s.pair for s in scans.values() if not s.pair.present])

    def _scan_all(self, src: Store, pairs: dict[int, FolderPair], result: PassResult
                  ) -> list[tuple[FolderPair, FolderScan | FolderError | None]]:
        """Step 4 for every selectable folder, in folder order. With QRESYNC the changed
        folders are read together on this connection (one round trip, _changes_many);
        with CONDSTORE, when many changed since the saved STATUS, on several
        (parallel_scan); else one after another."""
        todo = sorted((p for p in pairs.values() if p.selectable), key=lambda p: p.id)
        changed = [p for p in todo if not self._listed_unchanged(p)]
        workers = scan_workers(len(changed), self.settings.folder_parallelism)
        mode = delta_mode(src.capabilities)
        pairs_after = delta_pairs(len(changed), self.settings.folder_parallelism)
        if pairs_after > 1 and mode != "full-scan":
            # The copy phase takes as many pairs (folder_pool.worker_count): their
            # destination halves log in now, while the source is scanned.
            self.spare_destinations.warm(pairs_after - 1)
        if mode == "qresync" and changed and hasattr(src, "select_changes_many"):
            # One connection reads every changed folder in one round trip
            # (store/qresync_batch.py). A first pass's copy workers log in to the source
            # meanwhile; a delta's read its new messages early instead (early_fetch.py).
            if all(p.source_highestmodseq is None for p in changed):
                self.spares.warm(workers - 1)
            read = self._changes_many(src, changed)
            out: list[tuple[FolderPair, FolderScan | FolderError | None]] = []
            for pair in todo:
                try:
                    out.append((pair, self._scan(src, pair, read.get(pair.id))))
                except FolderError as exc:
                    out.append((pair, exc))
            return out
        if workers > 1 and mode != "full-scan":
            job: ParallelScan[FolderPair, FolderScan | None] = ParallelScan(
                src, self.spares, self._scan)
            found = job.run(todo, workers)
            result.notes.extend(job.notes)
            return sorted(found, key=lambda item: item[0].id)
        out = []
        for pair in todo:
            try:
                out.append((pair, self._scan(src, pair)))
            except FolderError as exc:
                out.append((pair, exc))
        return out

    def _changes_many(self, src: Store, changed: list[FolderPair]) -> dict[int, FolderChanges]:
        """The QRESYNC answers of the changed folders, read together; a folder left out
        (no saved state or listing to ask with, or an answer that is not the whole
        story) is scanned on its own by :meth:`_scan`."""
        from mxshift.store.qresync_batch import ChangesRequest  # imports imapclient

        todo = [p for p in changed if p.present and p.source_highestmodseq is not None
                and p.source_uidvalidity and p.source_name in self.source_status]
        if not todo:
            return {}

        def requests() -> Iterator[ChangesRequest]:  # sent as made (qresync_batch.py)
            for pair in todo:
                # The journalled UIDs as runs, not the rows: _scan_read then reads the
                # rows of the messages the answer names only.
                known = self.journal.uid_runs(pair.id)
                self._uid_runs[pair.id] = known
                first_new = known.highest + 1
                more = self.source_status[pair.source_name].uidnext > first_new
                yield ChangesRequest(pair.source_name, pair.source_uidvalidity,  # type: ignore[arg-type]
                                     pair.source_highestmodseq,  # type: ignore[arg-type]
                                     known, first_new if known and more else None)

        answers = src.select_changes_many(requests())  # type: ignore[attr-defined]
        return {p.id: ch for p, ch in zip(todo, answers) if ch is not None}

    def _listed_unchanged(self, pair: FolderPair) -> bool:
        """The pass's LIST-STATUS shows the folder as the last complete pass saw it (the
        test :meth:`_scan` makes before it selects anything)."""
        return pair.present and status_as_saved(pair, self.source_status.get(pair.source_name))

    def _apply_all(self, src: Store, dst: Store, scans: list[FolderScan],
                   result: PassResult) -> None:
        """Step 6 for every folder: on this connection pair, or on several (folder_pool)."""
        self.live = LiveProgress(self.db, self.pass_id)
        self.cancel = threading.Event()
        scan_journal = self.journal
        self.journal = SerialJournal(self.db, self.mailbox_id, self.hooks)
        self.journal.share_cache(scan_journal)
        one = apply_guarded(self._apply,
                            lambda scan, exc, part: self._folder_error(scan.pair, exc, part))
        workers = worker_count(scans, self.settings.folder_parallelism)
        early = getattr(self, "early_read", None)
        if early is not None:
            src = cast(Store, AfterEarly(src, early))  # in use by the early read meanwhile
        self.worker_batch_bytes = max(1, self.settings.batch_bytes // workers)
        if workers == 1:
            for scan in scans:
                one(src, dst, scan, result)
            return
        open_source: Callable[[], Store] = self.spares.open
        if early is not None:
            # The new messages were read early (early_fetch.py): a worker needs no source
            # connection, so it logs in to the source only if it must after all.
            open_source = lambda: cast(Store, LazyStore(self.spares.open_now))  # noqa: E731
        FolderPool(src=src, dst=dst, open_source=open_source,
                   open_destination=self.spare_destinations.open, apply_one=one,
                   fresh_result=lambda: PassResult(mailbox=result.mailbox, kind=result.kind),
                   result=result, cancel=self.cancel).run(scans, workers)

    def _drop_gone_folders(self, dst: Store, gone: list[FolderPair]) -> None:
        """A folder deleted or renamed on the source goes on the destination too, but only
        when mxshift created it there, it is now empty, and it has no sub-folders: the
        user's own folders and mail are never removed."""
        if not gone:
            return
        names = [f.name for f in dst.list_folders()]
        sep = dst.namespace().separator
        for pair in sorted(gone, key=lambda p: -len(p.destination_name)):
            if self.journal.known(pair.id) or not pair.created:
                continue
            if any(n.startswith(pair.destination_name + sep) for n in names):
                continue
            if pair.destination_name in names and dst.status(pair.destination_name).messages:
                continue
            if pair.destination_name in names:
                dst.delete_folder(pair.destination_name)
                self.hooks.checkpoint("delete folder")
                names.remove(pair.destination_name)
            with self.journal.tx("journal drop folder pair") as s:
                s.execute(delete(FolderPair).where(FolderPair.id == pair.id))

    # -- step 4: scan ---------------------------------------------------------------
    def _scan(self, src: Store, pair: FolderPair, read: FolderChanges | None = None
              ) -> FolderScan | None:
        """Read what changed on the source folder; None when nothing did.

        The mode follows the server (see :func:`delta_mode`): with CONDSTORE a folder whose
        STATUS (UIDVALIDITY, UIDNEXT, MESSAGES, HIGHESTMODSEQ) equals what the last complete
        pass saw is not even selected. A changed one is read with QRESYNC (one SELECT
        answers what vanished and what changed), else with CHANGEDSINCE plus a UID SEARCH
        for expunges, so the cost follows the changes. Without either, or after a
        UIDVALIDITY change, or when the delta does not add up to the folder's message
        count, every UID and its flags are read ("full-scan").

        ``read``: the folder's QRESYNC answer, read with others (:meth:`_changes_many`);
        the folder is then not selected on ``src``, so whatever needs it selected (a
        full scan, new messages to identify) scans it again on its own.
        """
        if read is not None:
            scan = self._scan_read(pair, read)
            if scan is not None:
                self._identify_new(src, {pair.id: scan})  # selects it if still needed
                return scan
        if not pair.present:
            known = self.journal.known(pair.id)
            delta = plan_folder({}, known)
            return FolderScan(pair, {}, {}, delta.vanished, pair.source_uidvalidity or 0,
                              pair.source_uidnext or 0)
        mode = delta_mode(src.capabilities)
        if pair.source_highestmodseq is None or not pair.source_uidvalidity:
            mode = "full-scan"  # nothing to compare with: first pass, or not in step
        if mode != "full-scan":
            st = self.source_status.get(pair.source_name) or src.status(pair.source_name)
            if status_as_saved(pair, st):
                return None
        known = self.journal.known(pair.id)
        changes = None
        if mode == "qresync":
            changes = src.select_changes(
                pair.source_name, uidvalidity=pair.source_uidvalidity,  # type: ignore[arg-type]
                modseq=pair.source_highestmodseq, known_uids=known)  # type: ignore[arg-type]
            st = changes.status
        else:
            st = src.select(pair.source_name, readonly=True)
        if self.journal.track_uidvalidity(pair, "source", st.uidvalidity):
            mode = "full-scan"
            known = self.journal.known(pair.id)
        flags: dict[int, frozenset[str]] | None = None
        touched: frozenset[int] | None = None
        if st.highestmodseq is None:
            mode = "full-scan"
        elif mode == "qresync" and changes is not None:
            flags = qresync_flags(known, changes, st.messages)
            touched = frozenset(changes.changed)
        elif mode == "condstore":
            changed = src.changed_since(pair.source_highestmodseq)  # type: ignore[arg-type]
            flags = {u: changed[u] if u in changed else
                     (known[u].flags if u in known else frozenset()) for u in src.all_uids()}
            touched = frozenset(changed)
        if flags is None:
            if not known and self._first_copy() and hasattr(src, "flags_and_sizes"):
                return self._first_scan(src, pair, st)
            flags, mode, touched = src.uid_flags(), "full-scan", None
        delta = plan_folder(flags, known)
        if delta.forget:
            self.journal.forget(pair.id, delta.forget)
        added = changes.added if changes is not None else {}
        new = {uid: new_message(added[uid]) if uid in added else NewMessage(uid=uid)
               for uid in delta.new}
        scan = FolderScan(pair, flags, new, delta.vanished, st.uidvalidity, st.uidnext,
                          st.highestmodseq, mode, changed=touched)
        # Identified now, while the folder is selected: no second SELECT for it.
        self._identify_new(src, {pair.id: scan}, selected=True)
        return scan

    def _first_scan(self, src: Store, pair: FolderPair, st: FolderStatus) -> FolderScan:
        """:meth:`_scan`'s full scan on a first copy (nothing journalled: every message
        is new, none vanished) with what :meth:`_identify_new` would add: flags and
        sizes in one FETCH per slice of the folder, kept as arrays (FlagMap, SizedNew).

        Why: the pass holds every folder's scan until the folder is copied, and the
        scan's answer was held at once; both made the peak memory of a first copy grow
        with the mailbox (issue #3: 82 MB at 20,000 messages against 75 at 5,000)."""
        flags, sizes = src.flags_and_sizes(st.messages, st.uidnext)  # type: ignore[attr-defined]
        uids = flags.uids
        if NO_SIZE in sizes:  # flags without a size: expunged meanwhile, not copied
            kept = [i for i, z in enumerate(sizes) if z != NO_SIZE]
            uids = array("I", (uids[i] for i in kept))
            sizes = array("Q", (sizes[i] for i in kept))
        scan = FolderScan(pair, flags, SizedNew(uids, sizes), [], st.uidvalidity, st.uidnext,
                          st.highestmodseq, "full-scan")
        scan.identified = True
        return scan

    def _scan_read(self, pair: FolderPair, changes: FolderChanges) -> FolderScan | None:
        """:meth:`_scan` from a QRESYNC answer already read; None when the answer is not
        the whole story (UIDVALIDITY changed, no HIGHESTMODSEQ, counts that do not add
        up): the caller then scans the folder on its own, which decides as always."""
        st = changes.status
        if st.uidvalidity != pair.source_uidvalidity or st.highestmodseq is None:
            return None
        journalled = self._uid_runs.get(pair.id)
        if journalled is None or not changes.trusted:
            return None
        # What plan_folder would find, from the rows of the UIDs the answer names: a
        # changed UID without a row is new, a vanished one with a row is gone (a copy)
        # or forgotten (a skipped one). The count check of qresync_flags: the journal's
        # UIDs less the vanished plus the new must be what the folder holds.
        rows = self.journal.known_of(pair.id, [*changes.changed, *changes.vanished])
        gone = sorted(u for u in changes.vanished if u in rows)
        new_uids = sorted(u for u in changes.changed if u not in rows)
        if len(journalled) - len(gone) + len(new_uids) != st.messages:
            return None
        forget = [u for u in gone if rows[u].state != "copied"]
        if forget:
            self.journal.forget(pair.id, forget)
        added = changes.added
        new = {uid: new_message(added[uid]) if uid in added else NewMessage(uid=uid)
               for uid in new_uids}
        scan = FolderScan(pair, dict(changes.changed), new,
                          [u for u in gone if rows[u].state == "copied"], st.uidvalidity,
                          st.uidnext, st.highestmodseq, "qresync",
                          changed=frozenset(changes.changed))
        scan.partial = Partial(rows=rows, messages=st.messages)
        return scan

    def _identify_new(self, src: Store, scans: dict[int, FolderScan], *,
                      selected: bool = False) -> None:
        """Sizes and fingerprints of new messages: for batching, moves and adoption.
        ``selected``: the source has the (one) folder selected already.

        A first copy (nothing of the mailbox journalled yet, no Gmail labelling) has
        nothing to match them against: no vanished message a new one could be the move
        of, no copy of ours on the destination. It fetches sizes only (RFC822.SIZE): the
        header fetch and fingerprint of every message took a seventh of a 5,000-message
        copy and held ~600 bytes per message for the whole pass. The copier fingerprints
        each message from its bytes, and identifies beforehand the few it must (a
        destination folder that holds mail already, a message too large to copy)."""
        todo = [scan for scan in scans.values() if scan.new and not scan.identified]
        lean = bool(todo) and self._first_copy()  # a query: not for a pass with no new mail
        for scan in todo:
            uids = sorted(u for u, m in scan.new.items() if not m.fingerprint)
            if uids and not selected:
                src.select(scan.pair.source_name, readonly=True)
            if lean:
                sizes: dict[int, int] = {}
                for i in range(0, len(uids), 1000):
                    sizes.update(src.fetch_sizes(uids[i:i + 1000]))
                for uid in uids:
                    if uid in sizes:
                        scan.new[uid] = NewMessage(uid=uid, size=sizes[uid])
                    else:
                        del scan.new[uid]  # expunged between the scan and now
                scan.identified = True
                continue
            for i in range(0, len(uids), 1000):
                for meta in src.fetch_meta(uids[i:i + 1000]):
                    scan.new[meta.uid] = new_message(meta)
            for uid in [u for u, m in scan.new.items() if not m.fingerprint]:
                del scan.new[uid]  # expunged between the scan and now
            scan.identified = True

    def _first_copy(self) -> bool:
        """No message of this mailbox in the journal (and no Gmail labelling, which
        matches new messages by fingerprint): see :meth:`_identify_new`. Asked once."""
        first = getattr(self, "_first", None)
        if first is None:
            with self.journal.read() as s:
                first = self.settings.gmail_labels != "labels" and s.execute(
                    select(Message.id).join(FolderPair)
                    .where(FolderPair.mailbox_id == self.mailbox_id).limit(1)).first() is None
            self._first = first
        return first

    # -- step 6: per folder ---------------------------------------------------------
    def _apply(self, src: Store, dst: Store, scan: FolderScan, result: PassResult) -> None:
        pair = scan.pair
        # After a scan that read the changed messages' rows only (scan.partial), read
        # those rows again (moves may have re-keyed some to this folder since) and
        # count the folder's: not every row.
        part = scan.partial
        if part is not None:
            known = self.journal.known_of(pair.id, scan.changed or ())
            journalled = self.journal.count(pair.id)
        else:
            known = self.journal.known(pair.id)
            journalled = len(known)
        if not scan.new and not scan.vanished and not (pair.present and plan_folder(
                self._changed_flags(scan), known).flag_changes):
            # Nothing to write (e.g. only moves arrived, or a change undone): the
            # destination folder is not even selected. Without PERMANENTFLAGS every
            # flag counts, so this never hides a change the destination would keep.
            self._settle_folder(pair, scan, {}, [])
            return
        st = dst.select(pair.destination_name, readonly=False)
        if self.journal.track_uidvalidity(pair, "destination", st.uidvalidity):
            if part is not None:  # every source message is needed now: read them all
                src.select(pair.source_name, readonly=True)
                scan.source_flags, scan.partial = src.uid_flags(), None
            scan.vanished = []
            scan.new = {u: NewMessage(uid=u) for u in scan.source_flags}
            scan.identified = False
            scan.changed = None  # re-adopted copies keep the destination's flags: plan all
            self._identify_new(src, {pair.id: scan})
            known = self.journal.known(pair.id)
            journalled = len(known)
        early_read = getattr(self, "early_read", None)
        early = early_read.folder(pair.id) if early_read is not None else {}
        if early:
            self.hooks.checkpoint("early read")  # this folder's read, nothing written yet
        copier = FolderCopier(self, src, dst, pair, st, result,
                              batch_bytes=getattr(self, "worker_batch_bytes", None),
                              live=getattr(self, "live", None),
                              cancel=getattr(self, "cancel", None),
                              budget=getattr(self, "budget", None), early=early)
        if scan.new:
            if pair.present and not all(uid in early for uid in scan.new):
                src.select(pair.source_name, readonly=True)
            # Until a folder's first pass completes, the destination may hold copies we
            # do not map yet (a previous tool, lost state, an interrupted adoption).
            # SizedNew's values() come in UID order, made one at a time as copied
            copier.copy(scan.new.values() if isinstance(scan.new, SizedNew)
                        else sorted(scan.new.values(), key=lambda m: m.uid),
                        adopt=pair.last_synced_at is None or not journalled)
        changes, want = self._flag_changes(pair, scan, st.permanent_flags)
        deleting: dict[int, Doomed] = {}
        if scan.vanished:
            if self._deletion_allowed(pair, scan.vanished, journalled, result):
                deleting = self.journal.doomed(pair.id, scan.vanished)
            else:
                scan.complete = False
        self._write_changes(dst, pair, changes, deleting, result)
        self._settle_folder(pair, scan, want, [r.id for r in deleting.values()])

    def _settle_folder(self, pair: FolderPair, scan: FolderScan,
                       new_flags: dict[int, frozenset[str]], deleted_ids: list[int]) -> None:
        # HIGHESTMODSEQ is saved only when the folder is fully in step: it is what lets
        # the next pass skip the folder or read only what changed after it.
        self.journal.settle_folder(pair.id, new_flags, deleted_ids, dict(
            source_uidvalidity=scan.uidvalidity, source_uidnext=scan.uidnext,
            source_messages=(scan.partial.messages if scan.partial is not None
                             else len(scan.source_flags)),
            source_highestmodseq=scan.highestmodseq if scan.complete else None,
            last_synced_at=utcnow(), sync_mode=scan.mode))

    def _deletion_allowed(self, pair: FolderPair, vanished: list[int], known: int,
                          result: PassResult) -> bool:
        """False when the deletion ceiling holds this folder's deletions back."""
        s = self.settings
        if not s.allow_mass_delete and deletion_blocked(len(vanished), known,
                                                        s.deletion_ceiling, s.deletion_floor):
            reason = (f"{len(vanished)} of {known} messages ({len(vanished) * 100 // max(known, 1)}%)"
                      f" vanished from the source folder; deletion ceiling is "
                      f"{s.deletion_ceiling:.0%}: nothing deleted. Re-run with "
                      "--allow-mass-delete if this is intended")
            self.journal.finding(Finding(mailbox_id=self.mailbox_id, pass_id=self.pass_id,
                                         kind="mass_delete_blocked", folder=pair.source_name,
                                         reason=reason))
            result.notes.append(f"{pair.display_name or pair.source_name}: {reason}")
            result.errors += 1
            return False
        return True

    # -- bookkeeping ----------------------------------------------------------------
    def _folder_error(self, pair: FolderPair, exc: SyncError, result: PassResult) -> None:
        result.errors += 1
        result.notes.append(f"{pair.source_name}: {exc}")
        self.journal.finding(Finding(mailbox_id=self.mailbox_id, pass_id=self.pass_id,
                                     kind="folder_error", folder=pair.source_name,
                                     reason=str(exc)))

    def _finish(self, result: PassResult) -> None:
        if result.status == "ok" and result.errors:
            result.status = "partial"
        mailbox_status = {"ok": "synced", "partial": "partial", "failed": "failed"}[result.status]
        # One Core transaction (engine/pass_rows.py): the pass row's result and the
        # mailbox's totals, as the ORM wrote them, at a fraction of the CPU.
        pass_rows.close_pass(self.db, self.pass_id, self.mailbox_id, status=result.status,
                             mailbox_status=mailbox_status, seconds=result.seconds,
                             error=result.error, counts=dict(
                                 copied=result.copied, bytes_copied=result.bytes_copied,
                                 adopted=result.adopted, flags_updated=result.flags_updated,
                                 moved=result.moved, deleted=result.deleted,
                                 skipped=result.skipped, errors=result.errors))
