"""Running one tool as a process and measuring it: wall time, peak RSS, Dovecot CPU.

Why GNU time and /proc: the peak RSS of a process *and its children* is what the kernel
reports to the parent that reaps it (``ru_maxrss`` of ``wait4``), but a child forked
from this (large) Python process starts with our RSS as its high-water mark; forked from
the small ``/usr/bin/time`` it starts with that one's. A Dovecot's CPU is its
master's own time plus what it reaped from its per-connection ``imap`` processes (cutime)
plus what the live ones used so far, read from ``/proc/PID/stat``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
TIME = "/usr/bin/time"  # GNU time (Debian package "time")


def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, CPU seconds incl. reaped children) of ``pid``, None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    ppid = int(fields[1])
    ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ppid, ticks / _TICK


def dovecot_cpu(master_pid: int) -> float:
    """CPU seconds a Dovecot instance used so far: master, reaped and live children."""
    total = 0.0
    own = _stat(master_pid)
    if own is not None:
        total += own[1]
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != master_pid:
            st = _stat(int(entry))
            if st is not None and st[0] == master_pid:
                total += st[1]
    return total


def settle(master_pids: list[int], window: float = 0.2, limit: float = 5.0) -> float:
    """Wait until the Dovecots are idle (no CPU tick over ``window`` seconds, at most
    ``limit``); returns the seconds waited.

    Why: after a large copy or the correctness check's full read, a Dovecot keeps
    working for a while after the client left (0.2-0.3 CPU s seen in the next row's
    "cpu src"), and whichever tool ran next paid for it in its wall time."""
    t0 = time.monotonic()
    last = sum(dovecot_cpu(p) for p in master_pids)
    while time.monotonic() - t0 < limit:
        time.sleep(window)
        now = sum(dovecot_cpu(p) for p in master_pids)
        if now - last < 1.5 / _TICK:  # under two ticks: idle
            break
        last = now
    return time.monotonic() - t0


@dataclass
class Run:
    wall: float
    peak_rss_kb: int           # the largest process (with its children) of the run
    rss_note: str = ""         # "sum of 4" when several processes ran at once
    cpu: float = 0.0           # user + system CPU seconds of the tool's processes, summed
    outputs: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def run_processes(commands: list[list[str]], env: dict[str, str] | None = None,
                  timeout: float = 1800) -> Run:
    """Start every command at once, wait for all; wall time of the whole, RSS summed."""
    t0 = time.monotonic()
    procs = []
    logs = []
    rss_files = []
    for cmd in commands:
        log = tempfile.TemporaryFile()
        logs.append(log)
        fd, rss_file = tempfile.mkstemp(prefix="bench-rss-")
        os.close(fd)
        rss_files.append(rss_file)
        procs.append(subprocess.Popen([TIME, "-f", "%U %S %M", "-o", rss_file] + cmd, stdout=log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=env))
    rss = []
    cpu = 0.0
    failed = []
    outputs = []
    for cmd, p, log, rss_file in zip(commands, procs, logs, rss_files):
        p.wait()
        # the last line is ours ("user sys maxrss"); above it GNU time may note a signal
        text = (Path(rss_file).read_text().strip().splitlines() or [""])[-1].split()
        os.unlink(rss_file)
        rss.append(int(text[-1]) if text and text[-1].isdigit() else 0)
        cpu += sum(float(x) for x in text[:2]) if len(text) == 3 else 0.0
        log.seek(0)
        out = log.read().decode("utf-8", "replace")
        log.close()
        outputs.append(out)
        if p.returncode != 0:
            failed.append(f"{Path(cmd[0]).name} exit {p.returncode}: {out.strip()[-300:]}")
    wall = time.monotonic() - t0
    return Run(wall=wall, peak_rss_kb=sum(rss),
               rss_note=f"sum of {len(rss)}" if len(rss) > 1 else "", cpu=cpu,
               outputs=outputs, failed=failed)



def run_sequential(commands: list[list[str]], env: dict[str, str] | None = None) -> Run:
    """Run the commands one after another (a tool that handles one account per process,
    run over many accounts): wall time of all, the largest peak RSS."""
    runs = [run_processes([cmd], env) for cmd in commands]
    return Run(wall=sum(r.wall for r in runs), peak_rss_kb=max(r.peak_rss_kb for r in runs),
               rss_note="largest of one", cpu=sum(r.cpu for r in runs), outputs=[o for r in runs for o in r.outputs],
               failed=[f for r in runs for f in r.failed])


def mail_dir(on_disk: bool) -> Path:
    """A fresh directory for the Dovecots' mail: on tmpfs (/dev/shm) unless ``on_disk``
    or /dev/shm lacks room (then the temp directory).

    Why tmpfs: every message a Dovecot stores is a new Maildir file, and on an ext4
    without a journal (this VM's root) each new inode is found by scanning past every
    inode deleted in the last seconds (the kernel's ``recently_deleted``; Dovecot frees
    one per transaction: its uidlist lock). ``perf`` put 33% of all CPU samples of a
    four-mailbox copy there, and it made the destination's CPU swing 1.3-4.9 s between
    identical runs. Like ``mail_fsync = never``, this measures the tools, not the disk.
    The tools' own state (mxshift's SQLite, interimap's) and temporary files stay on disk.
    """
    shm = Path("/dev/shm")
    roomy = (not on_disk and shm.is_dir() and os.access(shm, os.W_OK)
             and os.statvfs(shm).f_bavail * os.statvfs(shm).f_frsize > 8 << 30)
    path = Path(tempfile.mkdtemp(prefix="mxshift-bench-mail-", dir=shm if roomy else None))
    os.chmod(path, 0o755)  # as the work directory: Dovecot's processes reach into it
    return path
