"""Hot journal statements compiled once per process and run on the DBAPI cursor.

Why: a delta pass runs a few dozen small transactions per mailbox (intents, settles,
the lease fence, each folder's journal rows). Through the ORM or even Core's
``execute``, SQLAlchemy builds a cache key, looks the statement up and processes every
row's parameters in Python for each one: in the profile of the benchmark's delta pass
that was more CPU than mxshift's IMAP parsing. Here a statement is compiled once per
(statement, parameter names), each column type's bind processor is looked up once, and
rows go to the cursor as tuples: same SQL, same stored values, as datasette and
sqlite-utils do for their hot paths. Only SQLite takes this path; other databases
(PostgreSQL in distributed mode) take SQLAlchemy's general one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Executable

_PREPARED: dict[tuple[int, tuple[str, ...]], tuple[str, list[tuple[str, Any, object]]]] = {}


@dataclass(frozen=True)
class RawTx:
    """An open SQLite transaction on a pooled DBAPI connection (:meth:`StateDB.raw_write`):
    what :func:`executemany` and :func:`fetch_all` run on without an ORM session."""

    dialect: Any
    dbapi: Any


def _prepare(dialect: Any, stmt: Executable, keys: tuple[str, ...]
             ) -> tuple[str, list[tuple[str, Any, object]]]:
    key = (id(stmt), keys)
    prepared = _PREPARED.get(key)
    if prepared is None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
        order = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]  # a value the statement sets itself is its own
            order.append((name, bind.type._cached_bind_processor(dialect), bind.value))
        prepared = _PREPARED[key] = (str(compiled), order)
    return prepared


def _value(value: object, proc: Any) -> object:
    return value if proc is None or value is None else proc(value)


def _params(order: list[tuple[str, Any, object]],
            rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
    """Each row's parameters in statement order, through the column's bind processor.

    Why not one call per value: a copy journals ~5,000 rows per 5,000 messages twice,
    and every row of a batch carries the same timestamp object, whose SQLite processor
    (a formatted string) was the costliest part of writing them. A value that is the
    very object of the previous row's is processed once; the rest as before."""
    last: list[tuple[object, object]] = [(_NOTHING, None)] * len(order)
    out = []
    for row in rows:
        values = []
        for i, (name, proc, fixed) in enumerate(order):
            value = row.get(name, fixed)
            if proc is not None and value is not None:
                seen, done = last[i]
                if seen is not value:
                    done = proc(value)
                    last[i] = (value, done)
                value = done
            values.append(value)
        out.append(tuple(values))
    return out


_NOTHING = object()


def executemany(s: Session | RawTx, stmt: Executable, rows: list[dict[str, object]]) -> None:
    """``stmt`` once per row, in one ``executemany``; ``stmt`` must be a module-level
    constant (it is cached by identity). ``s``: a session (its transaction) or a
    :class:`RawTx`."""
    if not rows:
        return
    if isinstance(s, RawTx):
        dialect, dbapi = s.dialect, s.dbapi
    else:
        conn = s.connection()
        if conn.dialect.name != "sqlite":
            conn.execute(stmt, rows)
            return
        dialect, dbapi = conn.dialect, conn.connection  # the session's own transaction
    sql, order = _prepare(dialect, stmt, tuple(rows[0]))
    cursor = dbapi.cursor()
    try:
        cursor.executemany(sql, _params(order, rows))
    finally:
        cursor.close()


def fetch_all(s: Session | Connection | RawTx, stmt: Executable,
              params: dict[str, object]) -> list[Any]:
    """The rows of a SELECT whose columns need no result processing (integers, text),
    as plain tuples; ``stmt`` as for :func:`executemany`. ``s``: a session (its
    transaction), a connection (e.g. :meth:`StateDB.reading`) or a :class:`RawTx`."""
    if isinstance(s, RawTx):
        dialect, dbapi = s.dialect, s.dbapi
    else:
        conn = s.connection() if isinstance(s, Session) else s
        if conn.dialect.name != "sqlite":
            return [tuple(r) for r in conn.execute(stmt, params)]
        dialect, dbapi = conn.dialect, conn.connection
    sql, order = _prepare(dialect, stmt, tuple(params))
    cursor = dbapi.cursor()
    try:
        cursor.execute(sql, tuple(_value(params.get(name, fixed), proc)
                                  for name, proc, fixed in order))
        return cursor.fetchall()
    finally:
        cursor.close()
