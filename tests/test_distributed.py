"""Passes on real Celery workers (``mxshift worker`` processes) with PostgreSQL state and
a Redis broker: a project migrates exact; a worker killed with SIGKILL mid-pass is
survived (redelivery, lease takeover, journal) without a duplicate; the per-server
connection cap holds across workers (counted by the shared limiter and by Dovecot).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from mxshift.cli import app
from mxshift.runners.redis_limits import RedisLimiter
from mxshift.state.db import open_state
from mxshift.state.models import Mailbox, Pass
from mxshift.testbed.corpus import CorpusSpec
from mxshift.testbed.dovecot import DovecotServer
from mxshift.testbed.postgres import PostgresServer
from mxshift.testbed.redis import RedisServer
from mxshift.testbed.snapshot import diff, snapshot
from mxshift.testbed.workers import WorkerFleet

from test_cli import fill  # a seeded corpus onto a source account

HEADER = "source_user,source_password,destination_user,destination_password\n"


@dataclass
class Cluster:
    directory: Path
    env: dict[str, str]
    fleet: WorkerFleet
    pairs: list[tuple[str, str, str, str]]  # source user, password, dest user, password
    src: DovecotServer
    dst: DovecotServer

    def cli(self, *args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(app, ["-C", str(self.directory), *args], env=self.env)

    def sync(self) -> subprocess.Popen[str]:
        """``mxshift -q sync`` as an admin runs it, with the cluster's environment."""
        return subprocess.Popen([sys.executable, "-m", "mxshift", "-q", "-C",
                                 str(self.directory), "sync"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **self.env})

    def status(self) -> dict[str, dict]:
        res = self.cli("status", "--json")
        assert res.exit_code == 0, res.stderr
        return {r["source_user"]: r for r in json.loads(res.stdout)}

    def assert_exact(self) -> None:
        for s, sp, d, dp in self.pairs:
            a, b = _snap(self.src, s, sp), _snap(self.dst, d, dp)
            assert sum(len(v) for v in a.values()) > 0
            assert diff(a, b) == [], f"{s} -> {d}"


def _snap(server: DovecotServer, user: str, password: str):  # type: ignore[no-untyped-def]
    client = server.connect(user, password)
    try:
        return snapshot(client)
    finally:
        client.logout()


def _finish(proc: subprocess.Popen[str], timeout: float = 90) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.fixture
def cluster_factory(tmp_path: Path, postgres_server: PostgresServer, redis_server: RedisServer,
                    dovecot_src: DovecotServer, dovecot_dst: DovecotServer):  # type: ignore[no-untyped-def]
    fleets: list[WorkerFleet] = []

    def make(sizes: list[int], *, options: str = "", source_cap: int = 10) -> Cluster:
        directory = tmp_path / "proj"
        directory.mkdir()
        (directory / "mxshift.toml").write_text(
            f'[source]\nhost = "127.0.0.1"\nport = {dovecot_src.port}\nsecurity = "none"\n'
            f"max_connections = {source_cap}\n"
            f'[destination]\nhost = "127.0.0.1"\nport = {dovecot_dst.port}\n'
            f'security = "none"\n[options]\n{options}')
        pairs = []
        for n, size in enumerate(sizes):
            s, sp = dovecot_src.new_user("ws")
            d, dp = dovecot_dst.new_user("wd")
            fill(dovecot_src, s, CorpusSpec(seed=900 + n, messages=size, folders=3,
                                            size_profile="small"))
            pairs.append((s, sp, d, dp))
        (directory / "mailboxes.csv").write_text(
            HEADER + "".join(f"{s},{sp},{d},{dp}\n" for s, sp, d, dp in pairs))
        env = {"MXSHIFT_DATABASE_URL": postgres_server.new_database(
                   f"w_{uuid.uuid4().hex[:12]}"),
               "MXSHIFT_BROKER_URL": redis_server.url(),
               "MXSHIFT_QUEUE": f"q-{uuid.uuid4().hex[:8]}",
               "MXSHIFT_VISIBILITY_TIMEOUT": "4", "MXSHIFT_SLOT_TTL": "3"}
        fleet = WorkerFleet(directory, env, tmp_path / "workers")
        fleets.append(fleet)
        c = Cluster(directory, env, fleet, pairs, dovecot_src, dovecot_dst)
        res = c.cli("db", "upgrade")
        assert res.exit_code == 0, res.stderr
        res = c.cli("mailboxes", "import", str(directory / "mailboxes.csv"))
        assert res.exit_code == 0, res.stderr
        return c

    yield make
    for fleet in fleets:
        fleet.stop_all()


def _passes(c: Cluster) -> list[Pass]:
    db = open_state(c.directory, url=c.env["MXSHIFT_DATABASE_URL"])
    try:
        with db.session() as s:
            return list(s.scalars(select(Pass).order_by(Pass.id)))
    finally:
        db.dispose()


