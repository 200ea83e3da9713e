"""One pass per mailbox at a time, across processes and machines.

Why: two passes of the same mailbox (a cron job overlapping a manual run, a Celery task
redelivered while its first delivery still runs) would each append what the other is
appending. A pass row in state ``running`` records the lease; how it is *held* depends on
the database:

* SQLite (one machine): the row is taken in the same write transaction that checks for
  another (SQLite serialises these with BEGIN IMMEDIATE); the holder is alive while its
  process is (``host:pid`` in ``Pass.owner``, checked with ``kill(pid, 0)``).
* PostgreSQL (many machines): the holder also takes a session-level advisory lock keyed
  by the mailbox on a connection of its own, kept open for the whole pass. PostgreSQL
  serialises the lock across every machine and drops it the moment the holder's
  connection dies (a crash, SIGKILL, a machine gone: TCP keepalives, see state/db.py).
  So whoever gets the lock knows every ``running`` row of that mailbox is dead.

A dead holder's row is marked ``interrupted`` and taken over: the journal makes the
resumed pass exact.
"""

from __future__ import annotations

import os
import socket
import threading

from sqlalchemy import Connection, select, text

from mxshift.errors import MailboxError, Retry
from mxshift.state.db import StateDB
from mxshift.state.models import Mailbox, Pass, utcnow

#: First half of the advisory lock key (the second is the mailbox id): "mx" in ASCII.
LOCK_SPACE = 0x6D78
#: Start of the error text of a pass refused because another live pass holds the lease.
BUSY = "another pass of this mailbox is running"

_active: set[int] = set()  # pass ids running in this process
_held: dict[int, tuple[Connection, int]] = {}  # pass id -> (connection, mailbox id) of its lock
_lock = threading.Lock()


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(owner: str | None, pass_id: int) -> bool:
    if not owner or ":" not in owner:
        return False
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine: we cannot tell, so we do not take it over
    pid = int(pid_text)
    if pid == os.getpid():
        with _lock:
            return pass_id in _active
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _advisory(db: StateDB) -> bool:
    return db.engine.dialect.name == "postgresql"


def _try_lock(db: StateDB, mailbox_id: int) -> Connection | None:
    """A connection holding the mailbox's advisory lock, or None if someone holds it."""
    conn = db.engine.connect()
    try:
        got = conn.execute(text("SELECT pg_try_advisory_lock(:a, :b)"),
                           {"a": LOCK_SPACE, "b": mailbox_id}).scalar()
        conn.commit()  # the lock is session-level: it outlives this transaction
    except BaseException:
        conn.close()
        raise
    if not got:
        conn.close()
        return None
    return conn


def _unlock(conn: Connection, mailbox_id: int) -> None:
    try:
        conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"),
                     {"a": LOCK_SPACE, "b": mailbox_id})
        conn.commit()
    except Exception:  # noqa: BLE001 - a broken connection lost the lock anyway
        conn.invalidate()
    finally:
        conn.close()


def held_elsewhere(db: StateDB, mailbox_id: int) -> bool:
    """True while a live pass of ``mailbox_id`` holds the lease (any process, any machine).

    For a queue worker that got a task redelivered while its first delivery still runs:
    it waits for that pass instead of failing."""
    if _advisory(db):
        conn = _try_lock(db, mailbox_id)
        if conn is None:
            return True
        _unlock(conn, mailbox_id)
        return False
    with db.session() as s:
        return any(_alive(p.owner, p.id) for p in s.scalars(
            select(Pass).where(Pass.mailbox_id == mailbox_id, Pass.status == "running")))


def acquire(db: StateDB, mailbox_id: int, kind: str) -> int:
    """Open a pass row for ``mailbox_id``; MailboxError if a live pass holds it."""
    conn = None
    if _advisory(db):
        conn = _try_lock(db, mailbox_id)
        if conn is None:
            with db.session() as s:
                other = s.scalars(select(Pass).where(
                    Pass.mailbox_id == mailbox_id, Pass.status == "running")
                    .order_by(Pass.id.desc())).first()
            who = f" ({other.owner}, started {other.started_at:%Y-%m-%d %H:%M})" if other else ""
            raise MailboxError(f"{BUSY}{who}", retry=Retry.TEMPORARY)
    try:
        with db.session() as s, s.begin():
            for other in s.scalars(select(Pass).where(Pass.mailbox_id == mailbox_id,
                                                      Pass.status == "running")):
                # with the advisory lock in hand every running row is a dead holder's
                if conn is None and _alive(other.owner, other.id):
                    raise MailboxError(f"{BUSY} ({other.owner}, "
                                       f"started {other.started_at:%Y-%m-%d %H:%M})",
                                       retry=Retry.TEMPORARY)
                other.status, other.finished_at = "interrupted", utcnow()
            run = Pass(mailbox_id=mailbox_id, kind=kind, owner=_me())
            s.add(run)
            s.flush()
            mb = s.get(Mailbox, mailbox_id)
            assert mb is not None
            mb.status = "running"
            pass_id = run.id
    except BaseException:
        if conn is not None:
            _unlock(conn, mailbox_id)
        raise
    with _lock:
        _active.add(pass_id)
        if conn is not None:
            _held[pass_id] = (conn, mailbox_id)
    return pass_id


def release(pass_id: int) -> None:
    """The pass is over in this process (finished, failed or a simulated kill)."""
    with _lock:
        _active.discard(pass_id)
        held = _held.pop(pass_id, None)
    if held is not None:
        _unlock(*held)  # explicitly: the pooled connection outlives this pass
