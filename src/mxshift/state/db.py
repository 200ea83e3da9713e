"""Opening the state database and keeping its schema current.

Why here: every command (CLI, scheduler, dashboard) opens state the same way. SQLite is
the embedded default (``DIR/mxshift.db``), any SQLAlchemy URL in ``MXSHIFT_DATABASE_URL``
replaces it. SQLite runs in WAL mode with a busy timeout so a reader never blocks the
writer, and every write transaction starts with ``BEGIN IMMEDIATE`` (no lock upgrades,
so no "database is locked" between threads or processes).
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from mxshift.errors import StateError

DB_FILE = "mxshift.db"
_MIGRATIONS = Path(__file__).with_name("migrations")


def database_url(directory: Path) -> str:
    return os.environ.get("MXSHIFT_DATABASE_URL") or f"sqlite:///{(directory / DB_FILE).resolve()}"


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    cfg = _alembic_config()
    with engine.begin() as conn:
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
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _sqlite_pragmas(engine)
        return engine
    return create_engine(url, pool_pre_ping=True)


class StateDB:
    """An open, schema-checked state database and its session factory."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    def session(self) -> Session:
        return self.sessions()

    def dispose(self) -> None:
        self.engine.dispose()


def open_state(directory: Path, *, create: bool = True, url: str | None = None) -> StateDB:
    """Open the project's state; create or upgrade an older schema; refuse a newer one."""
    url = url or database_url(directory)
    if url.startswith("sqlite") and not create and not (directory / DB_FILE).exists():
        raise StateError(f"no state database in {directory}: run `mxshift mailboxes import` first")
    engine = make_engine(url)
    check_schema(engine, create=create)
    return StateDB(engine)


def check_schema(engine: Engine, *, create: bool) -> None:
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return
    script = ScriptDirectory.from_config(_alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        raise StateError(
            f"the state database has schema revision {current}, which this mxshift does not "
            f"know (newest known: {head}); it was written by a newer mxshift: upgrade mxshift")
    if current is None and not create:
        raise StateError("the state database is not initialised: run `mxshift mailboxes import`")
    upgrade(engine)
