"""State on a real PostgreSQL: migrations, schema refusals, the cross-process lease.

Also the pure parts of the runners (settings from the environment, task results) and
the Redis connection limiter on a real redis-server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, select, text
from typer.testing import CliRunner

from mxshift.cli import app
from mxshift.engine import lease
from mxshift.errors import ConfigError, MailboxError
from mxshift.runners.celery_runner import result_from_task
from mxshift.runners.redis_limits import RedisLimiter
from mxshift.runners.settings import runner_settings
from mxshift.state import db as state_db
from mxshift.state.models import Mailbox, Pass, Project
from mxshift.testbed.postgres import PostgresServer
from mxshift.testbed.redis import RedisServer

MINIMAL_TOML = ('[source]\nhost = "127.0.0.1"\nport = 1\nsecurity = "none"\n'
                '[destination]\nhost = "127.0.0.1"\nport = 2\nsecurity = "none"\n')


@pytest.fixture
def pg_url(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    url = postgres_server.new_database(f"t_{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("MXSHIFT_DATABASE_URL", url)
    return url


def cli(directory: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["-C", str(directory), *args])


# -- migrations and refusals ------------------------------------------------------------


def test_db_upgrade_runs_the_whole_chain_and_commands_refuse_a_schema_behind(
        tmp_path: Path, pg_url: str) -> None:
    (tmp_path / "mxshift.toml").write_text(MINIMAL_TOML)
    res = cli(tmp_path, "status")
    assert res.exit_code == 1
    assert "state database is empty" in res.stderr and "mxshift db upgrade" in res.stderr

    # a database left at an older revision (mxshift was upgraded, the schema not yet)
    engine = state_db.make_engine(pg_url)
    cfg = state_db._alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003_verify")
    res = cli(tmp_path, "status")
    assert res.exit_code == 1 and "schema revision 0003_verify" in res.stderr
    assert "mxshift db upgrade" in res.stderr and "Traceback" not in res.stderr

    head = state_db.head_revision()
    res = cli(tmp_path, "db", "upgrade")
    assert res.exit_code == 0, res.stderr
    assert f"schema 0003_verify -> {head}" in res.stdout
    assert "postgresql+psycopg://mxshift@" in res.stdout
    assert state_db.current_revision(engine) == head
    tables = set(inspect(engine).get_table_names())
    assert {"mailbox", "pass", "message", "verification", "timeline"} <= tables
    res = cli(tmp_path, "db", "upgrade")
    assert res.exit_code == 0 and f"already at {head}" in res.stdout
    assert cli(tmp_path, "status").exit_code == 0

    # a database written by a newer mxshift
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    for args in (("status",), ("db", "upgrade")):
        res = cli(tmp_path, *args)
        assert res.exit_code == 1 and "newer mxshift" in res.stderr, res.stderr
    engine.dispose()


def test_unreachable_database_is_one_line_without_the_password(
        tmp_path: Path, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mxshift.toml").write_text(MINIMAL_TOML)
    monkeypatch.setenv("MXSHIFT_DATABASE_URL",
                       f"postgresql://mxshift:S3cret-pw@127.0.0.1:{postgres_server.port}/nope")
    for args in (("status",), ("db", "upgrade")):
        res = cli(tmp_path, *args)
        assert res.exit_code == 1
        assert "cannot open the state database" in res.stderr and "nope" in res.stderr
        assert "S3cret-pw" not in res.stderr + res.stdout
        assert len(res.stderr.strip().splitlines()) == 1


# -- the lease across processes ---------------------------------------------------------

_HOLDER = """
import sys, time
from pathlib import Path
from mxshift.engine import lease
from mxshift.state.db import open_state
db = open_state(Path("."), url=sys.argv[1])
pass_id = lease.acquire(db, int(sys.argv[2]), "delta")
print(pass_id, flush=True)
time.sleep(120)
"""


def _mailbox(url: str) -> tuple[state_db.StateDB, int]:
    state_db.upgrade_state(Path("."), url=url)
    db = state_db.open_state(Path("."), url=url)
    with db.session() as s, s.begin():
        p = Project(name="lease")
        s.add(p)
        s.flush()
        mb = Mailbox(project_id=p.id, source_user="a", destination_user="b")
        s.add(mb)
        s.flush()
        return db, mb.id


def test_lease_is_exclusive_across_processes_and_taken_over_when_the_holder_is_killed(
        pg_url: str) -> None:
    db, mb_id = _mailbox(pg_url)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, pg_url, str(mb_id)],
                              stdout=subprocess.PIPE, text=True)
    try:
        held_id = int(holder.stdout.readline())  # type: ignore[union-attr]
        # another process (or machine) is refused while the holder lives, whatever its pid
        with pytest.raises(MailboxError, match=lease.BUSY):
            lease.acquire(db, mb_id, "delta")
        assert lease.held_elsewhere(db, mb_id)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        deadline = time.monotonic() + 10  # PostgreSQL notices the closed socket at once
        while lease.held_elsewhere(db, mb_id):
            assert time.monotonic() < deadline, "the dead holder's lock was never dropped"
            time.sleep(0.05)
        mine = lease.acquire(db, mb_id, "delta")
        with db.session() as s:
            assert s.get(Pass, held_id).status == "interrupted"  # type: ignore[union-attr]
            assert s.get(Pass, mine).status == "running"  # type: ignore[union-attr]
        # in-process: a second pass of the same mailbox is refused too
        with pytest.raises(MailboxError, match=lease.BUSY):
            lease.acquire(db, mb_id, "delta")
        lease.release(mine)
        assert not lease.held_elsewhere(db, mb_id)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]
        db.dispose()


def test_only_one_of_many_simultaneous_acquirers_wins(pg_url: str) -> None:
    db, mb_id = _mailbox(pg_url)
    others = [state_db.open_state(Path("."), url=pg_url) for _ in range(6)]
    won: list[int] = []
    refused: list[str] = []
    barrier = threading.Barrier(len(others))

    def race(d: state_db.StateDB) -> None:
        barrier.wait()
        try:
            won.append(lease.acquire(d, mb_id, "delta"))
        except MailboxError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=race, args=(d,)) for d in others]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == 5
    with db.session() as s:
        running = s.scalars(select(Pass).where(Pass.status == "running")).all()
    assert [p.id for p in running] == won
    lease.release(won[0])
    for d in [db, *others]:
        d.dispose()


# -- runner settings and results (pure) ---------------------------------------------------


def test_runner_settings_from_the_environment() -> None:
    local = runner_settings({})
    assert not local.distributed and local.redis_url is None
    assert local.worker_broker() == "redis://127.0.0.1:6379/0"
    s = runner_settings({"MXSHIFT_BROKER_URL": "redis://h:1/2", "MXSHIFT_QUEUE": "acme",
                         "MXSHIFT_VISIBILITY_TIMEOUT": "7.5"})
    assert s.distributed and s.result_backend == "redis://h:1/2" and s.redis_url == "redis://h:1/2"
    assert s.queue == "acme" and s.visibility_timeout == 7.5 and s.slot_ttl == 30.0
    amqp = runner_settings({"MXSHIFT_BROKER_URL": "amqp://h//",
                            "MXSHIFT_RESULT_BACKEND": "redis://r/0"})
    assert amqp.redis_url is None and amqp.result_backend == "redis://r/0"
    with pytest.raises(ConfigError, match="MXSHIFT_SLOT_TTL"):
        runner_settings({"MXSHIFT_SLOT_TTL": "soon"})
    with pytest.raises(ConfigError, match="positive"):
        runner_settings({"MXSHIFT_VISIBILITY_TIMEOUT": "0"})


def test_task_results_become_pass_results() -> None:
    r = result_from_task({"mailbox_id": 3, "mailbox": "x", "kind": "delta", "status": "ok",
                          "copied": 5, "notes": ["n"], "unknown_field": 1}, "alice", None)
    assert (r.mailbox, r.kind, r.status, r.copied, r.notes) == ("alice", "delta", "ok", 5, ["n"])
    e = result_from_task(RuntimeError("boom"), "bob", "final")
    assert e.status == "failed" and e.kind == "final" and "boom" in (e.error or "")
    assert result_from_task(None, "c", None).status == "failed"


def test_database_urls_normalised_and_shown_without_password() -> None:
    assert state_db.normalise_url("postgresql://u:p@h/d") == "postgresql+psycopg://u:p@h/d"
    assert state_db.normalise_url("postgres://h/d") == "postgresql+psycopg://h/d"
    assert state_db.normalise_url("sqlite:///x.db") == "sqlite:///x.db"
    assert "pw" not in state_db.safe_url("postgresql+psycopg://u:pw@h/d")


# -- the Redis connection limiter ---------------------------------------------------------


def test_redis_limiter_caps_holders_in_several_processes_and_expires_a_dead_ones_slots(
        redis_server: RedisServer) -> None:
    server = f"imap.test:{uuid.uuid4().hex[:6]}"
    url = redis_server.url()
    a = RedisLimiter(url, ttl=1.5, poll=0.01)
    b = RedisLimiter(url, ttl=1.5, poll=0.01)  # another worker: its own client and state
    for lim in (a, b):
        lim.set_cap(server, 2)
    inside, peak, lock = [0], [0], threading.Lock()

    def use(lim: RedisLimiter) -> None:
        with lim.slot(server):
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=use, args=(lim,)) for lim in (a, b) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2 and a.peak(server) == 2 and a.in_use(server) == 0

    # a holder that dies without releasing: its slot counts until the lease expires
    code = ("import sys, time\nfrom mxshift.runners.redis_limits import RedisLimiter\n"
            "lim = RedisLimiter(sys.argv[1], ttl=1.5)\nlim.set_cap(sys.argv[2], 2)\n"
            "with lim.slot(sys.argv[2]), lim.slot(sys.argv[2]):\n"
            "    print('held', flush=True)\n    time.sleep(60)\n")
    dead = subprocess.Popen([sys.executable, "-c", code, url, server], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert dead.stdout.readline().strip() == "held"  # type: ignore[union-attr]
        time.sleep(2.0)  # longer than the ttl: the live holder keeps its slots fresh
        assert a.in_use(server) == 2
        os.kill(dead.pid, signal.SIGKILL)
        dead.wait(10)
        started = time.monotonic()
        with a.slot(server):  # blocks until the dead holder's leases expire
            waited = time.monotonic() - started
        assert 0.1 < waited < 5, waited
    finally:
        if dead.poll() is None:
            dead.kill()
            dead.wait()
        dead.stdout.close()  # type: ignore[union-attr]
        a.close()
        b.close()


def test_redis_limiter_unreachable_is_an_endpoint_error_not_a_crash() -> None:
    from mxshift.errors import EndpointError
    from mxshift.testbed.dovecot import free_port

    lim = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(EndpointError, match="connection limiter unreachable"):
        with lim.slot("imap.test:993"):
            pass
    lim.close()


def test_run_passes_on_celery_enqueues_nothing_when_asked_to_stop() -> None:
    from mxshift.engine.journal import Hooks
    from mxshift.runners import run_passes
    from mxshift.testbed.dovecot import free_port

    # a broker nobody listens on: reaching it would fail after retries, not return []
    dead = runner_settings({"MXSHIFT_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert run_passes(None, None, "delta", should_stop=lambda: True,  # type: ignore[arg-type]
                      settings=dead) == []
    with pytest.raises(ValueError, match="hooks"):
        run_passes(None, None, None, hooks=Hooks(), settings=dead)  # type: ignore[arg-type]
