"""A delta's journal reads by UID set: the journalled UIDs as runs (``uid_runs``) and
the rows of given UIDs (``known_of``, ``doomed``), on SQLite (one prepared statement, the UIDs as a JSON array read by ``json_each``) and on
PostgreSQL (Core's expanding IN). Both must give exactly what the rows say.

Why: these decide what a delta copies, deletes and re-flags; a read that lost or
invented a UID would lose or duplicate mail. The reference here is the ORM's own read
of every row (``Journal.known``) and the random sets written.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pytest

from mxshift.engine.journal import Hooks, Journal
from mxshift.state.db import StateDB
from mxshift.state.models import FolderPair, Message
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


def test_reads_by_uid_set_on_sqlite(tmp_path: Path) -> None:
    db, mailbox_id, pairs = _state(tmp_path, None)
    try:
        _check(db, mailbox_id, pairs)
    finally:
        db.dispose()


def test_reads_by_uid_set_on_postgresql(tmp_path: Path, postgres_server: PostgresServer,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    url = postgres_server.new_database(f"j_{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("MXSHIFT_DATABASE_URL", url)
    db, mailbox_id, pairs = _state(tmp_path, url)
    try:
        _check(db, mailbox_id, pairs)
    finally:
        db.dispose()
