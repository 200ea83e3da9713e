"""Measure passes on Celery workers: 20 mailboxes on 1, 2 and 4 worker processes, with
SQLite and with PostgreSQL as the state store, against the local runner.

    .venv/bin/python bench/workers.py [--mailboxes 20] [--messages 60] [--workers 1,2,4]
    .venv/bin/python bench/workers.py --split [--messages 1500] [--workers 1,2,4]

Starts two Dovecots (no fsync), a PostgreSQL and a redis-server of its own, loads the
source once, then per configuration: a fresh project and fresh destination accounts,
`mxshift db upgrade` + `mailboxes import`, N `mxshift worker` processes (prefork, one
pass each at a time), and times the real CLI `mxshift -q sync` twice: the full copy
(throughput) and the no-change pass after it (what the queue costs per mailbox, measured
against the local runner's no-change pass). Every destination is checked identical to
its source after the first sync.

``--split``: one large mailbox (12 folders) on PostgreSQL, its first sync on N workers
with the pass split into folder-pair tasks (``[distributed] split_mailbox_above``) and,
for comparison, not split (one worker copies it whatever N is).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from mxshift.testbed.corpus import CorpusSpec, folder_tree, generate
from mxshift.testbed.corpus_load import load
from mxshift.testbed.dovecot import DovecotServer, start_dovecot
from mxshift.testbed.dovecot_config import DovecotConfig
from mxshift.testbed.postgres import start_postgres
from mxshift.testbed.redis import start_redis
from mxshift.testbed.snapshot import diff, snapshot
from mxshift.testbed.workers import WorkerFleet

HEADER = "source_user,source_password,destination_user,destination_password\n"


def cli(directory: Path, env: dict[str, str], *args: str) -> tuple[float, str]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mxshift", "-q", "-C", str(directory), *args],
                          capture_output=True, text=True, env={**os.environ, **env})
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"mxshift {' '.join(args)} failed ({proc.returncode}):\n"
                         f"{proc.stdout}{proc.stderr}")
    return elapsed, proc.stdout


def snap(server: DovecotServer, user: str, password: str):  # type: ignore[no-untyped-def]
    c = server.connect(user, password)
    try:
        return snapshot(c)
    finally:
        c.logout()


def write_project(directory: Path, src: DovecotServer, dst: DovecotServer, extra: str) -> None:
    """mxshift.toml for a run: both local Dovecots, connection caps out of the way (the
    queue is measured, not the caps), plus the run's own ``extra`` tables."""
    (directory / "mxshift.toml").write_text(
        f'[source]\nhost = "127.0.0.1"\nport = {src.port}\nsecurity = "none"\n'
        f'max_connections = 50\n[destination]\nhost = "127.0.0.1"\n'
        f'port = {dst.port}\nsecurity = "none"\nmax_connections = 50\n' + extra)


