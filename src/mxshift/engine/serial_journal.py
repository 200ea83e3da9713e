"""One writer at a time for the journal of passes running in threads of one process.

Why: SQLite allows one write transaction at a time (BEGIN IMMEDIATE); a thread that
finds the database locked sleeps in SQLite's busy handler (1, 2, 5, 10... ms) before it
tries again. With folders copied in parallel and several mailboxes at once, those
sleeps, not the work, set the pace. Waiting on a lock of our own instead wakes the next
writer the moment the previous one commits (datasette's "one writer" rule). A server
database (PostgreSQL) takes concurrent writers and is not serialised.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

from sqlalchemy import bindparam, insert, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Executable

from mxshift.engine.journal import Journal, Pending, flags_text
from mxshift.state.db import StateDB
from mxshift.state.models import Message, utcnow

# Re-entrant: a test hook run at a checkpoint may itself write.
WRITER = threading.RLock()


def serialised(db: StateDB) -> bool:
    return db.engine.url.get_backend_name() == "sqlite"


@contextmanager
def writing(db: StateDB) -> Iterator[None]:
    """Hold the process's SQLite writer lock (no-op for a server database)."""
    if serialised(db):
        with WRITER:
            yield
    else:
        yield


class SerialJournal(Journal):
    """The journal of the copy phase: each transaction under the process's writer lock,
    and the two writes made for every copied message done as one statement per batch.

    Why the bulk forms: the ORM's unit of work (one INSERT, then one UPDATE statement
    compiled and run per message) was the largest CPU cost of a full copy after the
    protocol fixes; the rows, states, transactions and checkpoints are exactly those of
    :class:`Journal` (same labels), only executed with ``executemany``.
    """

    @contextmanager
    def tx(self, label: str, *, fenced: bool = False) -> Iterator[Session]:
        with writing(self.db), super().tx(label, fenced=fenced) as s:
            yield s

    def record_pending(self, pair_id: int, items: list[Pending], floor: int) -> None:
        if not items:
            return super().record_pending(pair_id, items, floor)
        now = utcnow()
        with self.tx("journal pending appends", fenced=True) as s:
            executemany(s, _INSERT, [
                {"folder_pair_id": pair_id, "source_uid": p.source_uid,
                 "fingerprint": p.fingerprint, "strong": p.strong,
                 "content_hash": p.content_hash, "size": p.size, "flags": flags_text(p.flags),
                 "state": "pending", "origin": "appended", "dest_uid_floor": floor,
                 "repair": p.repair, "updated_at": now} for p in items])

    def settle_copied(self, pair_id: int, dest_uids: dict[int, int | None]) -> None:
        if not dest_uids:
            return
        now = utcnow()
        with self.tx("journal settle appends") as s:
            executemany(s, _SETTLE, [
                {"b_pair": pair_id, "b_uid": source_uid, "b_dest": dest_uid, "b_now": now}
                for source_uid, dest_uid in dest_uids.items()])


def executemany(s: Session, stmt: Executable, rows: list[dict[str, object]]) -> None:
    """``stmt`` once per row, in one ``executemany``.

    Why not just ``execute(stmt, rows)`` on SQLite: SQLAlchemy then processes every row's
    parameters in Python, two thirds of the journal's cost of a full copy (two rows per
    message). Here the statement is compiled once, each column type's bind processor is
    looked up once, and the rows go to the DBAPI cursor as tuples: same SQL, same stored
    values. Other databases take the general path.
    """
    conn = s.connection()
    if conn.dialect.name != "sqlite" or not rows:
        conn.execute(stmt, rows)
        return
    keys = tuple(rows[0])
    key = (id(stmt), keys)
    prepared = _PREPARED.get(key)
    if prepared is None:
        compiled = stmt.compile(dialect=conn.dialect, column_keys=list(keys))
        order = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]  # a value the statement sets itself is its own
            order.append((name, bind.type._cached_bind_processor(conn.dialect), bind.value))
        prepared = _PREPARED[key] = (str(compiled), order)
    sql, order = prepared
    conn.exec_driver_sql(sql, [tuple(_value(row.get(name, fixed), proc)
                                     for name, proc, fixed in order) for row in rows])


def _value(value: object, proc: Any) -> object:
    return value if proc is None or value is None else proc(value)


_PREPARED: dict[tuple[int, tuple[str, ...]], tuple[str, list[tuple[str, Any, object]]]] = {}
_MESSAGE = Message.__table__
_INSERT = insert(_MESSAGE)
_SETTLE = (update(_MESSAGE)
           .where(_MESSAGE.c.folder_pair_id == bindparam("b_pair"),
                  _MESSAGE.c.source_uid == bindparam("b_uid"))
           .values(state="copied", destination_uid=bindparam("b_dest"), dest_uid_floor=None,
                   updated_at=bindparam("b_now")))
