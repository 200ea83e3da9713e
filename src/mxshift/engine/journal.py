"""The journal: every intended change is written here before it is sent, and settled after.

Why a class of small transactions: each method is one committed transaction, followed by a
checkpoint. A pass killed at any checkpoint leaves a journal that the next pass reconciles
(see :mod:`mxshift.engine.reconcile`); tests crash the pass at every checkpoint in turn.

A Gmail label added instead of a copy (:mod:`mxshift.engine.gmail_labels`) is journalled
as an append is: a ``pending`` row of the label folder, ``origin = "labelled"``, with the
folder's UIDNEXT as ``dest_uid_floor``; reconcile settles or drops it like any append.
"""

from __future__ import annotations

import itertools
import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator, NamedTuple

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session

from mxshift.engine.plan import Known
from mxshift.state.db import StateDB
from mxshift.errors import MailboxError
from mxshift.state.models import PASSING, Event, Finding, FolderPair, Message, Pass, utcnow
from mxshift.state.prepared import RawTx, executemany, fetch_all
from mxshift.store.uidset import UidRuns


class Hooks:
    """Test seam: ``checkpoint`` is called after every journal commit and protocol write."""

    def checkpoint(self, label: str) -> None:
        return None


class SimulatedCrash(BaseException):
    """Raised by a test hook to stop a pass as abruptly as a kill would.

    A BaseException so that no ``except Exception`` in the engine can tidy up after it:
    the journal must be right without any clean-up.
    """


class CrashAt(Hooks):
    """Crash at the ``n``-th checkpoint (0-based); count them when ``n`` is None."""

    def __init__(self, n: int | None) -> None:
        self.n = n
        self.count = 0
        self.labels: list[str] = []

    def checkpoint(self, label: str) -> None:
        self.labels.append(label)
        if self.n is not None and self.count == self.n:
            self.count += 1
            raise SimulatedCrash(f"simulated crash at checkpoint {self.n}: {label}")
        self.count += 1


def flags_text(flags: Iterable[str]) -> str:
    return " ".join(sorted(set(flags)))


def flags_set(text: str | None) -> frozenset[str]:
    return frozenset(text.split()) if text else frozenset()


def _known_rows(rows: list[tuple]) -> dict[int, Known]:
    """Source UID -> :class:`Known` from (uid, dest uid, flags text, fingerprint, state)
    rows; one frozenset per distinct flags text (a folder has few)."""
    sets: dict[str | None, frozenset[str]] = {}
    out = {}
    for uid, dest, text, fp, state in rows:
        flags = sets.get(text)
        if flags is None:
            flags = sets[text] = flags_set(text)
        out[uid] = Known(uid, dest, flags, fp, state)
    return out


class Doomed(NamedTuple):
    """A journal row about to be deleted (its source message vanished): what the
    deletion step needs of it, read by one plain query instead of as ORM objects (a
    delta's ORM loads of these rows were ~9% of its CPU)."""

    id: int
    destination_uid: int | None


@dataclass(frozen=True)
class Pending:
    """A copy about to be appended."""

    source_uid: int
    fingerprint: str
    strong: bool
    content_hash: str
    size: int
    flags: frozenset[str]
    repair: str | None = None


