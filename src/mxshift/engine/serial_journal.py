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
from typing import Iterator

from sqlalchemy.orm import Session

from mxshift.engine.journal import Journal
from mxshift.state.db import StateDB

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
    """The journal, each transaction taken under the process's writer lock."""

    @contextmanager
    def tx(self, label: str) -> Iterator[Session]:
        with writing(self.db), super().tx(label) as s:
            yield s
