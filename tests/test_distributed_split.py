"""A very large mailbox's pass split into folder-pair tasks over several real workers
(engine/folder_tasks.py), and the lease watcher that requeues a dead worker's task in
seconds and keeps a live pass from being redelivered (runners/requeue.py).

Pure logic first (grouping, roll-up, the watcher's decisions, reading kombu's messages),
then real Redis + PostgreSQL + ``mxshift worker`` processes + Dovecot.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from mxshift.engine.folder_tasks import roll_up, split_groups
from mxshift.engine.lease import conflicts, folders_text, parse_folders
from mxshift.engine.mailbox_pass import PassResult
from mxshift.runners.celery_runner import merge_parts
from mxshift.runners.requeue import TaskLease, decide, task_lease
from mxshift.runners.settings import runner_settings
from mxshift.state.db import open_state
from mxshift.state.models import Mailbox, Pass
from mxshift.testbed.corpus import CorpusSpec
from mxshift.testbed.dovecot import DovecotServer
from mxshift.testbed.postgres import PostgresServer
from mxshift.testbed.redis import RedisServer
from mxshift.testbed.workers import WorkerFleet
from mxshift.web.reads import mailbox_detail

from test_distributed import HEADER, Cluster, _finish, _snap  # the same cluster helpers
from test_cli import fill


# ------------------------------------------------------------------------- pure logic

def test_split_groups_balances_bytes_and_spreads_folders_without_bytes() -> None:
    groups = split_groups({1: 900, 2: 500, 3: 400, 4: 300, 5: 0, 6: 0, 7: 100}, 3)
    assert len(groups) == 3
    assert frozenset().union(*groups) == frozenset(range(1, 8))
    assert sum(len(g) for g in groups) == 7  # each folder in exactly one group
    weights = {1: 900, 2: 500, 3: 400, 4: 300, 7: 100}
    sizes = sorted(sum(weights.get(f, 0) for f in g) for g in groups)
    assert sizes == [600, 700, 900]  # LPT: 900 | 500+100 | 400+300
    # never more groups than folders with bytes to copy; one group means "no split"
    assert split_groups({1: 10, 2: 0, 3: 0}, 8) == [frozenset({1, 2, 3})]
    assert len(split_groups({1: 10, 2: 10}, 8)) == 2


def test_roll_up_and_merged_result_of_a_split_pass() -> None:
    assert roll_up(["ok", "ok"], 0) == "ok"
    assert roll_up(["ok", "ok"], 1) == "partial"
    assert roll_up(["ok", "failed"], 0) == "partial"
    assert roll_up(["failed", "failed"], 0) == "failed"
    plan = PassResult(mailbox="a", kind="delta", status="split", moved=3, notes=["split"])
    parts = [PassResult(mailbox="a", kind="delta", status="ok", copied=5, bytes_copied=50,
                        seconds=4.0),
             PassResult(mailbox="a", kind="delta", status="ok", copied=2, deleted=1,
                        seconds=6.0, notes=["x"])]
    got = merge_parts(plan, parts)
    assert (got.status, got.copied, got.bytes_copied, got.moved, got.deleted, got.seconds) == (
        "ok", 7, 50, 3, 1, 6.0)
    assert got.notes == ["split", "x"] and plan.notes == ["split"]


def test_lease_conflicts_by_folders() -> None:
    assert conflicts(None, frozenset({1})) and conflicts(frozenset({1}), None)
    assert conflicts(frozenset({1, 2}), frozenset({2, 3}))
    assert not conflicts(frozenset({1, 2}), frozenset({3}))
    assert parse_folders(folders_text(frozenset({9, 3, 12}))) == frozenset({3, 9, 12})
    assert folders_text(None) is None and parse_folders(None) is None


def test_watcher_decisions() -> None:
    kw = dict(dead_after=6.0, free_after=60.0)
    assert decide("live", 9999, **kw) == "heartbeat"
    assert decide("dead", 1.0, **kw) == "wait"     # a delivery about to take its lease
    assert decide("dead", 6.0, **kw) == "requeue"
    assert decide("free", 30.0, **kw) == "wait"
    assert decide("free", 61.0, **kw) == "requeue"


def _unacked(task: str, args: list, queue: str = "q") -> bytes:
    body = base64.b64encode(json.dumps([args, {}, {}]).encode()).decode()
    message = {"body": body, "headers": {"task": task, "id": "t1"},
               "properties": {"body_encoding": "base64"}}
    return json.dumps([message, queue, queue]).encode()


def test_task_lease_reads_kombu_messages_of_its_queue_only() -> None:
    assert task_lease(_unacked("mxshift.pass", [7, None, False]), "q") == TaskLease(7, None)
    assert task_lease(_unacked("mxshift.part", [7, "prestage", False, 40, [3, 4]]), "q") == \
        TaskLease(7, frozenset({3, 4}))
    assert task_lease(_unacked("mxshift.pass", [7, None, False], queue="other"), "q") is None
    assert task_lease(_unacked("celery.ping", []), "q") is None
    assert task_lease(b"not json", "q") is None


def test_distributed_section_of_the_project_file() -> None:
    from mxshift.config import parse_project
    from mxshift.errors import ConfigError

    base = '[source]\nhost = "a"\n[destination]\nhost = "b"\n'

    def parse(extra: str):  # type: ignore[no-untyped-def]
        return parse_project(base + extra, path="mxshift.toml", directory=Path(".")).distributed

    assert (parse("").split_mailbox_above, parse("").split_parts) == (20 * 2**30, 8)
    got = parse('[distributed]\nsplit_mailbox_above = "512MB"\nsplit_parts = 3\n')
    assert (got.split_mailbox_above, got.split_parts) == (512 * 2**20, 3)
    assert parse('[distributed]\nsplit_mailbox_above = "off"\n').split_mailbox_above is None
    for bad, words in (('split_parts = 1', "at least 2"), ('split_mailbox_above = "lots"',
                                                            "must be a size"),
                       ("split_above = 3", "split_above")):
        with pytest.raises(ConfigError, match=words):
            parse(f"[distributed]\n{bad}\n")


def test_runner_settings_lease_check() -> None:
    assert runner_settings({}).lease_check == 2.0
    assert runner_settings({}).visibility_timeout == 21600.0
    assert runner_settings({"MXSHIFT_LEASE_CHECK": "0"}).lease_check == 0.0


# ------------------------------------------------------------------ real workers

SPLIT = '[distributed]\nsplit_mailbox_above = "100KB"\nsplit_parts = 3\n'


@pytest.fixture
def split_cluster(tmp_path: Path, postgres_server: PostgresServer, redis_server: RedisServer,
                  dovecot_src: DovecotServer, dovecot_dst: DovecotServer):  # type: ignore[no-untyped-def]
    """make(mailboxes=[(messages, folders)], options=..., env=...): a project on PostgreSQL
    and Redis whose first mailbox is large enough to be split."""
    fleets: list[WorkerFleet] = []

    def make(mailboxes: list[tuple[int, int]], *, options: str = "",
             env: dict[str, str] | None = None) -> Cluster:
        directory = tmp_path / "proj"
        directory.mkdir()
        (directory / "mxshift.toml").write_text(
            f'[source]\nhost = "127.0.0.1"\nport = {dovecot_src.port}\nsecurity = "none"\n'
            f'[destination]\nhost = "127.0.0.1"\nport = {dovecot_dst.port}\n'
            f'security = "none"\n[options]\n{options}{SPLIT}')
        pairs = []
        for n, (size, folders) in enumerate(mailboxes):
            s, sp = dovecot_src.new_user("ss")
            d, dp = dovecot_dst.new_user("sd")
            fill(dovecot_src, s, CorpusSpec(seed=700 + n, messages=size, folders=folders,
                                            size_profile="small"))
            pairs.append((s, sp, d, dp))
        (directory / "mailboxes.csv").write_text(
            HEADER + "".join(f"{s},{sp},{d},{dp}\n" for s, sp, d, dp in pairs))
        cenv = {"MXSHIFT_DATABASE_URL": postgres_server.new_database(
                    f"s_{uuid.uuid4().hex[:12]}"),
                "MXSHIFT_BROKER_URL": redis_server.url(),
                "MXSHIFT_QUEUE": f"q-{uuid.uuid4().hex[:8]}",
                "MXSHIFT_SLOT_TTL": "3", "MXSHIFT_LEASE_CHECK": "1", **(env or {})}
        fleet = WorkerFleet(directory, cenv, tmp_path / "workers")
        fleets.append(fleet)
        c = Cluster(directory, cenv, fleet, pairs, dovecot_src, dovecot_dst)
        for args in (["db", "upgrade"], ["mailboxes", "import", str(directory / "mailboxes.csv")]):
            res = c.cli(*args)
            assert res.exit_code == 0, res.stderr
        return c

    yield make
    for fleet in fleets:
        fleet.stop_all()


def _rows(c: Cluster, user: str) -> tuple[int, list[Pass]]:
    db = open_state(c.directory, url=c.env["MXSHIFT_DATABASE_URL"])
    try:
        with db.session() as s:
            mb_id = s.scalar(select(Mailbox.id).where(Mailbox.source_user == user))
            return mb_id, list(s.scalars(select(Pass).where(Pass.mailbox_id == mb_id)
                                         .order_by(Pass.id)))
    finally:
        db.dispose()


def _total(c: Cluster, n: int = 0) -> int:
    s, sp = c.pairs[n][0], c.pairs[n][1]
    return sum(len(v) for v in _snap(c.src, s, sp).values())


def test_a_large_mailbox_is_split_into_folder_tasks_over_two_workers_exact(
        split_cluster) -> None:  # type: ignore[no-untyped-def]
    # A visibility timeout far shorter than the passes: only the lease watcher's
    # heartbeat keeps Redis from handing a running pass to the other worker.
    c = split_cluster([(240, 6), (5, 3)], options="batch_messages = 1\n",
                      env={"MXSHIFT_VISIBILITY_TIMEOUT": "1"})
    c.fleet.start(2)
    big, small = c.pairs[0][0], c.pairs[1][0]
    total = _total(c)
    code, out, err = _finish(c.sync(), timeout=180)
    assert code == 0, out + err
    assert f"{big}: prestage ok: {total} copied" in out, out
    assert f"{small}: prestage ok: 5 copied" in out, out
    c.assert_exact()

    _, rows = _rows(c, big)
    plans = [p for p in rows if p.parent_id is None]
    parts = [p for p in rows if p.parent_id is not None]
    assert len(plans) == 1, [(p.id, p.status) for p in rows]  # no second delivery ran
    plan = plans[0]
    assert (plan.status, plan.kind, plan.copied) == ("ok", "prestage", total)
    assert len(parts) == 3 and {p.status for p in parts} == {"ok"}, \
        [(p.status, p.folders) for p in parts]
    assert {p.parent_id for p in parts} == {plan.id}
    groups = [parse_folders(p.folders) for p in parts]
    assert sum(len(g) for g in groups) == len(parse_folders(plan.folders)) == 6  # disjoint
    assert sum(p.copied for p in parts) == total
    assert len({p.owner for p in parts}) == 2, [p.owner for p in parts]  # both workers
    _, small_rows = _rows(c, small)
    assert [(p.status, p.parent_id, p.folders) for p in small_rows] == [("ok", None, None)]

    rows_json = c.status()
    assert rows_json[big]["status"] == "synced"
    assert rows_json[big]["messages_on_destination"] == total
    # status shows the logical pass (the plan row with its parts' totals), not a part
    assert (rows_json[big]["last_pass"], rows_json[big]["last_pass_kind"]) == ("ok", "prestage")
    db = open_state(c.directory, url=c.env["MXSHIFT_DATABASE_URL"])
    try:
        with db.session() as s:  # the dashboard's pass history: one logical pass too
            mb = s.scalar(select(Mailbox).where(Mailbox.source_user == big))
            history = mailbox_detail(s, mb.project_id, mb.id)["passes"]
    finally:
        db.dispose()
    assert [(h["id"], h["copied"]) for h in history] == [(plan.id, total)]

    # the next pass has nothing to copy: one ordinary delta, not split
    code, out, err = _finish(c.sync())
    assert code == 0 and f"{big}: delta ok: 0 copied" in out, out + err
    _, rows = _rows(c, big)
    assert (rows[-1].status, rows[-1].folders, rows[-1].parent_id) == ("ok", None, None)
    # every task was delivered once, though each part ran longer than the 1 s visibility
    # timeout: the watcher's heartbeat kept Redis from handing it to the other worker
    assert len(rows) == 5, [(p.id, p.parent_id, p.status) for p in rows]
    received = [line.split("[", 2)[2].split("]")[0] for w in c.fleet.workers
                for line in w.log_text().splitlines() if "] received" in line]
    assert len(received) == len(set(received)) == 1 + 3 + 1 + 2, received


def test_a_worker_killed_mid_folder_task_is_requeued_at_once_and_finishes_exact(
        split_cluster) -> None:  # type: ignore[no-untyped-def]
    """The victim's machine dies (SIGKILL to the worker and its pool child). The
    visibility timeout is an hour: the lease watcher of the surviving worker sees the
    part's lease die and requeues its task within seconds; the redelivered part
    reconciles its folders and copies the rest."""
    c = split_cluster([(450, 6)], options="batch_messages = 1\n",
                      env={"MXSHIFT_VISIBILITY_TIMEOUT": "3600"})
    c.fleet.start(2)
    big = c.pairs[0][0]
    total = _total(c)
    proc = c.sync()
    try:
        deadline = time.monotonic() + 90
        while True:
            _, rows = _rows(c, big)
            running = [p for p in rows if p.parent_id is not None and p.status == "running"
                       and p.copied >= 1]
            if running:
                break
            assert proc.poll() is None and time.monotonic() < deadline, rows
            time.sleep(0.05)
        victim_row = running[0]
        pid = int(victim_row.owner.rpartition(":")[2])  # type: ignore[union-attr]
        victim = c.fleet.worker_of(pid)
        assert victim is not None
        c.fleet.kill(victim)
        killed_at = time.monotonic()
        assert len(c.fleet.alive()) == 1
        resumed = None
        while resumed is None:  # a new delivery of the same part took its folders over
            _, rows = _rows(c, big)
            again = [p for p in rows if p.folders == victim_row.folders
                     and p.id != victim_row.id]
            if again:
                resumed = time.monotonic() - killed_at
            assert time.monotonic() - killed_at < 60, "the dead part was not requeued"
            time.sleep(0.1)
        code, out, err = _finish(proc, timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert code == 0, out + err
    assert f"{big}: prestage ok" in out, out
    c.assert_exact()  # every message once: nothing lost, nothing duplicated
    assert resumed < 15, resumed  # not the hour of the visibility timeout
    print(f"\nSIGKILL -> part resumed on the other worker: {resumed:.1f} s")

    _, rows = _rows(c, big)
    plan = next(p for p in rows if p.parent_id is None)
    parts = [p for p in rows if p.parent_id == plan.id]
    dead = next(p for p in parts if p.id == victim_row.id)
    assert dead.status == "interrupted"
    again = [p for p in parts if p.folders == victim_row.folders and p.id != dead.id]
    assert [p.status for p in again] == ["ok"] and again[0].owner != dead.owner
    assert plan.status == "ok"
    assert dead.copied >= 1 and plan.copied <= total  # the rest was copied, nothing twice


# ----------------------------------------------- part leases, SQLite and PostgreSQL

_PART_HOLDER = """
import sys, time
from pathlib import Path
from mxshift.engine import lease
from mxshift.state.db import open_state
db = open_state(Path("."), url=sys.argv[1])
print(lease.acquire(db, int(sys.argv[2]), "prestage", folders=frozenset({1, 2})), flush=True)
time.sleep(120)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def lease_db(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    from mxshift.state.db import upgrade_state
    from mxshift.state.models import Project

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        pg = request.getfixturevalue("postgres_server")
        url = pg.new_database(f"l_{uuid.uuid4().hex[:12]}")
    upgrade_state(tmp_path, url=url)
    db = open_state(tmp_path, url=url)
    with db.session() as s, s.begin():
        p = Project(name="lease")
        s.add(p)
        s.flush()
        mb = Mailbox(project_id=p.id, source_user="a", destination_user="b")
        s.add(mb)
        s.flush()
        mb_id = mb.id
    yield url, db, mb_id
    db.dispose()


def test_part_leases_run_side_by_side_exclude_overlaps_and_are_taken_over_when_dead(
        lease_db) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from mxshift.engine import lease
    from mxshift.errors import MailboxError

    url, db, mb_id = lease_db
    other = subprocess.Popen([sys.executable, "-c", _PART_HOLDER, url, str(mb_id)],
                             stdout=subprocess.PIPE, text=True)
    try:
        dead_id = int(other.stdout.readline())  # type: ignore[union-attr]
        assert lease.holder(db, mb_id, frozenset({2, 5})) == "live"
        assert lease.holder(db, mb_id, None) == "live"   # a whole pass must wait
        assert lease.holder(db, mb_id, frozenset({3})) == "free"
        mine = lease.acquire(db, mb_id, "prestage", folders=frozenset({3}), parent_id=None)
        for folders in (frozenset({2}), None):
            with pytest.raises(MailboxError, match=lease.BUSY):
                lease.acquire(db, mb_id, "prestage", folders=folders)
        assert lease.held_elsewhere(db, mb_id, frozenset({1}))
        assert not lease.held_elsewhere(db, mb_id, frozenset({4}))
    finally:
        other.kill()
        other.communicate()
    deadline = time.monotonic() + 10
    while lease.holder(db, mb_id, frozenset({1})) != "dead":  # its connection is gone
        assert time.monotonic() < deadline
        time.sleep(0.05)
    again = lease.acquire(db, mb_id, "prestage", folders=frozenset({1, 2}))
    with db.session() as s:
        status = {p.id: (p.status, p.folders) for p in s.scalars(select(Pass))}
    assert status == {dead_id: ("interrupted", "1,2"), mine: ("running", "3"),
                      again: ("running", "1,2")}
    lease.release(again)
    lease.release(mine)
