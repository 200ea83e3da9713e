"""Opening the state database and keeping its schema current.

Why here: every command (CLI, scheduler, dashboard, workers) opens state the same way.
SQLite is the embedded default (``DIR/mxshift.db``), any SQLAlchemy URL in
``MXSHIFT_DATABASE_URL`` replaces it (PostgreSQL for workers on several machines).

SQLite runs in WAL mode with a busy timeout so a reader never blocks the writer, and every
write transaction starts with ``BEGIN IMMEDIATE`` (no lock upgrades, so no "database is
locked" between threads or processes). Its schema is upgraded on open: one machine, one
file, nobody else to coordinate with.

PostgreSQL is shared by many processes on many machines, so its schema is never changed
as a side effect of opening it: ``mxshift db upgrade`` applies the migrations (under an
advisory lock, so two upgrades cannot interleave), and every other command refuses a
schema that is behind or ahead with one line that says what to do. PostgreSQL gives each
transaction READ COMMITTED; what SQLite's single writer serialised for us (one pass per
mailbox) is serialised by an advisory lock in engine/lease.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mxshift.errors import StateError
from mxshift.state.prepared import RawTx

# Alembic (with Mako and Pygments behind it) is imported only to migrate or to explain an
# unknown revision: opening a current database, what nearly every command does, reads the
# stamped revision with one SELECT and the head from the migration files (below). That
# keeps ~0.1 s and ~12 MB out of every process (tests/test_startup.py).
if TYPE_CHECKING:
    from alembic.config import Config

DB_FILE = "mxshift.db"
_MIGRATIONS = Path(__file__).with_name("migrations")


#: Execution option of a connection whose transactions only read (StateDB.reading).
READ_ONLY = "mxshift_read_only"

#: Key of the advisory lock held while migrating a PostgreSQL state database.
_MIGRATION_LOCK = 0x6D78_0001


def database_url(directory: Path) -> str:
    url = os.environ.get("MXSHIFT_DATABASE_URL") or f"sqlite:///{(directory / DB_FILE).resolve()}"
    return normalise_url(url)


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3, the driver mxshift ships with
    (SQLAlchemy would otherwise look for psycopg2, which is not installed)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def safe_url(url: str) -> str:
    """The URL without its password: for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as "(invalid URL)"
        return "(invalid URL)"


def is_sqlite(url_or_engine: str | Engine) -> bool:
    if isinstance(url_or_engine, Engine):
        return url_or_engine.dialect.name == "sqlite"
    return url_or_engine.startswith("sqlite")


def _alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def head_revision() -> str:
    """The newest migration's revision id, as Alembic would name it."""
    return _head_from_files() or _alembic_head()


def _alembic_head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


# ``revision = "0004_timeline"`` / ``down_revision: str | None = "0003"`` in a migration.
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.*?)\s*(?:#.*)?$",
                         re.MULTILINE)
_LITERAL = re.compile(r"^(?:None|'([^'\\]+)'|\"([^\"\\]+)\")$")


