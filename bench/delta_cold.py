"""Step 3 of bench/run (the issue's delta) as the real CLI runs it: a fresh `mxshift sync`
process per pass, from the same saved state, variants interleaved.

    .venv/bin/python bench/delta_cold.py [--repeat 10] [--messages 5000]
        [--variant 'name=OPTIONS'] [--variant 'name=OPTIONS|PYTHONPATH']

Why beside bench/delta_pass.py (which runs passes inside one process): a process's
first pass pays what a warm one does not (statements compiled, modules imported on
first use), and bench/run measures exactly that pass; one bench/run gives one sample of
it. Here the first copy runs once, the source is changed once (100 new, 200 flag
changes, 50 deletions, 20 moves), the destination's Maildir and the project are saved,
and every run starts from them. A variant is ``[options]`` lines for mxshift.toml
(``\\n`` between several) and, after ``|``, a PYTHONPATH (another tree: ``git archive
REV src | tar -x -C /tmp/x``, compiled with ``python -m compileall``). Printed per run
and as medians: the pass time from the state database (no start-up), the process's
wall and CPU seconds, and each Dovecot's CPU seconds (10 ms ticks: read the means).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accounts import change_source, clone, empty, seeded, start_pair  # noqa: E402
from delta_pass import restore, save  # noqa: E402
from measure import dovecot_cpu, mail_dir, settle  # noqa: E402
from peers import mxshift_project  # noqa: E402

from mxshift.testbed.corpus import CorpusSpec  # noqa: E402
from mxshift.testbed.dovecot import stop_servers  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--variant", action="append", default=[],
                    help="name=OPTIONS or name=OPTIONS|PYTHONPATH (default: one, 'this')")
    ap.add_argument("--wrap", default="",
                    help="a command prefix for each pass, {n} = the run's number, e.g. "
                         "'py-spy record --gil -f raw -o /tmp/spy-{n}.txt --'")
    args = ap.parse_args()
    variants = [tuple(v.split("=", 1)) for v in args.variant] or [("this", "")]
    work = Path(tempfile.mkdtemp(prefix="mxshift-delta-cold-"))
    mail = mail_dir(False)
    src, dst = start_pair(mail)
    try:
        s = clone(seeded(src, "a", CorpusSpec(seed=1, messages=args.messages)), "x")
        d = empty(dst, "x")
        cmd = mxshift_project(work / "p", [(s, d)])[0]
        subprocess.run(cmd, check=True, capture_output=True)
        change_source(s, seed=101)
        keep = [dst.home(d.user), work / "p"]
        save(keep, work / "saved")
        rows: dict[str, list[tuple[float, float, float, float, float]]] = {
            name: [] for name, _ in variants}
        for n in range(args.repeat):
            for name, spec in variants:
                restore(keep, work / "saved")
                options, _, pythonpath = spec.partition("|")
                if options:
                    with open(work / "p" / "mxshift.toml", "a") as f:
                        f.write(options.replace("\\n", "\n") + "\n")
                env = dict(os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {}))
                settle([src.pid, dst.pid])
                cpu0 = (dovecot_cpu(src.pid), dovecot_cpu(dst.pid))
                own0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.monotonic()
                wrap = args.wrap.replace("{n}", f"{name}-{n}").split()
                run = subprocess.run(wrap + cmd, capture_output=True, text=True, env=env)
                wall = time.monotonic() - t0
                own1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                time.sleep(0.05)  # the Dovecots' logouts
                cpu1 = (dovecot_cpu(src.pid), dovecot_cpu(dst.pid))
                if run.returncode:
                    print(run.stdout, run.stderr)
                    return 1
                db = next((work / "p").rglob("*.db"))
                with sqlite3.connect(db) as con:
                    a, b = con.execute("SELECT started_at, finished_at FROM pass "
                                       "ORDER BY id DESC LIMIT 1").fetchone()
                seconds = (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()
                cpu = own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime
                row = (seconds, wall, cpu, cpu1[0] - cpu0[0], cpu1[1] - cpu0[1])
                rows[name].append(row)
                print(f"{name:10} pass {seconds * 1000:6.1f} ms  wall {wall:.3f} s  "
                      f"cpu tool {cpu:.3f}  src {row[3]:.2f}  dst {row[4]:.2f}", flush=True)
        for name, got in rows.items():
            passes = sorted(r[0] * 1000 for r in got)
            print(f"== {name:10} pass median {statistics.median(passes):6.1f} ms "
                  f"(all: {', '.join(f'{p:.1f}' for p in passes)}); wall "
                  f"{statistics.median(r[1] for r in got):.3f} s; cpu tool "
                  f"{statistics.median(r[2] for r in got):.3f}; src "
                  f"{statistics.mean(r[3] for r in got):.3f}; dst "
                  f"{statistics.mean(r[4] for r in got):.3f} (means)")
        return 0
    finally:
        stop_servers(src, dst)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(mail, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
