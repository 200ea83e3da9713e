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

A *part* of a split pass (engine/folder_tasks.py) holds a lease on some folder pairs only
(``Pass.folders``): on PostgreSQL a *shared* mailbox lock plus an exclusive lock per folder
pair, so parts of different folders run at once on different machines while a
whole-mailbox pass (exclusive mailbox lock) excludes them all. Two passes conflict when
either is a whole-mailbox pass or their folders overlap; only conflicting rows are taken
over. :func:`holder` tells a watcher (runners/requeue.py) whether a lease is held, dead
or free without touching the locks.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Literal

from sqlalchemy import Connection, select, text

from mxshift.engine import pass_rows
from mxshift.engine.serial_journal import writing
from mxshift.errors import MailboxError, Retry
from mxshift.state.db import StateDB
from mxshift.state.models import Pass

#: First half of the advisory lock key (the second is the mailbox id): "mx" in ASCII.
LOCK_SPACE = 0x6D78
#: First half of a folder pair's lock key (the second is the folder pair id): "my".
PART_SPACE = 0x6D79
#: Start of the error text of a pass refused because another live pass holds the lease.
BUSY = "another pass of this mailbox is running"

_active: set[int] = set()  # pass ids running in this process
_Key = tuple[bool, int, int]  # (shared, first half, second half) of an advisory lock
_held: dict[int, tuple[Connection, list[_Key]]] = {}  # pass id -> connection and its locks
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


def folders_text(folders: frozenset[int] | None) -> str | None:
    """``Pass.folders`` for a set of folder pair ids (None: the whole mailbox)."""
    return None if folders is None else ",".join(str(f) for f in sorted(folders))


def parse_folders(value: str | None) -> frozenset[int] | None:
    if value is None:
        return None
    return frozenset(int(f) for f in value.split(",") if f)


def conflicts(a: frozenset[int] | None, b: frozenset[int] | None) -> bool:
    """Two passes of one mailbox may not run at once (pure): either covers the whole
    mailbox, or they share a folder pair."""
    return a is None or b is None or bool(a & b)


def _keys(mailbox_id: int, folders: frozenset[int] | None) -> list[_Key]:
    if folders is None:
        return [(False, LOCK_SPACE, mailbox_id)]
    return [(True, LOCK_SPACE, mailbox_id)] + [(False, PART_SPACE, f) for f in sorted(folders)]


def _try_lock(db: StateDB, mailbox_id: int,
              folders: frozenset[int] | None = None) -> Connection | None:
    """A connection holding the lease's advisory locks, or None if someone holds one."""
    keys = _keys(mailbox_id, folders)
    conn = db.engine.connect()
    got: list[_Key] = []
    try:
        for shared, a, b in keys:
            fn = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
            if not conn.execute(text(f"SELECT {fn}(:a, :b)"), {"a": a, "b": b}).scalar():
                break
            got.append((shared, a, b))
        conn.commit()  # the locks are session-level: they outlive this transaction
    except BaseException:
        conn.close()
        raise
    if len(got) < len(keys):
        _unlock(conn, got)
        return None
    return conn


def _unlock(conn: Connection, keys: list[_Key]) -> None:
    try:
        for shared, a, b in keys:
            fn = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
            conn.execute(text(f"SELECT {fn}(:a, :b)"), {"a": a, "b": b})
        conn.commit()
    except Exception:  # noqa: BLE001 - a broken connection lost the lock anyway
        conn.invalidate()
    finally:
        conn.close()


def _running(s, mailbox_id: int, folders: frozenset[int] | None) -> list[Pass]:  # type: ignore[no-untyped-def]
    """Running rows of the mailbox that conflict with a pass of ``folders``."""
    return [p for p in s.scalars(select(Pass).where(Pass.mailbox_id == mailbox_id,
                                                    Pass.status == "running"))
            if conflicts(parse_folders(p.folders), folders)]


