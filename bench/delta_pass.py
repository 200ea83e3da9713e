"""Steps 2 and 3 of bench/run for mxshift alone, repeated from the same starting point,
with the IMAP commands and journal transactions of each pass counted.

    .venv/bin/python bench/delta_pass.py [--messages 5000] [--repeat 5] [--profile FILE]
    .venv/bin/python bench/delta_pass.py --many 100 [--repeat 5] [--parallelism 1
                                          --profile-no-change FILE]

Why a script of its own: a no-change pass and the issue's delta pass (100 new / 200 flag
changes / 50 deletions / 20 moves) last a fraction of a second, so one run of each says
little on a shared 2-core machine. Here the full copy runs once; the destination's
Maildir and the state database are then saved and put back before every repetition, so
each delta pass starts from the very same state. Passes run in this process (the pass
itself, no start-up), through the same ``sync()`` the CLI calls, so the commands each
connection sends can be counted by verb (imaplib's ``send``). Printed per step: pass
time (median and best), CPU seconds of this process, commands per verb, journal
transactions, and whether the destination equals the source afterwards.

``--many N`` is step 5 alone: per-mailbox pass time, this process's CPU and the source
Dovecot's CPU per mailbox (the step is CPU-bound on two cores, so both count);
``--profile-no-change`` there writes a CPU-time profile (thread time: waits on the
servers count nothing) of the passes, which needs ``--parallelism 1`` since cProfile
sees only the thread that enabled it.
"""

from __future__ import annotations

import argparse
import cProfile
import imaplib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accounts import change_source, clone, compare, empty, seeded, start_pair  # noqa: E402
from measure import mail_dir  # noqa: E402
from peers import mxshift_project  # noqa: E402

from mxshift.engine.journal import Hooks  # noqa: E402
from mxshift.testbed.corpus import CorpusSpec  # noqa: E402
from mxshift.testbed.dovecot import stop_servers  # noqa: E402

COMMANDS: Counter[str] = Counter()
# A "round trip": commands sent after the last answer was read, counted once per
# connection (pipelined commands share one).
_read_since_send: dict[int, bool] = {}
TRACE = bool(os.environ.get("MXSHIFT_BENCH_TRACE"))  # print every command line sent
_T0 = [0.0]  # when the traced pass started
_send = imaplib.IMAP4.send
_readline = imaplib.IMAP4.readline


def _counting_readline(self: imaplib.IMAP4) -> bytes:
    _read_since_send[id(self)] = True
    return _readline(self)


def _counting_send(self: imaplib.IMAP4, data: bytes) -> None:
    """Count every tagged command line by its verb ("UID STORE", "EXAMINE", ...)."""
    if data.startswith(self.tagpre):
        words = data.split(b"\r\n", 1)[0].split(b" ", 3)[1:3]
        verb = words[0].decode("ascii", "replace").upper()
        if verb == "UID" and len(words) > 1:
            verb += " " + words[1].decode("ascii", "replace").upper()
        COMMANDS[verb] += 1
        if _read_since_send.get(id(self), True):
            COMMANDS["(round trips)"] += 1
        _read_since_send[id(self)] = False
        if TRACE:
            line = data.split(b"\r\n", 1)[0][:100].decode("ascii", "replace")
            if verb in ("LOGIN", "AUTHENTICATE"):  # the test accounts' passwords stay out
                line = line.split(verb, 1)[0] + verb + " ***"
            print(f"   > {(time.monotonic() - _T0[0]) * 1000:7.1f} ms", self.port, line)
    _send(self, data)


class CountJournal(Hooks):
    def __init__(self) -> None:
        self.labels: Counter[str] = Counter()

    def checkpoint(self, label: str) -> None:
        self.labels[label] += 1
        if TRACE:
            print(f"   . {(time.monotonic() - _T0[0]) * 1000:7.1f} ms checkpoint {label}")