def split_runs(args: argparse.Namespace, counts: list[int], work: Path, src: DovecotServer,
               dst: DovecotServer, pg, rd) -> None:  # type: ignore[no-untyped-def]
    """One large mailbox, split or not, on N workers (PostgreSQL state)."""
    u, p = src.new_user("big")
    spec = CorpusSpec(seed=42, messages=args.messages, folders=12, size_profile="realistic",
                      max_size=512 * 1024)
    c = src.connect(u, p)
    load(c, generate(spec), folders=folder_tree(spec))
    c.logout()
    source = snap(src, u, p)
    total = sum(len(v) for v in source.values())
    size = sum(m.size for v in source.values() for m in v)
    print(f"source: 1 mailbox, {len(source)} folders, {total} messages, "
          f"{size / 2**20:.1f} MiB")
    print(f"{'workers':>7} {'split':>6} {'full s':>7} {'MiB/s':>6} {'parts':>5} {'owners':>6}")
    for n in counts:
        for split in ("off", "1MB"):
            run = f"split-{n}-{split}-{uuid.uuid4().hex[:6]}".replace("MB", "m")
            directory = work / run
            directory.mkdir()
            write_project(directory, src, dst,
                          f'[distributed]\nsplit_mailbox_above = "{split}"\n'
                          f'split_parts = {max(n, 2)}\n')
            d, dp = dst.new_user("d")
            (directory / "m.csv").write_text(HEADER + f"{u},{p},{d},{dp}\n")
            env = {"MXSHIFT_DATABASE_URL": pg.new_database(run.replace("-", "_")),
                   "MXSHIFT_BROKER_URL": rd.url(), "MXSHIFT_QUEUE": run}
            cli(directory, env, "db", "upgrade")
            cli(directory, env, "mailboxes", "import", str(directory / "m.csv"))
            fleet = WorkerFleet(directory, env, directory / "logs")
            try:
                fleet.start(n)
                full, out = cli(directory, env, "sync")
            finally:
                fleet.stop_all()
            assert f"prestage ok: {total} copied" in out, out
            assert diff(source, snap(dst, d, dp)) == [], run
            import psycopg

            with psycopg.connect(env["MXSHIFT_DATABASE_URL"].replace("+psycopg", "")) as conn:
                parts, owners = conn.execute(
                    "SELECT count(*), count(DISTINCT owner) FROM pass "
                    "WHERE parent_id IS NOT NULL").fetchone()  # type: ignore[misc]
            print(f"{n:>7} {split:>6} {full:7.1f} {size / 2**20 / full:6.1f} {parts:>5} "
                  f"{owners:>6}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mailboxes", type=int, default=20)
    ap.add_argument("--messages", type=int, default=None,
                    help="per mailbox (default 60; 1500 with --split)")
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--split", action="store_true",
                    help="one large mailbox, split into folder-pair tasks or not")
    args = ap.parse_args()
    args.messages = args.messages or (1500 if args.split else 60)
    counts = [int(n) for n in args.workers.split(",")]
    work = Path(tempfile.mkdtemp(prefix="mxshift-bench-workers-"))
    cfg = DovecotConfig(fsync=False)
    src = start_dovecot(work / "src", name="bw-src", config=cfg)
    dst = start_dovecot(work / "dst", name="bw-dst", config=cfg)
    pg = start_postgres(work / "pg")
    rd = start_redis(work / "redis")
    try:
        if args.split:
            split_runs(args, counts, work, src, dst, pg, rd)
            return 0
        sources = []
        total_bytes = 0
        t0 = time.monotonic()
        for i in range(args.mailboxes):
            u, p = src.new_user("s")
            spec = CorpusSpec(seed=100 + i, messages=args.messages, folders=5,
                              size_profile="realistic", max_size=512 * 1024)
            c = src.connect(u, p)
            load(c, generate(spec), folders=folder_tree(spec))
            c.logout()
            sources.append((u, p))
        src_snaps = {u: snap(src, u, p) for u, p in sources}
        total = sum(len(v) for s in src_snaps.values() for v in s.values())
        total_bytes = sum(m.size for s in src_snaps.values() for v in s.values() for m in v)
        print(f"source: {args.mailboxes} mailboxes, {total} messages, "
              f"{total_bytes / 2**20:.1f} MiB, loaded in {time.monotonic() - t0:.1f}s")
        print(f"{'state':<10} {'runner':<10} {'full s':>7} {'msg/s':>7} {'MiB/s':>6} "
              f"{'no-change s':>11} {'per mailbox ms':>14}")
        for store in ("sqlite", "postgres"):
            for n in [0, *counts]:  # 0 = the local runner (thread pool of 4 in this process)
                run = f"{store}-{n}-{uuid.uuid4().hex[:6]}"
                directory = work / run
                directory.mkdir()
                write_project(directory, src, dst, "[options]\nmailbox_parallelism = 4\n")
                pairs = [(u, p, *dst.new_user("d")) for u, p in sources]
                (directory / "m.csv").write_text(
                    HEADER + "".join(f"{a},{b},{c},{d}\n" for a, b, c, d in pairs))
                env: dict[str, str] = {}
                if store == "postgres":
                    env["MXSHIFT_DATABASE_URL"] = pg.new_database(run.replace("-", "_"))
                if n:
                    env.update(MXSHIFT_BROKER_URL=rd.url(), MXSHIFT_QUEUE=run)
                cli(directory, env, "db", "upgrade")
                cli(directory, env, "mailboxes", "import", str(directory / "m.csv"))
                fleet = WorkerFleet(directory, env, directory / "logs")
                try:
                    if n:
                        fleet.start(n)
                    full, _ = cli(directory, env, "sync")
                    again, out = cli(directory, env, "sync")
                finally:
                    fleet.stop_all()
                assert out.count("delta ok: 0 copied") == args.mailboxes, out
                for (u, p, d, dp) in pairs:
                    problems = diff(src_snaps[u], snap(dst, d, dp))
                    assert problems == [], (run, u, problems[:5])
                per_mb = again / args.mailboxes * 1000
                label = "local x4" if n == 0 else f"{n} worker{'s' if n > 1 else ''}"
                print(f"{store:<10} {label:<10} {full:7.1f} {total / full:7.0f} "
                      f"{total_bytes / 2**20 / full:6.1f} {again:11.2f} {per_mb:14.0f}",
                      flush=True)
        print("per mailbox ms: the no-change sync's wall time / mailboxes; CLI start-up "
              "(~0.3 s) is inside every figure")
    finally:
        for server in (rd, pg):
            server.stop()
        src.stop()
        dst.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