def held_elsewhere(db: StateDB, mailbox_id: int,
                   folders: frozenset[int] | None = None) -> bool:
    """True while a live pass of ``mailbox_id`` holds the lease (any process, any machine)
    that a pass of ``folders`` (None: the whole mailbox) would conflict with.

    For a queue worker that got a task redelivered while its first delivery still runs:
    it waits for that pass instead of failing."""
    if _advisory(db):
        conn = _try_lock(db, mailbox_id, folders)
        if conn is None:
            return True
        _unlock(conn, _keys(mailbox_id, folders))
        return False
    with db.session() as s:
        return any(_alive(p.owner, p.id) for p in _running(s, mailbox_id, folders))


def holder(db: StateDB, mailbox_id: int,
           folders: frozenset[int] | None = None) -> Literal["live", "dead", "free"]:
    """Who holds the lease a pass of ``folders`` needs, without taking it: "live" (a
    running pass holds it), "dead" (a conflicting row says ``running`` but its holder is
    gone: a killed worker), "free" (nobody). On PostgreSQL it reads ``pg_locks``: trying
    the locks would make a pass starting at that instant fail as busy."""
    with db.session() as s:
        rows = _running(s, mailbox_id, folders)
        if _advisory(db):
            held = s.execute(text(
                "SELECT classid::bigint, objid::bigint, mode FROM pg_locks "
                "WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())")).all()
            live = any((a, b) == (LOCK_SPACE, mailbox_id)
                       and (folders is None or mode == "ExclusiveLock")
                       or folders is not None and a == PART_SPACE and b in folders
                       for a, b, mode in held)
        else:
            live = any(_alive(p.owner, p.id) for p in rows)
    if live:
        return "live"
    return "dead" if rows else "free"


def acquire(db: StateDB, mailbox_id: int, kind: str, *,
            folders: frozenset[int] | None = None, parent_id: int | None = None) -> int:
    """Open a pass row for ``mailbox_id``; MailboxError if a live pass holds it.

    ``folders``: a part of a split pass (those folder pairs only, under the plan pass
    ``parent_id``); None: the whole mailbox."""
    conn = None
    if _advisory(db):
        conn = _try_lock(db, mailbox_id, folders)
        if conn is None:
            with db.session() as s:
                other = s.scalars(select(Pass).where(
                    Pass.mailbox_id == mailbox_id, Pass.status == "running")
                    .order_by(Pass.id.desc())).first()
            who = f" ({other.owner}, started {other.started_at:%Y-%m-%d %H:%M})" if other else ""
            raise MailboxError(f"{BUSY}{who}", retry=Retry.TEMPORARY)
    try:
        # Core statements built once (engine/pass_rows.py): every pass of a run takes
        # a lease, so this transaction is part of every no-change pass's cost.
        with writing(db), db.engine.begin() as c:
            for other in pass_rows.running(c, mailbox_id):
                if not conflicts(parse_folders(other.folders), folders):
                    continue
                # with the advisory locks in hand every conflicting running row is a
                # dead holder's
                if conn is None and _alive(other.owner, other.id):
                    raise MailboxError(f"{BUSY} ({other.owner}, "
                                       f"started {other.started_at:%Y-%m-%d %H:%M})",
                                       retry=Retry.TEMPORARY)
                pass_rows.interrupt(c, other.id)
            pass_id = pass_rows.open_pass(c, mailbox_id, kind, _me(), folders_text(folders),
                                          parent_id)
    except BaseException:
        if conn is not None:
            _unlock(conn, _keys(mailbox_id, folders))
        raise
    with _lock:
        _active.add(pass_id)
        if conn is not None:
            _held[pass_id] = (conn, _keys(mailbox_id, folders))
    return pass_id


def release(pass_id: int) -> None:
    """The pass is over in this process (finished, failed or a simulated kill)."""
    with _lock:
        _active.discard(pass_id)
        held = _held.pop(pass_id, None)
    if held is not None:
        _unlock(*held)  # explicitly: the pooled connection outlives this pass