def one_pass(project: Path, profile: cProfile.Profile | None = None
             ) -> tuple[float, float, Counter[str], Counter[str], str]:
    from mxshift.project import open_project
    from mxshift.sync import sync

    proj = open_project(project)
    hooks = CountJournal()
    COMMANDS.clear()
    if TRACE:
        print("== pass", flush=True)
        _T0[0] = time.monotonic()
    cpu0 = time.process_time()
    if profile is not None:
        profile.enable()
    try:
        results = sync(proj, hooks=hooks)
    finally:
        if profile is not None:
            profile.disable()
    cpu = time.process_time() - cpu0
    proj.db.dispose()
    for bad in [r for r in results if r.status != "ok"][:3]:
        print(f"   pass {bad.status}: {bad.mailbox}: {bad.error} {bad.notes[:3]}")
    r = results[0]
    summary = (f"{r.status}: {r.copied} copied, {r.moved} moved, {r.flags_updated} flags, "
               f"{r.deleted} deleted")
    return r.seconds, cpu, Counter(COMMANDS), hooks.labels, summary


def many_no_change(src_server, dst_server, work: Path, count: int, seed: int,  # type: ignore[no-untyped-def]
                   repeat: int, profile_to: str | None = None, parallelism: int = 4) -> None:
    """Step 5 of bench/run: a no-change pass over ``count`` mailboxes (100 small messages
    each) in one run, after a first copy that is not measured; per-mailbox time is the
    span of the passes (first start to last end) over ``count``. cProfile sees only the
    thread that enables it: profile with ``parallelism`` 1 (the passes then run in it)."""
    from peers import mxshift_pass_seconds

    base = seeded(src_server, "c", CorpusSpec(seed=seed + 2, messages=100,
                                              size_profile="small"))
    pairs = [(clone(base, "mxc"), empty(dst_server, "mxc")) for _ in range(count)]
    project = work / "many"
    mxshift_project(project, pairs, f"mailbox_parallelism = {parallelism}\n")
    one_pass(project)
    _span, _sum, last = mxshift_pass_seconds(project, 0)
    from measure import dovecot_cpu

    spans, cpus, dovecots = [], [], []
    # CPU time of the thread (waits on the servers count nothing): where mxshift's own
    # CPU per mailbox goes, which is what this CPU-bound step is short of.
    profile = cProfile.Profile(time.thread_time) if profile_to else None
    for _ in range(repeat):
        dovecot0 = dovecot_cpu(src_server.pid)
        _s, cpu, cmds, _j, _summary = one_pass(project, profile)
        dovecots.append(dovecot_cpu(src_server.pid) - dovecot0)
        span, _sum, last = mxshift_pass_seconds(project, last)
        spans.append(span)
        cpus.append(cpu)
    print(f"no change x{count}: {statistics.median(spans) / count * 1000:.1f} ms per mailbox "
          f"median, {min(spans) / count * 1000:.1f} best (of {repeat}); CPU "
          f"{statistics.median(cpus) / count * 1000:.1f} ms per mailbox (source Dovecot "
          f"{statistics.median(dovecots) / count * 1000:.1f}); "
          f"{(sum(cmds.values()) - cmds['(round trips)']) / count:.0f} IMAP commands per mailbox")
    if profile is not None and profile_to:
        profile.dump_stats(profile_to)


def attach_spy(to: str) -> subprocess.Popen[bytes]:
    """py-spy recording this process until SIGINT: the stack of whichever thread holds
    the GIL (``--gil``), i.e. where its CPU goes. The restores between passes are
    ``cp`` children, not sampled."""
    spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-r", "500", "--gil",
                            "-f", "raw", "-o", to, "--pid", str(os.getpid())],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached before the first pass
    return spy


def save(paths: list[Path], to: Path) -> None:
    if to.exists():
        shutil.rmtree(to)
    to.mkdir(parents=True)
    for i, p in enumerate(paths):
        subprocess.run(["cp", "-a", str(p), str(to / str(i))], check=True)


def restore(paths: list[Path], frm: Path) -> None:
    for i, p in enumerate(paths):
        shutil.rmtree(p)
        subprocess.run(["cp", "-a", str(frm / str(i)), str(p)], check=True)