def _head_from_files() -> str | None:
    """The head of the migration chain read from the files' ``revision`` and
    ``down_revision`` lines, without importing Alembic; None whenever the files are not a
    plain single chain of literal ids (a merge, a branch, an unusual file), so that
    :func:`head_revision` asks Alembic instead. tests/test_startup.py checks both agree."""
    parents: dict[str, str | None] = {}
    for path in sorted((_MIGRATIONS / "versions").glob("*.py")):
        found: dict[str, list[str | None]] = {"revision": [], "down_revision": []}
        for name, value in _ASSIGNMENT.findall(path.read_text(encoding="utf-8")):
            m = _LITERAL.match(value)
            if m is None:
                return None
            found[name].append(m.group(1) or m.group(2))
        rev, down = found["revision"], found["down_revision"]
        if len(rev) != 1 or len(down) != 1 or rev[0] is None or rev[0] in parents:
            return None
        parents[rev[0]] = down[0]
    children = {p for p in parents.values() if p is not None}
    heads = [r for r in parents if r not in children]
    roots = [r for r, p in parents.items() if p is None]
    if len(heads) != 1 or len(roots) != 1 or not children <= parents.keys():
        return None
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    """The revision stamped in the database (None: not initialised). One SELECT on
    Alembic's version table; Alembic itself only for what it alone explains (several
    stamped heads)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        stamped = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        if len(stamped) <= 1:
            return stamped[0] if stamped else None
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    from alembic import command

    cfg = _alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # two `db upgrade` (or workers started at once) must not run the chain twice
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        # A read-only transaction (StateDB.reading) takes no write lock: in WAL mode it
        # neither waits for the writer nor makes a writer wait in the busy handler.
        read = conn.get_execution_options().get(READ_ONLY)
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _sqlite_pragmas(engine)
        return engine
    if url.startswith("postgresql"):
        # TCP keepalives: a lease is an advisory lock held by a connection (lease.py); a
        # worker machine that vanished must lose it within about a minute, not hours.
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=40,
                             connect_args={"keepalives": 1, "keepalives_idle": 30,
                                           "keepalives_interval": 10, "keepalives_count": 3,
                                           "connect_timeout": 10})
    return create_engine(url, pool_pre_ping=True)


class StateDB:
    """An open, schema-checked state database and its session factory."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    def session(self) -> Session:
        return self.sessions()

    @contextmanager
    def raw_write(self) -> Iterator[RawTx]:
        """A write transaction (BEGIN IMMEDIATE) on a pooled DBAPI connection, without an
        ORM session or a Core connection: SQLite only, for statements run through
        ``prepared.executemany``/``fetch_all``. Why: a first copy journals two small
        transactions per batch, and the session's set-up, begin event and commit were
        70% of their cost (py-spy of a 5,000-message copy). Committed when the block
        ends, rolled back when it raises (a simulated crash too)."""
        conn = self.engine.raw_connection()
        try:
            conn.driver_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
            try:
                yield RawTx(self.engine.dialect, conn)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()  # the open transaction: sqlite3 commits it though autocommit
        finally:
            conn.close()  # back to the pool

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads only. On SQLite its transaction begins DEFERRED, not
        IMMEDIATE: a pass's bookkeeping reads (four passes at a time in one process) do
        not queue for the write lock, whose busy handler sleeps 1, 2, 5... ms. Never
        write through it (a deferred transaction that writes can fail to upgrade)."""
        with self.engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


def open_state(directory: Path, *, create: bool = True, url: str | None = None) -> StateDB:
    """Open the project's state; refuse a newer schema. SQLite: create or upgrade an older
    one. Other databases: refuse an older one too (``mxshift db upgrade`` migrates)."""
    url = normalise_url(url or database_url(directory))
    if url.startswith("sqlite") and not create and not (directory / DB_FILE).exists():
        raise StateError(f"no state database in {directory}: run `mxshift mailboxes import` first")
    engine = make_engine(url)
    try:
        check_schema(engine, create=create, migrate=is_sqlite(url))
    except OperationalError as exc:
        engine.dispose()
        raise StateError(f"cannot open the state database {safe_url(url)}: "
                         f"{str(exc.orig).strip().splitlines()[0]}") from None
    except BaseException:
        engine.dispose()
        raise
    return StateDB(engine)


@dataclass
class UpgradeResult:
    url: str            # without password
    before: str | None  # schema revision found (None: empty database)
    after: str


def upgrade_state(directory: Path, *, url: str | None = None) -> UpgradeResult:
    """Apply every pending migration (``mxshift db upgrade``); refuse a newer schema."""
    url = normalise_url(url or database_url(directory))
    engine = make_engine(url)
    try:
        before = current_revision(engine)
        _refuse_unknown(before)
        upgrade(engine)
        return UpgradeResult(safe_url(url), before, head_revision())
    except OperationalError as exc:
        raise StateError(f"cannot open the state database {safe_url(url)}: "
                         f"{str(exc.orig).strip().splitlines()[0]}") from None
    finally:
        engine.dispose()


def _refuse_unknown(current: str | None) -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        raise StateError(
            f"the state database has schema revision {current}, which this mxshift does not "
            f"know (newest known: {head_revision()}); it was written by a newer mxshift: "
            f"upgrade mxshift")


def check_schema(engine: Engine, *, create: bool, migrate: bool = True) -> None:
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return
    if not migrate:
        _refuse_unknown(current)
        where = "is empty" if current is None else f"has schema revision {current}"
        raise StateError(f"the state database {where}, this mxshift needs {head}: "
                         f"run `mxshift db upgrade`")
    _refuse_unknown(current)
    if current is None and not create:
        raise StateError("the state database is not initialised: run `mxshift mailboxes import`")
    upgrade(engine)