class Journal:
    def __init__(self, db: StateDB, mailbox_id: int, hooks: Hooks) -> None:
        self.db = db
        self.mailbox_id = mailbox_id
        self.hooks = hooks
        # known() per folder pair, valid while no transaction ran since it was read: a
        # pass asks for the same folder's rows at its scan, move planning, copy and
        # flag steps (a 5,000-row SELECT and as many objects each time).
        # A write names the folder pairs it touches (``tx(touches=...)``): it voids only
        # their cached rows, so a pass's writes to one folder keep the others cached.
        self._writes = itertools.count()
        self._generation = next(self._writes)
        self._pair_writes: dict[int, int] = {}
        self._known: dict[int, tuple[tuple[int, int], dict[int, Known]]] = {}
        # The pass whose lease every *intent* write checks (see :meth:`tx`); None: unfenced.
        self.fence: int | None = None

    def share_cache(self, other: "Journal") -> None:
        """Take over ``other``'s known() cache (the same database, e.g. the scan's
        journal handing over to the copy phase's :class:`SerialJournal`)."""
        self._known = other._known
        self._writes = other._writes
        self._generation = other._generation
        self._pair_writes = other._pair_writes
        self.fence = other.fence

    @contextmanager
    def tx(self, label: str, *, fenced: bool = False,
           touches: Iterable[int] | None = None) -> Iterator[Session]:
        """One journal transaction, then the test checkpoint.

        ``fenced``: an intent written before a protocol write (an append, a move, a flag
        change, a deletion). It commits only while this pass's row still says
        ``running``. Why: if the pass lost its lease (its PostgreSQL lock connection
        dropped while it ran on) and another pass took the mailbox over, the takeover
        marked this row ``interrupted``; the fence stops this pass before it sends
        anything more, so two passes never append the same messages.

        ``touches``: the folder pairs whose message rows this transaction may change
        (their cached known() rows are voided); None, the default, voids every pair's."""
        with self._tx(label, fenced, touches, bulk=False) as s:
            yield s  # type: ignore[misc]

    @contextmanager
    def bulk_tx(self, label: str, *, fenced: bool = False,
                touches: Iterable[int] | None = None) -> Iterator[Session | RawTx]:
        """:meth:`tx` for statements run through ``prepared.executemany``/``fetch_all``
        only: on SQLite a bare DBAPI transaction (``StateDB.raw_write``), no ORM session
        (its set-up and commit were most of a first copy's journal CPU)."""
        with self._tx(label, fenced, touches, bulk=True) as s:
            yield s

    @contextmanager
    def _tx(self, label: str, fenced: bool, touches: Iterable[int] | None,
            bulk: bool) -> Iterator[Session | RawTx]:
        try:
            if bulk and self.db.engine.dialect.name == "sqlite":
                with self.db.raw_write() as raw:
                    if fenced and self.fence is not None:
                        self._check_fence(raw)
                    yield raw
            else:
                with self.db.session() as s:
                    with s.begin():
                        if fenced and self.fence is not None:
                            self._check_fence(s)
                        yield s
        finally:  # committed or not: cached rows may be stale now
            if touches is None:
                self._generation = next(self._writes)
                self._known.clear()  # stale: never read again, so not held either
            else:
                for pair_id in touches:
                    self._pair_writes[pair_id] = next(self._writes)
                    # Stale rows are freed now, not held to the pass's end: a first copy
                    # would keep every folder's rows (~280 bytes a message) until then.
                    self._known.pop(pair_id, None)
        self.hooks.checkpoint(label)

    def _check_fence(self, s: Session | RawTx) -> None:
        found = fetch_all(s, _FENCE, {"b_id": self.fence})
        status = found[0][0] if found else None
        if status != "running":
            raise MailboxError(f"this pass lost its lease (its row says {status}: another "
                               "pass of the mailbox took over); stopped before writing")

    def read(self) -> Session:
        return self.db.session()

    # -- reading --------------------------------------------------------------------
    def known(self, pair_id: int) -> dict[int, Known]:
        """Source UID -> journal row of one folder pair (a new dict; rows are frozen)."""
        # Read before the rows: a write meanwhile voids them.
        generation = (self._generation, self._pair_writes.get(pair_id, -1))
        cached = self._known.get(pair_id)
        if cached is not None and cached[0] == generation:
            return dict(cached[1])
        with self.db.reading() as conn:  # plain rows, no ORM, no write lock
            out = _known_rows(fetch_all(conn, _KNOWN, {"b_pair": pair_id}))
        self._known[pair_id] = (generation, out)
        return dict(out)

    def uid_runs(self, pair_id: int) -> UidRuns:
        """The source UIDs journalled for a folder pair (every row, as :meth:`known`), as
        runs of consecutive UIDs: one row per run, found by SQL (a UID minus its rank
        is the same along a run), not one object per message.

        Why: a QRESYNC delta needs the journalled UIDs (to name them in its request,
        and to count the folder) but the rows of the changed messages only; reading
        every row was what made a delta's cost grow with the folder (issue #3)."""
        with self.db.reading() as conn:
            return UidRuns((a, b) for a, b in fetch_all(conn, _UID_RUNS, {"b_pair": pair_id}))

    def count(self, pair_id: int) -> int:
        """Journal rows of a folder pair (every state, as :meth:`known` has them)."""
        with self.db.reading() as conn:
            return int(fetch_all(conn, _COUNT, {"b_pair": pair_id})[0][0])

    def known_between(self, pair_id: int, first: int, last: int) -> dict[int, Known]:
        """:meth:`known` of the source UIDs ``first`` to ``last`` only, not cached.

        Why: a folder's flag plan after its first copy compares every row with the scan;
        read a slice at a time, it holds a slice's rows, not the whole folder's at once
        (engine/mailbox_pass.py ``_flag_changes``)."""
        with self.db.reading() as conn:
            return _known_rows(fetch_all(conn, _KNOWN_BETWEEN, {
                "b_pair": pair_id, "b_first": first, "b_last": last}))

    def known_of(self, pair_id: int, uids: Iterable[int]) -> dict[int, Known]:
        """:meth:`known` of ``uids`` only, not cached: a delta's flag plan reads the rows
        of the messages that changed, not the folder's (engine/flag_step.py
        ``_flag_changes``)."""
        return _known_rows([tuple(r) for r in self._rows_of(_KNOWN_IN, pair_id, uids)])

    def doomed(self, pair_id: int, uids: Iterable[int]) -> dict[int, Doomed]:
        """Source UID -> :class:`Doomed` of the journalled ones among ``uids``."""
        return {uid: Doomed(row_id, dest)
                for uid, row_id, dest in self._rows_of(_DOOMED, pair_id, uids)}

    def _rows_of(self, stmt: object, pair_id: int, uids: Iterable[int]) -> Iterator:
        """``stmt``'s rows for the folder's ``uids`` (bound as ``b_uids``).

        SQLite: one prepared statement (state/prepared.py) whose UIDs arrive as one JSON
        array, read by ``json_each``: a delta asks this three times per changed folder,
        and through Core's ``execute`` an expanding IN list renders its SQL anew for each
        call and builds the statement's cache key each time (in a fresh CLI delta,
        beside the copy threads, 51 such calls took 37-40 ms of wall time; 18-24 ms
        this way; bench/README.md, the fifth session). Other databases: Core's
        expanding IN, 500 UIDs a query as in the journal's other IN reads."""
        wanted = sorted(set(uids))
        if not wanted:
            return
        with self.db.reading() as conn:
            if conn.dialect.name == "sqlite":
                yield from fetch_all(conn, _AS_JSON_IN[stmt],  # type: ignore[index]
                                     {"b_pair": pair_id, "b_uids": json.dumps(wanted)})
                return
            for i in range(0, len(wanted), 500):
                yield from conn.execute(stmt, {"b_pair": pair_id, "b_uids": wanted[i:i + 500]})

    def mapped_dest_uids(self, pair_id: int) -> set[int]:
        with self.read() as s:
            return {u for (u,) in s.execute(select(Message.destination_uid).where(
                Message.folder_pair_id == pair_id, Message.destination_uid.is_not(None)))}

    def passing(self) -> list[Message]:
        with self.read() as s:
            return list(s.scalars(select(Message).join(FolderPair).where(
                FolderPair.mailbox_id == self.mailbox_id,
                Message.state.in_(("pending", "moving", "deleting"))
                | Message.pending_flags.is_not(None)).order_by(Message.id)))

    def any_passing(self) -> bool:
        """Whether :meth:`passing` can find a row: one indexed query on plain columns
        (prepared.py), so that a pass with nothing to reconcile, nearly every pass,
        skips the ORM load (0.25 ms of a ~3 ms no-change pass). Mailbox-wide: a
        superset of what a subclass's ``passing`` keeps."""
        with self.read() as s:
            return bool(fetch_all(s, _ANY_PASSING, {"b_mailbox": self.mailbox_id}))

    def rows(self, pair_id: int, uids: Iterable[int]) -> dict[int, Message]:
        uid_list = list(uids)
        out: dict[int, Message] = {}
        with self.read() as s:
            for i in range(0, len(uid_list), 500):
                for m in s.scalars(select(Message).where(
                        Message.folder_pair_id == pair_id,
                        Message.source_uid.in_(uid_list[i:i + 500]))):
                    out[m.source_uid] = m
        return out

    # -- copies ---------------------------------------------------------------------
    def record_pending(self, pair_id: int, items: list[Pending], floor: int) -> None:
        with self.tx("journal pending appends", fenced=True, touches=(pair_id,)) as s:
            for p in items:
                s.add(Message(folder_pair_id=pair_id, source_uid=p.source_uid,
                              fingerprint=p.fingerprint, strong=p.strong,
                              content_hash=p.content_hash, size=p.size,
                              flags=flags_text(p.flags), state="pending",
                              origin="appended", dest_uid_floor=floor, repair=p.repair))

    def settle_copied(self, pair_id: int, dest_uids: dict[int, int | None]) -> None:
        if not dest_uids:
            return
        with self.tx("journal settle appends", touches=(pair_id,)) as s:
            for source_uid, dest_uid in dest_uids.items():
                s.execute(update(Message).where(Message.folder_pair_id == pair_id,
                                                Message.source_uid == source_uid)
                          .values(state="copied", destination_uid=dest_uid,
                                  dest_uid_floor=None))

    def update_pending(self, pair_id: int, source_uid: int, fingerprint: str, strong: bool,
                       chash: str, size: int, repair: str) -> None:
        """A repaired copy is about to be sent: its identity is that of the new bytes."""
        with self.tx("journal repaired append", fenced=True, touches=(pair_id,)) as s:
            s.execute(update(Message).where(Message.folder_pair_id == pair_id,
                                            Message.source_uid == source_uid)
                      .values(fingerprint=fingerprint, strong=strong, content_hash=chash,
                              size=size, repair=repair))

    def adopt(self, pair_id: int, items: list[tuple[Pending, int, frozenset[str]]]) -> None:
        """Journal destination copies recognised by fingerprint (no protocol write)."""
        if not items:
            return
        with self.tx("journal adopted copies", touches=(pair_id,)) as s:
            for p, dest_uid, dest_flags in items:
                s.add(Message(folder_pair_id=pair_id, source_uid=p.source_uid,
                              destination_uid=dest_uid, fingerprint=p.fingerprint,
                              strong=p.strong, content_hash=p.content_hash or None,
                              size=p.size, flags=flags_text(dest_flags), state="copied",
                              origin="adopted"))

    def mark_skipped(self, pair_id: int, source_uid: int, *, fingerprint: str, size: int,
                     finding: Finding, existing: bool) -> None:
        with self.tx("journal skipped message", touches=(pair_id,)) as s:
            if existing:
                s.execute(update(Message).where(Message.folder_pair_id == pair_id,
                                                Message.source_uid == source_uid)
                          .values(state="skipped", dest_uid_floor=None))
            else:
                s.add(Message(folder_pair_id=pair_id, source_uid=source_uid,
                              fingerprint=fingerprint, size=size, state="skipped",
                              flags=""))
            s.add(finding)

    def forget(self, pair_id: int, source_uids: Iterable[int]) -> None:
        uids = list(source_uids)
        if not uids:
            return
        with self.tx("journal forget rows", touches=(pair_id,)) as s:
            for i in range(0, len(uids), 500):
                s.execute(delete(Message).where(Message.folder_pair_id == pair_id,
                                                Message.source_uid.in_(uids[i:i + 500])))

    def forget_ids(self, ids: Iterable[int], label: str) -> None:
        id_list = list(ids)
        if id_list:
            with self.tx(label) as s:
                s.execute(delete(Message).where(Message.id.in_(id_list)))

    def reset_pair(self, pair_id: int, **pair_values: object) -> None:
        """Forget a folder's map (UIDVALIDITY changed); fingerprints re-adopt the copies.

        The saved HIGHESTMODSEQ goes too: the next read of the folder must be a full one,
        since flags of messages we no longer map cannot come from the journal."""
        with self.tx("journal reset folder", touches=(pair_id,)) as s:
            s.execute(delete(Message).where(Message.folder_pair_id == pair_id))
            s.execute(update(FolderPair).where(FolderPair.id == pair_id)
                      .values(last_synced_at=None, source_highestmodseq=None, **pair_values))

    def track_uidvalidity(self, pair: FolderPair, side: str, current: int) -> bool:
        """Record a folder's UIDVALIDITY on first sight; on a change forget the folder's
        map (its UIDs mean something else now) and return True: the copies on the
        destination are then recognised again by fingerprint."""
        column = f"{side}_uidvalidity"
        known = getattr(pair, column)
        if known == current:
            return False
        if known is None:
            with self.tx(f"journal {side} uidvalidity", touches=()) as s:
                s.execute(update(FolderPair).where(FolderPair.id == pair.id)
                          .values({column: current}))
            return False
        self.event("warning", f"{pair.source_name}: {side} UIDVALIDITY changed ({known} -> "
                              f"{current}); re-matching copies by fingerprint")
        self.reset_pair(pair.id, **{column: current})
        return True

    # -- flags ----------------------------------------------------------------------
    def record_changes(self, pair_id: int, intents: dict[int, str],
                       deleting: list[int]) -> None:
        """One transaction before a folder's STOREs and expunge are sent: each changing
        row's flag intent ("+a|-b", see flag_plan.intent_text) and the rows about to be
        deleted (reconcile clears the intents, finishes the deletions)."""
        if not intents and not deleting:
            return
        with self.bulk_tx("journal pending flags and deletions", fenced=True,
                          touches=(pair_id,)) as s:
            now = utcnow()
            executemany(s, _INTENT, [{"b_pair": pair_id, "b_uid": uid, "b_text": text,
                                      "b_now": now} for uid, text in intents.items()])
            executemany(s, _DELETING, [{"b_pair": pair_id, "b_uid": uid, "b_now": now}
                                       for uid in deleting])

    def settle_folder(self, pair_id: int, new_flags: dict[int, frozenset[str]],
                      deleted_ids: list[int], pair_values: dict[str, object]) -> None:
        """One transaction after a folder's writes: the flags now set, the deleted rows
        gone, and the folder's saved state (``pair_values``, e.g. HIGHESTMODSEQ)."""
        now = utcnow()
        with self.bulk_tx("journal folder synced", touches=(pair_id,)) as s:
            executemany(s, _SETTLE_FLAGS, [
                {"b_pair": pair_id, "b_uid": uid, "b_flags": flags_text(flags),
                 "b_now": now} for uid, flags in new_flags.items()])
            executemany(s, _DELETE_ROW, [{"b_id": i} for i in deleted_ids])
            executemany(s, _pair_update(tuple(sorted(pair_values))),
                        [{"b_id": pair_id, **{f"b_{k}": v for k, v in pair_values.items()}}])

    def clear_flag_intents(self, ids: list[int]) -> None:
        if ids:
            with self.tx("journal clear flag intents") as s:
                s.execute(update(Message).where(Message.id.in_(ids))
                          .values(pending_flags=None))

    # -- moves and deletions --------------------------------------------------------
    def settle_move(self, row_id: int, target_pair: int, target_uid: int,
                    dest_uid: int | None) -> None:
        with self.tx("journal settle move") as s:
            s.execute(update(Message).where(Message.id == row_id).values(
                state="copied", folder_pair_id=target_pair, source_uid=target_uid,
                destination_uid=dest_uid, move_pair_id=None, move_source_uid=None,
                dest_uid_floor=None))

    def record_moves(self, moves: list[tuple[int, int, int, int]],
                     touches: Iterable[int] | None = None) -> None:
        """Rows about to be moved on the destination, (row id, target pair, target UID,
        UID floor in the target) each, in one transaction: ``moving`` until settled.
        ``touches``: the pairs the rows are in (see :meth:`tx`)."""
        if moves:
            with self.tx("journal pending moves", fenced=True, touches=touches) as s:
                s.connection().execute(_MOVING, [
                    {"b_id": r, "b_pair": p, "b_uid": u, "b_floor": f, "b_now": utcnow()}
                    for r, p, u, f in moves])

    def settle_moves(self, moves: list[tuple[int, int, int, int | None]],
                     touches: Iterable[int] | None = None) -> None:
        """:meth:`settle_move` for several (row id, target pair, target UID, destination
        UID) rows, in one transaction; ``touches``: their pairs, before and after."""
        if moves:
            with self.tx("journal settle moves", touches=touches) as s:
                s.connection().execute(_MOVED, [
                    {"b_id": r, "b_pair": p, "b_uid": u, "b_dest": d, "b_now": utcnow()}
                    for r, p, u, d in moves])

    def cancel_move(self, row_id: int) -> None:
        with self.tx("journal cancel move") as s:
            s.execute(update(Message).where(Message.id == row_id).values(
                state="copied", move_pair_id=None, move_source_uid=None, dest_uid_floor=None))

    def rekey(self, pair_id: int, old_uid: int, new_uid: int) -> None:
        with self.tx("journal re-key renumbered message", touches=(pair_id,)) as s:
            s.execute(update(Message).where(Message.folder_pair_id == pair_id,
                                            Message.source_uid == old_uid)
                      .values(source_uid=new_uid))

    # -- findings and events --------------------------------------------------------
    def finding(self, finding: Finding) -> None:
        with self.tx("journal finding", touches=()) as s:
            s.add(finding)

    def event(self, level: str, text: str) -> None:
        with self.db.session() as s, s.begin():
            s.add(Event(mailbox_id=self.mailbox_id, level=level, text=text))


