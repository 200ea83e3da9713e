"""The pass row's and the mailbox row's bookkeeping at the start and end of a pass, in
SQLAlchemy Core with statements built once.

Why not the ORM here: a no-change pass is a login, one LIST and this bookkeeping; over a
run of hundreds of mailboxes on a machine shared with the IMAP servers every CPU
millisecond per mailbox shows. The ORM's session, identity map and unit of work cost
about 1 ms of CPU per statement here (a ``get`` then a flush to change three columns);
a Core statement built once with bound parameters runs in a fraction of that and works
the same on SQLite and PostgreSQL. The rows written are exactly those the ORM wrote.

On SQLite the writes take the process's writer lock (serial_journal.writing) and the
reads a deferred transaction (StateDB.reading): four passes at a time in one process
then never sleep in SQLite's busy handler over this bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from types import SimpleNamespace

from sqlalchemy import Connection, bindparam, exists, func, insert, select, update

from mxshift.engine.serial_journal import writing
from mxshift.state.db import StateDB
from mxshift.state.models import FolderPair, Mailbox, Pass, utcnow

_COUNTS = ("copied", "bytes_copied", "adopted", "flags_updated", "moved", "deleted",
           "skipped", "errors")


@cache
def _st() -> SimpleNamespace:
    """The statements, built on first use (once per process): ~2 ms of expression
    building that a command which runs no pass (status, the dashboard) never pays."""
    return SimpleNamespace(
        START=select(Mailbox.source_user, exists().where(
            Pass.mailbox_id == Mailbox.id, Pass.status.in_(("ok", "partial")))).where(
            Mailbox.id == bindparam("mailbox_id")),
        RUNNING=select(Pass.id, Pass.owner, Pass.folders, Pass.started_at).where(
            Pass.mailbox_id == bindparam("mailbox_id"), Pass.status == "running"),
        INTERRUPT=update(Pass).where(Pass.id == bindparam("pass_id")).values(
            status="interrupted", finished_at=bindparam("finished_at")),
        OPEN=insert(Pass).values(mailbox_id=bindparam("mailbox_id"), kind=bindparam("kind"),
                                 owner=bindparam("owner"), folders=bindparam("folders"),
                                 parent_id=bindparam("parent_id")),
        MAILBOX_RUNNING=update(Mailbox).where(Mailbox.id == bindparam("mailbox_id")).values(
            status="running"),
        CLOSE=update(Pass).where(Pass.id == bindparam("pass_id")).values(
            status=bindparam("status"), finished_at=bindparam("finished_at"),
            seconds=bindparam("seconds"), error=bindparam("error"),
            **{c: bindparam(c) for c in _COUNTS}),
        MAILBOX_DONE=update(Mailbox).where(Mailbox.id == bindparam("mailbox_id")).values(
            status=bindparam("status"), last_pass_at=bindparam("last_pass_at"),
            last_error=bindparam("last_error"),
            messages_copied=func.coalesce(Mailbox.messages_copied, 0) + bindparam("add_copied"),
            bytes_copied=func.coalesce(Mailbox.bytes_copied, 0) + bindparam("add_bytes"),
            messages_skipped=func.coalesce(Mailbox.messages_skipped, 0)
            + bindparam("add_skipped"),
            messages_failed=func.coalesce(Mailbox.messages_failed, 0) + bindparam("add_failed")),
        PAIRS=select(FolderPair.__table__).where(
            FolderPair.__table__.c.mailbox_id == bindparam("mailbox_id")),
    )


class PairRow:
    """A folder pair's columns as read-only attributes, named as on ``FolderPair``.

    Why: the no-change check reads every folder pair of the mailbox and, when nothing
    changed, the pass only reads them again (each folder's saved STATUS). ORM instances
    (identity map, instrumented attributes) cost ~0.3 ms per mailbox for that; a pass
    with anything to write loads real ``FolderPair`` rows as before
    (``MailboxPass._nothing_to_do``). A detached ORM row does not persist an attribute
    set on it either: this one refuses it."""

    def __init__(self, values: dict[str, object]) -> None:
        self.__dict__.update(values)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a PairRow is read-only ({name})")

    def __repr__(self) -> str:
        return f"PairRow(id={self.__dict__.get('id')}, {self.__dict__.get('source_name')!r})"


def folder_pairs(db: StateDB, mailbox_id: int) -> list[PairRow]:
    """Every folder pair row of the mailbox (one Core SELECT)."""
    with db.reading() as conn:
        return [PairRow(dict(r._mapping)) for r in conn.execute(
            _st().PAIRS, {"mailbox_id": mailbox_id})]


@dataclass(frozen=True)
class RunningRow:
    """A ``running`` pass row of the mailbox (someone else's lease, live or dead)."""

    id: int
    owner: str | None
    folders: str | None
    started_at: datetime


def start_info(db: StateDB, mailbox_id: int) -> tuple[str, bool]:
    """(source user, whether a pass of the mailbox ever ended ok or partial)."""
    with db.reading() as conn:
        row = conn.execute(_st().START, {"mailbox_id": mailbox_id}).first()
    assert row is not None, f"no mailbox {mailbox_id}"
    return row[0], bool(row[1])


def running(conn: Connection, mailbox_id: int) -> list[RunningRow]:
    return [RunningRow(*r) for r in conn.execute(_st().RUNNING, {"mailbox_id": mailbox_id})]


def interrupt(conn: Connection, pass_id: int) -> None:
    conn.execute(_st().INTERRUPT, {"pass_id": pass_id, "finished_at": utcnow()})


def open_pass(conn: Connection, mailbox_id: int, kind: str, owner: str,
              folders: str | None, parent_id: int | None) -> int:
    """Insert the pass row (status ``running``, started now) and mark the mailbox
    running; the new row's id."""
    result = conn.execute(_st().OPEN, {"mailbox_id": mailbox_id, "kind": kind, "owner": owner,
                                  "folders": folders, "parent_id": parent_id})
    pass_id = result.inserted_primary_key[0]  # type: ignore[index]
    conn.execute(_st().MAILBOX_RUNNING, {"mailbox_id": mailbox_id})
    return int(pass_id)


def close_pass(db: StateDB, pass_id: int, mailbox_id: int, *, status: str,
               mailbox_status: str, seconds: float | None, error: str | None,
               counts: dict[str, int]) -> None:
    """The pass row's result and the mailbox's totals, in one transaction."""
    now = utcnow()
    with writing(db), db.engine.begin() as conn:
        conn.execute(_st().CLOSE, {"pass_id": pass_id, "status": status, "finished_at": now,
                              "seconds": seconds, "error": error,
                              **{c: counts[c] for c in _COUNTS}})
        conn.execute(_st().MAILBOX_DONE, {"mailbox_id": mailbox_id, "status": mailbox_status,
                                     "last_pass_at": now, "last_error": error,
                                     "add_copied": counts["copied"],
                                     "add_bytes": counts["bytes_copied"],
                                     "add_skipped": counts["skipped"],
                                     "add_failed": counts["errors"]})
