"""Measure a full `mxshift sync` of one generated mailbox and the no-change pass after it.

    .venv/bin/python bench/copy_one_mailbox.py [--messages 5000] [--keep-dir DIR]

Starts its own pair of Dovecot servers, loads a seeded realistic corpus into the source,
runs the real CLI (`mxshift -q sync`) twice, checks the destination is identical to the
source (bytes, flags incl. keywords, INTERNALDATE, folder tree) and prints the timings,
throughput and the peak RSS of the mxshift process.
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mxshift.testbed.corpus import CorpusSpec, folder_tree, generate
from mxshift.testbed.corpus_load import load
from mxshift.testbed.dovecot import start_dovecot
from mxshift.testbed.dovecot_config import DovecotConfig
from mxshift.testbed.snapshot import diff, snapshot


def run_sync(project: Path) -> tuple[float, str, int]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mxshift", "-q", "-C", str(project), "sync"],
                          capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise SystemExit(f"sync failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    return elapsed, proc.stdout.strip(), peak_kb


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fsync", action="store_true", help="Dovecot fsyncs (default: never)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mxshift-bench-"))
    cfg = DovecotConfig(fsync=args.fsync)
    src = start_dovecot(work / "src", name="bench-src", config=cfg)
    dst = start_dovecot(work / "dst", name="bench-dst", config=cfg)
    try:
        su, sp = src.new_user("s")
        du, dp = dst.new_user("d")
        spec = CorpusSpec(seed=args.seed, messages=args.messages)
        c = src.connect(su, sp)
        t0 = time.monotonic()
        n = load(c, generate(spec), folders=folder_tree(spec))
        c.logout()
        print(f"corpus: {n} messages, {len(folder_tree(spec))} folders, loaded in "
              f"{time.monotonic() - t0:.1f}s")
        project = work / "project"
        project.mkdir()
        (project / "mxshift.toml").write_text(
            f'[source]\nhost = "127.0.0.1"\nport = {src.port}\nsecurity = "none"\n\n'
            f'[destination]\nhost = "127.0.0.1"\nport = {dst.port}\nsecurity = "none"\n')
        (work / "users.csv").write_text(
            "source_user,source_password,destination_user,destination_password\n"
            f"{su},{sp},{du},{dp}\n")
        subprocess.run([sys.executable, "-m", "mxshift", "-C", str(project), "mailboxes",
                        "import", str(work / "users.csv")], check=True, capture_output=True)
        first, out1, peak = run_sync(project)
        m = re.search(r"(\d+) copied \(([\d.]+) (\w+)\)", out1)
        print(f"full sync:      {first:7.1f}s  {out1}")
        if m:
            count = int(m.group(1))
            mib = float(m.group(2)) * {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[m.group(3)]
            print(f"                {count / first:7.1f} messages/s  {mib / first:6.1f} MiB/s")
        second, out2, peak2 = run_sync(project)
        print(f"no-change sync: {second:7.1f}s  {out2}")
        print(f"peak RSS of mxshift: {max(peak, peak2) / 1024:.0f} MiB")
        a, b = src.connect(su, sp), dst.connect(du, dp)
        differences = diff(snapshot(a), snapshot(b))
        print("destination identical to source (bytes, flags, INTERNALDATE, folders): "
              + ("yes" if not differences else f"NO: {differences[:5]}"))
        ok = not differences and " 0 copied" in out2
        return 0 if ok else 1
    finally:
        src.stop()
        dst.stop()


if __name__ == "__main__":
    sys.exit(main())
