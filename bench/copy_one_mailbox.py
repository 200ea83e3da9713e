"""Measure full `mxshift sync` copies of generated mailboxes, variant beside variant.

    .venv/bin/python bench/copy_one_mailbox.py [--messages 5000] [--mailboxes 1]
        [--variant 'folder_parallelism = 1'] [--variant 'env:MALLOC_ARENA_MAX=2'] [--repeat 2]

Starts its own pair of Dovecot servers (``mail_fsync = never``), loads a seeded realistic
corpus into ``--mailboxes`` source accounts once, then for each variant (and each repeat,
variants interleaved so they share the machine's load) copies them into fresh destination
accounts with the real CLI (`mxshift -q sync`, one process for all mailboxes). Per run it
prints the pass time (from the state database, without process start-up), the process's
CPU seconds, each Dovecot's CPU seconds (bench/measure.py) and peak RSS (GNU time: forked from the small ``time``, not from this
process, so the RSS high-water mark is mxshift's own), MB/s over the pass, and whether
every destination equals its source (bytes, flags incl. keywords, INTERNALDATE, folders).

A variant is ``[options]`` lines for mxshift.toml (``;`` separates several), or
``env:NAME=VALUE`` (``;``-separated too) for the process environment; ``""`` = defaults.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import dovecot_cpu, mail_dir  # noqa: E402

from mxshift.testbed.corpus import CorpusSpec, folder_tree, generate
from mxshift.testbed.corpus_load import load
from mxshift.testbed.dovecot import start_dovecot
from mxshift.testbed.dovecot_config import DovecotConfig
from mxshift.testbed.snapshot import diff, snapshot

TIME = "/usr/bin/time"


def pass_span(project: Path) -> tuple[float, int]:
    """(first pass start to last pass end in seconds, bytes copied) from the state DB."""
    db = next(project.rglob("*.db"), None) or next(project.rglob("*.sqlite*"))
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT started_at, finished_at, bytes_copied FROM pass").fetchall()
    finally:
        con.close()
    starts = [datetime.fromisoformat(str(r[0])) for r in rows]
    ends = [datetime.fromisoformat(str(r[1])) for r in rows if r[1]]
    return (max(ends) - min(starts)).total_seconds(), sum(r[2] or 0 for r in rows)


def timed(cmd: list[str], env: dict[str, str],
          check: bool = True) -> tuple[float, float, float, int, str]:
    """(wall, user CPU, system CPU, peak RSS KiB, output) of one process."""
    fd, out = tempfile.mkstemp(prefix="bench-time-")
    os.close(fd)
    try:
        t0 = time.monotonic()
        proc = subprocess.run([TIME, "-f", "%U %S %M", "-o", out] + cmd, env=env,
                              capture_output=True, text=True)
        wall = time.monotonic() - t0
        user, system, rss = Path(out).read_text().split()[-3:]
    finally:
        os.unlink(out)
    if check and proc.returncode != 0:
        raise SystemExit(f"sync failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    return wall, float(user), float(system), int(rss), proc.stdout.strip()


def parse_variant(text: str) -> tuple[list[str], dict[str, str]]:
    options: list[str] = []
    env: dict[str, str] = {}
    for part in (p.strip() for p in text.split(";")):
        if part.startswith("env:"):
            name, _, value = part[4:].partition("=")
            env[name] = value
        elif part:
            options.append(part)
    return options, env


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--mailboxes", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--size-profile", default="realistic",
                    help="the corpus's size mix: realistic (default) or small (per-message "
                         "costs)")
    ap.add_argument("--variant", action="append", default=None,
                    help="[options] lines or env:NAME=VALUE, ';'-separated (default: '')")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--fsync", action="store_true", help="Dovecot fsyncs (default: never)")
    ap.add_argument("--spy", type=Path, default=None,
                    help="record each sync with py-spy (raw stacks) into this folder")
    ap.add_argument("--mail-on-disk", action="store_true",
                    help="Dovecots' mail in the temp directory, not on tmpfs (measure.mail_dir)")
    ap.add_argument("--wrap", default="",
                    help="a command prefix for each sync, e.g. 'perf record -o /tmp/p.data --'")
    args = ap.parse_args()
    variants = args.variant or [""]
    work = Path(tempfile.mkdtemp(prefix="mxshift-bench-"))
    cfg = DovecotConfig(fsync=args.fsync)
    mail = mail_dir(args.mail_on_disk)
    src = start_dovecot(mail / "src", name="bench-src", config=cfg)
    dst = start_dovecot(mail / "dst", name="bench-dst", config=cfg)
    try:
        sources = [src.new_user("s") for _ in range(args.mailboxes)]
        t0 = time.monotonic()
        for i, (su, sp) in enumerate(sources):
            spec = CorpusSpec(seed=args.seed + i, messages=args.messages,
                              size_profile=args.size_profile)
            c = src.connect(su, sp)
            load(c, generate(spec), folders=folder_tree(spec))
            c.logout()
        print(f"corpus: {args.mailboxes} x {args.messages} messages, loaded in "
              f"{time.monotonic() - t0:.1f}s")
        print(f"{'variant':40} {'pass s':>7} {'MB/s':>6} {'wall s':>7} {'user':>6} "
              f"{'sys':>5} {'RSS MB':>6} {'cpu src':>7} {'cpu dst':>7}  check")
        ok = True
        for r in range(args.repeat):
            for n, variant in enumerate(variants):
                options, extra_env = parse_variant(variant)
                project = work / f"project-{r}-{n}"
                project.mkdir()
                (project / "mxshift.toml").write_text(
                    f'[source]\nhost = "127.0.0.1"\nport = {src.port}\nsecurity = "none"\n\n'
                    f'[destination]\nhost = "127.0.0.1"\nport = {dst.port}\nsecurity = "none"\n'
                    + ("\n[options]\n" + "\n".join(options) + "\n" if options else ""))
                dests = [dst.new_user("d") for _ in sources]
                csv = project / "users.csv"
                csv.write_text(
                    "source_user,source_password,destination_user,destination_password\n"
                    + "".join(f"{su},{sp},{du},{dp}\n"
                              for (su, sp), (du, dp) in zip(sources, dests)))
                env = dict(os.environ, **extra_env)
                subprocess.run([sys.executable, "-m", "mxshift", "-C", str(project),
                                "mailboxes", "import", str(csv)], check=True,
                               capture_output=True)
                cmd = [sys.executable, "-m", "mxshift", "-q", "-C", str(project), "sync"]
                if args.spy is not None:
                    args.spy.mkdir(parents=True, exist_ok=True)
                    cmd = [str(Path(sys.executable).parent / "py-spy"), "record", "-r", "250", "--gil",
                           "-t", "-f", "raw", "-o", str(args.spy / f"run-{r}-{n}.txt"),
                           "--"] + cmd
                if args.wrap:
                    cmd = args.wrap.replace("{run}", f"{r}-{n}").split() + cmd
                cpu0 = (dovecot_cpu(src.pid), dovecot_cpu(dst.pid))
                wall, user, system, rss, _out = timed(cmd, env, check=args.spy is None)
                cpu_src, cpu_dst = (dovecot_cpu(src.pid) - cpu0[0],
                                    dovecot_cpu(dst.pid) - cpu0[1])
                span, copied = pass_span(project)
                differences = []
                for (su, sp), (du, dp) in zip(sources, dests):
                    a, b = src.connect(su, sp), dst.connect(du, dp)
                    differences += diff(snapshot(a), snapshot(b))
                    a.logout()
                    b.logout()
                    # The copy's mail goes once checked: runs left on tmpfs made each
                    # next one's destination slower (its CPU 0.6 s, then 0.9 s and more).
                    shutil.rmtree(dst.home(du), ignore_errors=True)
                ok = ok and not differences
                print(f"{variant or '(defaults)':40} {span:7.2f} {copied / 1e6 / span:6.1f} "
                      f"{wall:7.2f} {user:6.2f} {system:5.2f} {rss / 1024:6.0f} "
                      f"{cpu_src:7.2f} {cpu_dst:7.2f}  "
                      + ("exact" if not differences else f"{len(differences)} diff"),
                      flush=True)
        return 0 if ok else 1
    finally:
        src.stop()
        dst.stop()
        shutil.rmtree(mail, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