def report(step: str, runs: list[tuple[float, float, Counter[str], Counter[str], str]]) -> None:
    secs = [r[0] for r in runs]
    cpus = [r[1] for r in runs]
    cmds, journal = runs[-1][2], runs[-1][3]
    tx = sum(n for label, n in journal.items() if label.startswith("journal"))
    print(f"{step}: pass {statistics.median(secs) * 1000:.1f} ms median, "
          f"{min(secs) * 1000:.1f} best (of {len(runs)}); CPU {statistics.median(cpus):.3f} s; "
          f"{sum(cmds.values()) - cmds['(round trips)']} IMAP commands in "
          f"{cmds['(round trips)']} round trips, {tx} journal transactions; {runs[-1][4]}")
    print("   commands: " + ", ".join(f"{k} {v}" for k, v in sorted(cmds.items())))
    print("   journal:  " + ", ".join(f"{k} {v}" for k, v in sorted(journal.items())))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--profile", help="write a cProfile of the delta passes to this file")
    ap.add_argument("--profile-no-change", help="write a cProfile of the no-change passes")
    ap.add_argument("--spy", help="py-spy --gil (raw stacks of the thread holding the GIL, "
                                  "any thread) of the delta passes into this file: "
                                  "cProfile sees one thread only")
    ap.add_argument("--many", type=int, default=0,
                    help="only step 5: a no-change pass over this many small mailboxes")
    ap.add_argument("--parallelism", type=int, default=4,
                    help="with --many: mailbox_parallelism (1 to profile the passes)")
    ap.add_argument("--options", default="",
                    help="[options] lines for the delta project, ';'-separated "
                         "(e.g. 'folder_parallelism = 2')")
    ap.add_argument("--mail-on-disk", action="store_true",
                    help="Dovecots' mail in the temp directory, not on tmpfs (measure.mail_dir)")
    args = ap.parse_args()
    imaplib.IMAP4.send = _counting_send  # type: ignore[method-assign]
    imaplib.IMAP4.readline = _counting_readline  # type: ignore[method-assign]
    work = Path(tempfile.mkdtemp(prefix="mxshift-delta-"))
    mail = mail_dir(args.mail_on_disk)
    src_server, dst_server = start_pair(mail)
    try:
        if args.many:
            many_no_change(src_server, dst_server, work, args.many, args.seed, args.repeat,
                           args.profile_no_change, args.parallelism)
            return 0
        t0 = time.monotonic()
        base = seeded(src_server, "a", CorpusSpec(seed=args.seed, messages=args.messages))
        src = clone(base, "mxa")
        dst = empty(dst_server, "mxa")
        project = work / "project"
        mxshift_project(project, [(src, dst)],
                        "".join(f"{o.strip()}\n" for o in args.options.split(";") if o.strip()))
        print(f"corpus of {args.messages} loaded in {time.monotonic() - t0:.0f}s", flush=True)
        full = one_pass(project)
        print(f"full copy: {full[0]:.2f} s, {full[4]}")
        quiet = cProfile.Profile() if args.profile_no_change else None
        report("no change", [one_pass(project, quiet) for _ in range(args.repeat)])
        if quiet is not None:
            quiet.dump_stats(args.profile_no_change)
        print("   exact" if not compare(src, dst) else "   NOT EXACT")
        change_source(src, seed=args.seed + 100)
        keep = [dst_server.home(dst.user), project]
        save(keep, work / "saved")
        runs = []
        profile = cProfile.Profile() if args.profile else None
        spy = attach_spy(args.spy) if args.spy else None
        for i in range(args.repeat):
            if i:
                restore(keep, work / "saved")
            runs.append(one_pass(project, profile))
            differences = compare(src, dst)
            if differences:
                print(f"   NOT EXACT after delta {i}: {differences[:5]}")
                return 1
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait()
        report("delta 100/200/50/20", runs)
        print("   exact")
        report("no change after delta", [one_pass(project) for _ in range(args.repeat)])
        if profile is not None:
            profile.dump_stats(args.profile)
        return 0
    finally:
        stop_servers(src_server, dst_server)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(mail, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