# Bulk statements (one executemany per transaction) for the per-row writes above.
_M = Message.__table__
_FP = FolderPair.__table__
# Equalities, not IN: prepared.py runs the compiled text with plain bound values.
_ANY_PASSING = select(_M.c.id).select_from(
    _M.join(_FP, _M.c.folder_pair_id == _FP.c.id)).where(
    _FP.c.mailbox_id == bindparam("b_mailbox"),
    sql_text(f"({PASSING})")).limit(1)  # as the index says it (folder_pair has neither column)
_BY_ROW = (_M.c.folder_pair_id == bindparam("b_pair")) & (_M.c.source_uid == bindparam("b_uid"))
_KNOWN = select(_M.c.source_uid, _M.c.destination_uid, _M.c.flags, _M.c.fingerprint,
                _M.c.state).where(_M.c.folder_pair_id == bindparam("b_pair"))
_RANKED = select(_M.c.source_uid.label("uid"), (
    _M.c.source_uid - func.row_number().over(order_by=_M.c.source_uid)).label("run")).where(
    _M.c.folder_pair_id == bindparam("b_pair")).subquery()
_COUNT = select(func.count()).select_from(_M).where(_M.c.folder_pair_id == bindparam("b_pair"))
_UID_RUNS = select(func.min(_RANKED.c.uid), func.max(_RANKED.c.uid)).group_by(_RANKED.c.run)
_KNOWN_BETWEEN = _KNOWN.where(_M.c.source_uid.between(bindparam("b_first"),
                                                      bindparam("b_last")))
