"""One pass per mailbox at a time, across processes.

Why: two passes of the same mailbox (a cron job overlapping a manual run) would each
append what the other is appending. A pass row in state ``running`` is the lease; it is
taken in the same write transaction that checks for another (SQLite serialises these with
BEGIN IMMEDIATE). A lease whose process is gone (a crash, a kill) is marked
``interrupted`` and taken over: the journal makes the resumed pass exact.
"""

from __future__ import annotations

import os
import socket
import threading

from sqlalchemy import select

from mxshift.errors import MailboxError, Retry
from mxshift.state.db import StateDB
from mxshift.state.models import Mailbox, Pass, utcnow

_active: set[int] = set()  # pass ids running in this process
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


def acquire(db: StateDB, mailbox_id: int, kind: str) -> int:
    """Open a pass row for ``mailbox_id``; MailboxError if a live pass holds it."""
    with db.session() as s, s.begin():
        for other in s.scalars(select(Pass).where(Pass.mailbox_id == mailbox_id,
                                                  Pass.status == "running")):
            if _alive(other.owner, other.id):
                raise MailboxError(f"another pass of this mailbox is running ({other.owner}, "
                                   f"started {other.started_at:%Y-%m-%d %H:%M})",
                                   retry=Retry.TEMPORARY)
            other.status, other.finished_at = "interrupted", utcnow()
        run = Pass(mailbox_id=mailbox_id, kind=kind, owner=_me())
        s.add(run)
        s.flush()
        mb = s.get(Mailbox, mailbox_id)
        assert mb is not None
        mb.status = "running"
        with _lock:
            _active.add(run.id)
        return run.id


def release(pass_id: int) -> None:
    with _lock:
        _active.discard(pass_id)
