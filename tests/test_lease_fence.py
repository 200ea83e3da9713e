"""A pass that lost its lease stops before its next intent: two passes never both append.

On PostgreSQL the lease is an advisory lock on a connection of the pass's own. If that
connection drops while the pass runs on (a PostgreSQL restart, a firewall cutting an idle
connection), the lock is gone and the lease watcher (runners/requeue.py) hands the mailbox
to another worker within seconds. The journal's fence (engine/journal.py ``tx(fenced=)``)
stops the first pass at its next intent with a clear reason. (Without it, for appends, the
journal's unique key on (folder pair, source UID) already refuses the second intent row,
but as an IntegrityError crash; flag changes, moves and deletions have no such key: a
stale pass would apply them after the takeover.) Real PostgreSQL, real Dovecots; the drop
is a real ``pg_terminate_backend`` of the lock's backend.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from harness import Bed, make_message
from mxshift.engine.journal import Hooks
from mxshift.engine.mailbox_pass import PassResult
from mxshift.state.db import make_engine, upgrade_state
from mxshift.testbed.dovecot import DovecotServer
from mxshift.testbed.postgres import PostgresServer


class LoseLeaseThenTakeOver(Hooks):
    """After the first batch is settled: drop the pass's lock connection, then let a
    second pass (as another worker would, after the watcher's requeue) run to the end."""

    def __init__(self, bed: Bed, url: str) -> None:
        self.bed, self.url = bed, url
        self.second: PassResult | None = None

    def checkpoint(self, label: str) -> None:
        if label != "journal settle appends" or self.second is not None:
            return
        engine = make_engine(self.url)
        try:
            with engine.connect() as c:
                killed = c.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND objid = :mb AND granted"),
                    {"mb": self.bed.mailbox_id}).scalars().all()
                assert killed == [True], killed
                # pg_terminate_backend only signals the backend: its lock goes when it
                # has exited. A worker taking over comes seconds later (the watcher's
                # requeue); here, wait for the lock to be gone, at most 10 s.
                for _ in range(200):
                    if not c.execute(text(
                            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                            "AND objid = :mb AND granted"),
                            {"mb": self.bed.mailbox_id}).scalar():
                        break
                    time.sleep(0.05)
        finally:
            engine.dispose()
        self.second = self.bed.run()


def test_a_pass_that_lost_its_lease_stops_and_the_takeover_finishes_exact(
        tmp_path: Path, dovecot_src: DovecotServer, dovecot_dst: DovecotServer,
        postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    url = postgres_server.new_database(f"f_{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("MXSHIFT_DATABASE_URL", url)
    (tmp_path / "bed").mkdir()
    upgrade_state(tmp_path / "bed", url=url)
    bed = Bed.make(dovecot_src, dovecot_dst, tmp_path / "bed")
    try:
        bed.put(("INBOX",), [make_message(i) for i in range(12)])
        hooks = LoseLeaseThenTakeOver(bed, url)

        first = bed.run(hooks=hooks)

        assert hooks.second is not None and hooks.second.status == "ok", hooks.second
        assert first.status == "failed" and "lost its lease" in (first.error or ""), first
        # the first pass appended its first batch only; the second copied the rest once
        assert first.copied == 2 and first.copied + hooks.second.copied == 12
        assert bed.differences() == []
        dest = bed.dest()
        dest.select_folder("INBOX", readonly=True)
        assert len(dest.search("ALL")) == 12  # no duplicate
        assert bed.run().copied == 0  # and nothing left for a third pass
    finally:
        bed.close()
