"""A delta's journal reads by UID set: the journalled UIDs as runs (``uid_runs``) and
the rows of given UIDs (``known_of``, ``doomed``), on SQLite (one prepared statement, the UIDs as a JSON array read by ``json_each``) and on
PostgreSQL (Core's expanding IN). Both must give exactly what the rows say. And every
pass's first question, whether a row is in flight (``any_passing``): right on both, and
answered on SQLite from the partial index of in-flight rows, not by reading the mailbox.

Why: these decide what a delta copies, deletes and re-flags; a read that lost or
invented a UID would lose or duplicate mail. The reference here is the ORM's own read
of every row (``Journal.known``) and the random sets written.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sqlalchemy import update
from sqlalchemy.dialects import sqlite

from mxshift.engine import journal as journal_mod
from mxshift.engine.journal import Hooks, Journal
from mxshift.state.db import StateDB
from mxshift.state.models import FolderPair, Mailbox, Message
from mxshift.testbed.postgres import PostgresServer
from test_prefetch_copy import _one_pair_state


def _state(directory: Path, url: str | None) -> tuple[StateDB, int, list[int]]:
    """test_prefetch_copy's one-pair state and two more pairs: (db, mailbox, pairs)."""
    db, mailbox_id, first, _pass_id = _one_pair_state(directory, url)
    with db.session() as s, s.begin():
        more = [FolderPair(mailbox_id=mailbox_id, source_name=n, destination_name=n)
                for n in ("Archive", "Empty")]
        s.add_all(more)
        s.flush()
        return db, mailbox_id, [first, *(p.id for p in more)]


def _check(db: StateDB, mailbox_id: int, pair_ids: list[int]) -> None:
    rng = random.Random(23)
    have: dict[int, set[int]] = {p: set() for p in pair_ids}
    for round_ in range(4):
        with db.session() as s, s.begin():
            for pair in pair_ids[:2]:  # the third stays empty
                more = {rng.choice([rng.randint(1, 40), rng.randint(1, 3000)])
                        for _ in range(rng.randint(1, 300))} - have[pair]
                have[pair] |= more
                s.add_all(Message(folder_pair_id=pair, source_uid=u, fingerprint=f"f{u}",
                                  destination_uid=u + 7 if u % 3 else None,
                                  state=rng.choice(["copied", "skipped", "pending"]))
                          for u in more)
        journal = Journal(db, mailbox_id, Hooks())
        for pair in pair_ids:
            reference = Journal(db, mailbox_id, Hooks()).known(pair)  # the ORM's rows
            assert set(journal.uid_runs(pair)) == have[pair] == set(reference)
            # asked: some journalled UIDs, some never seen; more than the 500 a query
            # that the expanding IN path slices by, on the last round
            asked = set(rng.sample(sorted(have[pair]), min(len(have[pair]), 40 + round_ * 250)))
            asked |= {rng.randint(3001, 9000) for _ in range(30)}
            if have[pair]:  # the edges of the set too
                asked |= {min(have[pair]), max(have[pair])}
            rows = journal.known_of(pair, asked)
            assert set(rows) == asked & have[pair]
            for uid, known in rows.items():
                assert known == reference[uid]
            doomed = journal.doomed(pair, asked)
            assert set(doomed) == asked & have[pair]
            for uid, d in doomed.items():
                assert d.destination_uid == reference[uid].destination_uid
        assert journal.known_of(pair_ids[0], []) == {}


State = tuple[StateDB, int, list[int]]


@pytest.fixture
def sqlite_state(tmp_path: Path) -> Iterator[State]:
    state = _state(tmp_path, None)
    yield state
    state[0].dispose()


@pytest.fixture
def postgresql_state(tmp_path: Path, postgres_server: PostgresServer,
                     monkeypatch: pytest.MonkeyPatch) -> Iterator[State]:
    url = postgres_server.new_database(f"j_{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("MXSHIFT_DATABASE_URL", url)
    state = _state(tmp_path, url)
    yield state
    state[0].dispose()


def test_reads_by_uid_set_on_sqlite(sqlite_state: State) -> None:
    _check(*sqlite_state)


def test_reads_by_uid_set_on_postgresql(postgresql_state: State) -> None:
    _check(*postgresql_state)


def _check_any_passing(db: StateDB, mailbox_id: int, pair_ids: list[int]) -> None:
    """Settled rows (every state but the in-flight ones) answer False; each kind of row
    in flight answers True, in its own folder pair; another mailbox's never counts."""
    with db.session() as s, s.begin():
        project_id = s.get(Mailbox, mailbox_id).project_id  # type: ignore[union-attr]
        other = Mailbox(project_id=project_id, source_user="o", destination_user="p")
        s.add(other)
        s.flush()
        other_pair = FolderPair(mailbox_id=other.id, source_name="INBOX",
                                destination_name="INBOX")
        s.add(other_pair)
        s.flush()
        s.add(Message(folder_pair_id=other_pair.id, source_uid=1, fingerprint="o",
                      state="pending"))  # in flight, but in the other mailbox
        s.add_all(Message(folder_pair_id=pair, source_uid=u, fingerprint=f"s{u}",
                          destination_uid=u, state=state)
                  for pair in pair_ids
                  for u, state in enumerate(("copied", "skipped", "copied", "copied"), 1))
    journal = Journal(db, mailbox_id, Hooks())
    assert journal.any_passing() is False
    in_flight = [("state", "pending"), ("state", "moving"), ("state", "deleting"),
                 ("pending_flags", "+\\Seen|")]
    for pair, (column, value) in zip([pair_ids[1], pair_ids[2], pair_ids[0], pair_ids[2]],
                                     in_flight):
        with db.session() as s, s.begin():
            s.execute(update(Message).where(Message.folder_pair_id == pair,
                                            Message.source_uid == 3).values({column: value}))
        assert journal.any_passing() is True, (column, value)
        with db.session() as s, s.begin():  # settled again
            s.execute(update(Message).where(Message.folder_pair_id == pair,
                                            Message.source_uid == 3).values(
                state="copied", pending_flags=None))
        assert journal.any_passing() is False, (column, value)
    assert Journal(db, other.id, Hooks()).any_passing() is True


def test_any_passing_on_sqlite_reads_the_partial_index(sqlite_state: State) -> None:
    db, mailbox_id, _pairs = sqlite_state
    _check_any_passing(*sqlite_state)
    compiled = journal_mod._ANY_PASSING.compile(dialect=sqlite.dialect())
    with db.engine.connect() as conn:
        params = tuple(mailbox_id if name == "b_mailbox" else compiled.params[name]
                       for name in compiled.positiontup or ())
        plan = [row[-1] for row in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + str(compiled), params)]
    assert any("USING INDEX ix_message_passing" in step for step in plan), plan
    assert not any(step.startswith("SCAN message") for step in plan), plan


def test_any_passing_on_postgresql(postgresql_state: State) -> None:
    _check_any_passing(*postgresql_state)
    with postgresql_state[0].engine.connect() as conn:  # made by the migration, partial
        definition = conn.exec_driver_sql(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_message_passing'"
        ).scalar_one()
    assert "WHERE" in definition and "pending_flags IS NOT NULL" in definition