def test_workers_migrate_a_project_exact_and_hold_the_connection_cap_together(
        cluster_factory) -> None:  # type: ignore[no-untyped-def]
    c = cluster_factory([40] * 6, source_cap=2)
    src_key = f"127.0.0.1:{c.src.port}"
    limiter = RedisLimiter(c.env["MXSHIFT_BROKER_URL"])
    limiter.reset(src_key)
    c.fleet.start(3)  # 3 passes could run at once; the source allows 2 connections

    seen, stop = [0], threading.Event()

    def watch_dovecot() -> None:  # what the server itself counts, all users
        while not stop.is_set():
            seen[0] = max(seen[0], c.src.connection_count())
            time.sleep(0.02)

    watcher = threading.Thread(target=watch_dovecot, daemon=True)
    watcher.start()
    try:
        code, out, err = _finish(c.sync())
    finally:
        stop.set()
        watcher.join()
    assert code == 0, out + err
    assert out.count("prestage ok: 40 copied") == 6, out
    c.assert_exact()
    assert limiter.peak(src_key) == 2  # the cap was reached and never exceeded ...
    assert 1 <= seen[0] <= 2           # ... as Dovecot saw it
    assert limiter.in_use(src_key) == 0
    owners = {p.owner for p in _passes(c)}
    assert len(owners) >= 2, owners   # the passes really were spread over workers

    # a second run through the workers: deltas with nothing to do
    code, out, err = _finish(c.sync())
    assert code == 0 and out.count("delta ok: 0 copied") == 6, out + err
    rows = c.status()
    assert {r["status"] for r in rows.values()} == {"synced"}
    assert all(r["messages_on_destination"] == 40 for r in rows.values())
    # the rest of the tool on the same PostgreSQL state: verification and the report
    res = c.cli("verify")
    assert res.exit_code == 0, res.stdout + res.stderr
    report = c.directory / "report.json"
    res = c.cli("report", "--format", "json", "-o", str(report))
    assert res.exit_code == 0 and report.stat().st_size > 0, res.stderr
    limiter.close()


@pytest.mark.parametrize("victim_kind", ["machine", "pool-process"])
def test_a_worker_killed_mid_pass_is_survived_exact_without_duplicates(
        cluster_factory, victim_kind: str) -> None:  # type: ignore[no-untyped-def]
    """"machine": the worker and its pool child die at once (SIGKILL to the group); Redis
    hands the unacknowledged pass to the other worker after the visibility timeout.
    "pool-process": only the process running the pass dies; its worker rejects the task
    back to the queue at once (``task_reject_on_worker_lost``)."""
    # one message per batch: the big mailbox's pass lasts long enough to be caught mid-way
    c = cluster_factory([300, 20, 20], options="batch_messages = 1\n")
    c.fleet.start(2)
    big = c.pairs[0][0]
    proc = c.sync()
    try:
        deadline = time.monotonic() + 60
        while True:  # progress of a worker's pass, live in `mxshift status`
            row = c.status()[big]
            if row["status"] == "running" and 40 <= row["messages_on_destination"] <= 220:
                break
            assert proc.poll() is None and time.monotonic() < deadline, (row, proc.poll())
            time.sleep(0.05)
        running = [p for p in _passes(c) if p.status == "running"]
        db = open_state(c.directory, url=c.env["MXSHIFT_DATABASE_URL"])
        with db.session() as s:
            big_id = s.scalar(select(Mailbox.id).where(Mailbox.source_user == big))
        db.dispose()
        owner = next(p.owner for p in running if p.mailbox_id == big_id)
        pid = int(owner.rpartition(":")[2])  # type: ignore[union-attr]
        victim = c.fleet.worker_of(pid)
        assert victim is not None and victim.proc.pid != pid, owner  # a prefork child
        if victim_kind == "machine":
            c.fleet.kill(victim)
            assert len(c.fleet.alive()) == 1
        else:
            os.kill(pid, signal.SIGKILL)
        code, out, err = _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert code == 0, out + err
    assert f"{big}: prestage ok" in out, out
    c.assert_exact()  # every message once: nothing lost, nothing duplicated
    big_passes = [p for p in _passes(c) if p.mailbox_id == big_id]
    statuses = [p.status for p in big_passes]
    assert statuses[0] == "interrupted" and set(statuses[1:]) == {"ok"}, statuses
    assert big_passes[0].owner == owner and big_passes[1].owner != owner
    # the resumed pass copied the rest; a delivery repeated while it ran (it outlived the
    # 4 s visibility timeout) waited for its lease and then found nothing left to do
    total = sum(len(v) for v in _snap(c.src, big, c.pairs[0][1]).values())
    assert big_passes[0].copied + big_passes[1].copied <= total
    assert all(p.copied == 0 for p in big_passes[2:]), [p.copied for p in big_passes]


def test_sync_without_any_worker_says_so_and_queues_nothing(
        cluster_factory, redis_server: RedisServer) -> None:  # type: ignore[no-untyped-def]
    c = cluster_factory([3])
    code, out, err = _finish(c.sync(), timeout=30)
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [
        f"error: no mxshift worker answers on the broker (queue {c.env['MXSHIFT_QUEUE']}): "
        f"start `mxshift worker` on a worker machine"]
    import redis

    assert redis.Redis.from_url(redis_server.url()).llen(c.env["MXSHIFT_QUEUE"]) == 0
