"""Measure post-cutover sweeps: an idle sweep per mailbox and a sweep carrying stray mail.

    .venv/bin/python bench/sweeps.py [--mailboxes 20] [--messages 300] [--sweeps 5]

Starts its own pair of Dovecot servers (mail_fsync = never), loads a seeded corpus of
``--messages`` per mailbox (17+ folders), runs the prestage and the cutover (no domains:
no DNS gate), then times ``--sweeps`` idle sweeps of every mailbox in one process and one
sweep after one stray message per mailbox. Prints seconds per mailbox; checks that each
stray arrived exactly once.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from mxshift.cutover import cutover
from mxshift.project import import_mailboxes, open_project
from mxshift.sync import sync
from mxshift.testbed.corpus import CorpusSpec, folder_tree, generate
from mxshift.testbed.corpus_load import load
from mxshift.testbed.dovecot import start_dovecot
from mxshift.testbed.dovecot_config import DovecotConfig


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mailboxes", type=int, default=20)
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--sweeps", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mxshift-bench-sweeps-"))
    cfg = DovecotConfig(fsync=False)
    src = start_dovecot(work / "src", name="bench-src", config=cfg)
    dst = start_dovecot(work / "dst", name="bench-dst", config=cfg)
    try:
        users = []
        spec = CorpusSpec(seed=3, messages=args.messages)
        for _ in range(args.mailboxes):
            su, sp = src.new_user("s")
            du, dp = dst.new_user("d")
            c = src.connect(su, sp)
            load(c, generate(spec), folders=folder_tree(spec))
            c.logout()
            users.append((su, sp, du, dp))
        project = work / "project"
        project.mkdir()
        (project / "mxshift.toml").write_text(
            f'[source]\nhost = "127.0.0.1"\nport = {src.port}\nsecurity = "none"\n'
            f'[destination]\nhost = "127.0.0.1"\nport = {dst.port}\nsecurity = "none"\n')
        (project / "m.csv").write_text(
            "source_user,source_password,destination_user,destination_password\n"
            + "".join(",".join(u) + "\n" for u in users))
        import_mailboxes(project, project / "m.csv")
        proj = open_project(project)
        t0 = time.monotonic()
        sync(proj)
        cutover(proj)
        print(f"{args.mailboxes} mailboxes x {args.messages} messages, "
              f"{len(folder_tree(spec))} folders: prestage + cutover {time.monotonic() - t0:.1f}s")
        for i in range(args.sweeps):
            t0 = time.monotonic()
            results = sync(proj, kind="sweep")
            wall = time.monotonic() - t0
            per = sum(r.seconds for r in results) / len(results)
            assert all(r.status == "ok" and r.copied == 0 for r in results)
            print(f"idle sweep {i + 1}: {wall:.2f}s wall for {len(results)} mailboxes, "
                  f"{per * 1000:.0f} ms per mailbox pass (login + STATUS per folder)")
        for su, sp, _, _ in users:
            c = src.connect(su, sp)
            c.append("INBOX", b"Message-ID: <stray@bench>\r\nSubject: stray\r\n"
                              b"Received: from a by mail.old.example; now\r\n\r\nhi\r\n")
            c.logout()
        t0 = time.monotonic()
        results = sync(proj, kind="sweep")
        print(f"sweep with 1 stray per mailbox: {time.monotonic() - t0:.2f}s wall, "
              f"{sum(r.copied for r in results)} copied")
        for _, _, du, dp in users:
            c = dst.connect(du, dp)
            c.select_folder("INBOX", readonly=True)
            assert len(c.search(["SUBJECT", "stray"])) == 1
            c.logout()
        print("each stray arrived exactly once; peak RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        proj.close()
    finally:
        src.stop()
        dst.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