_KNOWN_IN = _KNOWN.where(_M.c.source_uid.in_(bindparam("b_uids", expanding=True)))
_DOOMED_COLUMNS = select(_M.c.source_uid, _M.c.id, _M.c.destination_uid).where(
    _M.c.folder_pair_id == bindparam("b_pair"))
_DOOMED = _DOOMED_COLUMNS.where(_M.c.source_uid.in_(bindparam("b_uids", expanding=True)))
# SQLite's form of the two: the UIDs as one JSON array, ``IN (SELECT value FROM
# json_each(?))``, one statement whatever their number (Journal._rows_of).
_JSON_UIDS = func.json_each(bindparam("b_uids")).table_valued("value")
_AS_JSON_IN = {
    _KNOWN_IN: _KNOWN.where(_M.c.source_uid.in_(select(_JSON_UIDS.c.value))),
    _DOOMED: _DOOMED_COLUMNS.where(_M.c.source_uid.in_(select(_JSON_UIDS.c.value))),
}
_INTENT = update(_M).where(_BY_ROW).values(pending_flags=bindparam("b_text"),
                                            updated_at=bindparam("b_now"))
_DELETING = update(_M).where(_BY_ROW).values(state="deleting", updated_at=bindparam("b_now"))
_DELETE_ROW = delete(_M).where(_M.c.id == bindparam("b_id"))
_FENCE = select(Pass.__table__.c.status).where(Pass.__table__.c.id == bindparam("b_id"))
_PAIR_UPDATES: dict[tuple[str, ...], object] = {}


def _pair_update(columns: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """One cached UPDATE of a folder pair per set of columns (prepared statements are
    cached by identity)."""
    stmt = _PAIR_UPDATES.get(columns)
    if stmt is None:
        table = FolderPair.__table__
        stmt = _PAIR_UPDATES[columns] = update(table).where(
            table.c.id == bindparam("b_id")).values({c: bindparam(f"b_{c}") for c in columns})
    return stmt
_SETTLE_FLAGS = update(_M).where(_BY_ROW).values(flags=bindparam("b_flags"), pending_flags=None,
                                                  updated_at=bindparam("b_now"))
_MOVING = update(_M).where(_M.c.id == bindparam("b_id")).values(
    state="moving", move_pair_id=bindparam("b_pair"), move_source_uid=bindparam("b_uid"),
    dest_uid_floor=bindparam("b_floor"), updated_at=bindparam("b_now"))
_MOVED = update(_M).where(_M.c.id == bindparam("b_id")).values(
    state="copied", folder_pair_id=bindparam("b_pair"), source_uid=bindparam("b_uid"),
    destination_uid=bindparam("b_dest"), move_pair_id=None, move_source_uid=None,
    dest_uid_floor=None, updated_at=bindparam("b_now"))
