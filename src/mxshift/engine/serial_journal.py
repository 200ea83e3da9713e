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
from typing import Iterable, Iterator

from sqlalchemy import bindparam, insert, update
from sqlalchemy.orm import Session

from mxshift.engine.journal import Journal, Pending, flags_text
from mxshift.state.db import StateDB
from mxshift.state.prepared import RawTx, executemany
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
    def _tx(self, label: str, fenced: bool, touches: Iterable[int] | None,
            bulk: bool) -> Iterator[Session | RawTx]:
        with writing(self.db), super()._tx(label, fenced, touches, bulk) as s:
            yield s

    def record_pending(self, pair_id: int, items: list[Pending], floor: int) -> None:
        if not items:
            return super().record_pending(pair_id, items, floor)
        now = utcnow()
        with self.bulk_tx("journal pending appends", fenced=True, touches=(pair_id,)) as s:
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
        with self.bulk_tx("journal settle appends", touches=(pair_id,)) as s:
            executemany(s, _SETTLE, [
                {"b_pair": pair_id, "b_uid": source_uid, "b_dest": dest_uid, "b_now": now}
                for source_uid, dest_uid in dest_uids.items()])


_MESSAGE = Message.__table__
_INSERT = insert(_MESSAGE)
_SETTLE = (update(_MESSAGE)
           .where(_MESSAGE.c.folder_pair_id == bindparam("b_pair"),
                  _MESSAGE.c.source_uid == bindparam("b_uid"))
           .values(state="copied", destination_uid=bindparam("b_dest"), dest_uid_floor=None,
                   updated_at=bindparam("b_now")))
