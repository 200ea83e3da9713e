"""How fast a minimal IMAP-to-IMAP copier (no tool around it) goes on this machine.

    .venv/bin/python bench/ceiling.py [--messages 5000] [--mailboxes 4 --per-mailbox 2000]
        [--repeat 2] [--mail-on-disk]

Why: issue #3 states its speed targets against "the ceiling any tool can reach here":
how fast the destination Dovecot accepts mail over one and over four connections. On
another machine that ceiling was 84 and 150 MB/s and interimap copied at 55; whether a
target relative to interimap can be met depends on where interimap sits below the
ceiling of *this* machine. This measures a stand-in for it (a minimal client, not a
proof that no client goes faster), with the same Dovecot pair, configuration and corpus
as ``bench/run``; ``bench/run`` runs the same copier (bench/floor.py) beside the peers:

* **accept**: the destination alone. Each connection's messages are fetched beforehand
  (not timed); then one MULTIAPPEND per batch (8 MB / 256 KB per message, as mxshift
  batches; larger messages alone), LITERAL+, sent back to back on a raw socket, the
  answers read at the end. The copier's CPU is a ``sendall`` per batch.
* **copy**: source to destination, streaming: ``UID FETCH 1:* (FLAGS INTERNALDATE
  BODY.PEEK[])`` per folder read with a buffered socket and one regex per message, each
  literal read into a buffer and sent on as a MULTIAPPEND part. This is a copy with no
  journal, no hash, no line-end check, no parsing library: the least CPU a copier can
  spend, so what is left is the two Dovecots' work on two shared cores.

Each connection runs in its own process (no GIL shared), one mailbox over one
connection, one mailbox's folders over four, and ``--mailboxes`` mailboxes at once, one
connection each. Printed: wall seconds, MB/s, the copier's CPU, each Dovecot's CPU, and
whether each destination equals its source (``testbed.snapshot.diff``).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accounts import Account, compare  # noqa: E402
from floor import Conn, append_batches, messages, send_appends  # noqa: E402
from imapclient.imap_utf7 import encode as utf7  # noqa: E402
from measure import dovecot_cpu, mail_dir  # noqa: E402

from mxshift.testbed.corpus import CorpusSpec, folder_tree, generate  # noqa: E402
from mxshift.testbed.corpus_load import load  # noqa: E402
from mxshift.testbed.dovecot import start_dovecot  # noqa: E402
from mxshift.testbed.dovecot_config import DovecotConfig  # noqa: E402


def quoted(name: str) -> bytes:
    return b'"' + utf7(name).replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def worker(mode: str, src: tuple, dst: tuple, folders: list[str], ready, go, out) -> None:
    s, d = Conn(*src), Conn(*dst)
    if mode == "accept":
        commands = [c for f in folders
                    for c in append_batches(list(messages(s, quoted(f))), quoted(f))]
        ready.wait()
        go.wait()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        send_appends(d, commands)
    else:
        ready.wait()
        go.wait()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        for f in folders:
            send_appends(d, append_batches(messages(s, quoted(f)), quoted(f)))
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    out.put((cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime))


def split(folders: list[tuple[str, int]], n: int) -> list[list[str]]:
    """Folders into ``n`` groups of about equal bytes (largest first, to the lightest)."""
    groups: list[tuple[int, list[str]]] = [(0, []) for _ in range(n)]
    for name, size in sorted(folders, key=lambda x: -x[1]):
        i = min(range(n), key=lambda k: groups[k][0])
        groups[i] = (groups[i][0] + size, groups[i][1] + [name])
    return [g for _, g in groups if g]


def run(mode: str, jobs: list[tuple[tuple, tuple, list[str]]], srv) -> tuple[float, float]:
    """Wall seconds and copier CPU of ``jobs`` (one process each) started together."""
    ctx = mp.get_context("fork")
    ready, go = ctx.Barrier(len(jobs) + 1), ctx.Barrier(len(jobs) + 1)
    out = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(mode, s, d, f, ready, go, out))
             for s, d, f in jobs]
    for p in procs:
        p.start()
    ready.wait()
    cpu0 = [dovecot_cpu(x.pid) for x in srv]
    t0 = time.monotonic()
    go.wait()
    cpu = sum(out.get() for _ in procs)
    wall = time.monotonic() - t0
    for p in procs:
        p.join()
    return wall, cpu, [dovecot_cpu(x.pid) - c for x, c in zip(srv, cpu0)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--mailboxes", type=int, default=4)
    ap.add_argument("--per-mailbox", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--mail-on-disk", action="store_true")
    args = ap.parse_args()
    mail = mail_dir(args.mail_on_disk)
    cfg = DovecotConfig(fsync=False)
    src = start_dovecot(mail / "src", name="ceil-src", config=cfg)
    dst = start_dovecot(mail / "dst", name="ceil-dst", config=cfg)
    try:
        def loaded(seed: int, count: int):
            user = src.new_user("s")
            spec = CorpusSpec(seed=seed, messages=count)
            c = src.connect(*user)
            load(c, generate(spec), folders=folder_tree(spec))
            sizes = {}
            names = [name for _f, _sep, name in c.list_folders()]
            for name in names:
                st = c.folder_status(name, ["MESSAGES"])
                if st[b"MESSAGES"]:
                    c.select_folder(name, readonly=True)
                    sizes[name] = sum(v[b"RFC822.SIZE"] for v in
                                      c.fetch(c.search("ALL"), ["RFC822.SIZE"]).values())
            c.logout()
            return user, sizes, names

        one = loaded(1, args.messages)
        many = [loaded(1 + i, args.per_mailbox) for i in range(args.mailboxes)]
        print(f"{'mode':7} {'case':28} {'wall s':>7} {'MB/s':>7} {'cpu copier':>10} "
              f"{'cpu src':>7} {'cpu dst':>7}  check")
        ok = True
        for _ in range(args.repeat):
            for mode in ("accept", "copy"):
                cases = [
                    ("one mailbox, 1 connection", [one], 1),
                    ("one mailbox, 4 connections", [one], 4),
                    (f"{args.mailboxes} mailboxes, 1 conn. each", many, 1),
                ]
                for label, boxes, per in cases:
                    jobs, pairs, total = [], [], 0
                    for (su, sizes, names) in boxes:
                        du = dst.new_user("d")
                        c = dst.connect(*du)
                        for name in sorted(names, key=len):  # parents first
                            if name.upper() != "INBOX":
                                c.create_folder(name)
                        c.logout()
                        total += sum(sizes.values())
                        pairs.append((su, du))
                        for group in split(list(sizes.items()), per):
                            jobs.append(((src.port, *su), (dst.port, *du), group))
                    wall, cpu, (cs, cd) = run(mode, jobs, (src, dst))
                    differences = [d for su, du in pairs
                                   for d in compare(Account(src, *su), Account(dst, *du))]
                    ok = ok and not differences
                    print(f"{mode:7} {label:28} {wall:7.3f} {total / 1e6 / wall:7.1f} "
                          f"{cpu:10.2f} {cs:7.2f} {cd:7.2f}  "
                          + ("exact" if not differences else f"{len(differences)} diff"),
                          flush=True)
        return 0 if ok else 1
    finally:
        src.stop()
        dst.stop()
        shutil.rmtree(mail, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
