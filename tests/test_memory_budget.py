"""Memory of a copy: one byte budget for the whole run, and freed message memory given back.

The run-wide budget is tested on real Dovecots through ``mxshift.sync.sync`` (what the CLI
calls), measuring what the process actually allocates (tracemalloc), not the budget's own
counters; the heap trimming in a child process by its resident set.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from mxshift.project import import_mailboxes, open_project
from mxshift.sync import sync
from mxshift.testbed.snapshot import diff, snapshot

LARGE = 1_500_000  # above MULTIAPPEND_MAX: each travels alone


def _large_message(i: int) -> bytes:
    line = b"y" * 76 + b"\r\n"
    return (f"Message-ID: <big{i}@mem.test>\r\nSubject: big {i}\r\nFrom: a@mem.test\r\n\r\n"
            .encode() + line * (LARGE // len(line)))


def _project(directory: Path, src, dst, mailboxes: int, options: str):  # type: ignore[no-untyped-def]
    directory.mkdir(parents=True)
    (directory / "mxshift.toml").write_text(
        f'[source]\nhost = "127.0.0.1"\nport = {src.port}\nsecurity = "none"\n\n'
        f'[destination]\nhost = "127.0.0.1"\nport = {dst.port}\nsecurity = "none"\n\n'
        f"[options]\n{options}\n")
    rows, pairs = [], []
    for m in range(mailboxes):
        su, sp = src.new_user("mem")
        du, dp = dst.new_user("mem")
        c = src.connect(su, sp)
        for i in range(3):
            c.append("INBOX", _large_message(m * 10 + i))
        c.logout()
        rows.append(f"{su},{sp},{du},{dp}")
        pairs.append((su, sp, du, dp))
    (directory / "users.csv").write_text(
        "source_user,source_password,destination_user,destination_password\n"
        + "\n".join(rows) + "\n")
    import_mailboxes(directory, directory / "users.csv")
    return pairs


def _sync_peak(directory: Path) -> int:
    """Bytes the process allocated at most during one ``sync`` beyond what it held before."""
    proj = open_project(directory)
    try:
        tracemalloc.start()
        try:
            base, _ = tracemalloc.get_traced_memory()
            results = sync(proj)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        proj.close()
    assert [r.status for r in results] == ["ok"] * len(results), [r.error for r in results]
    return peak - base


def test_four_mailboxes_at_once_share_one_byte_budget(dovecot_src, dovecot_dst,
                                                      tmp_path: Path) -> None:
    # 4 mailboxes in flight, 3 messages of 1.5 MB each, a budget of 2 MB for the run:
    # one large message at a time fits, two do not. With a budget per pass (a quarter
    # each, a large message taking its pass's quarter) all four held one at once.
    options = 'batch_bytes = "2MB"\nmailbox_parallelism = 4\nfolder_parallelism = 1'
    warm = tmp_path / "warm"  # imports, compiled statements, caches: not the copy's
    _project(warm, dovecot_src, dovecot_dst, 1, options)
    _sync_peak(warm)
    directory = tmp_path / "p"
    pairs = _project(directory, dovecot_src, dovecot_dst, 4, options)
    peak = _sync_peak(directory)
    for su, sp, du, dp in pairs:
        a, b = dovecot_src.connect(su, sp), dovecot_dst.connect(du, dp)
        try:
            assert diff(snapshot(a), snapshot(b)) == []
        finally:
            a.logout()
            b.logout()
    assert peak < 2 * LARGE + 1_500_000, peak  # four at once would be 6 MB and more


# Allocates message-sized blocks below the mmap threshold in a thread (they come from
# that thread's heap), frees all but every 8th (the heap cannot shrink from its top), then
# reports the resident set before and after malloc_tuning.released().
TRIM_PROBE = """
import threading
from mxshift.engine import malloc_tuning
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
assert malloc_tuning.tune()
base = rss()
def work():
    blocks = [bytes(200_000) + b"x" for _ in range(200)]
    kept = blocks[::8]
    del blocks
    before = rss()
    malloc_tuning.released(40_000_000)
    print((before - base) >> 20, (rss() - base) >> 20, len(kept))
t = threading.Thread(target=work)
t.start()
t.join()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_released_message_memory_goes_back_to_the_system() -> None:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", TRIM_PROBE], env=clean,
                         capture_output=True, text=True, check=True).stdout.split()
    before, after = int(out[0]), int(out[1])
    assert before > 30  # 40 MB allocated, 35 MB of it freed, still resident
    assert after < 12, (before, after)  # the 5 MB kept, and little else


# -- per-message state of a scan (pure) ---------------------------------------------------
def test_equal_flag_lists_share_one_frozenset() -> None:
    from mxshift.store.imap import _flags

    a = _flags((b"\\Seen", b"\\Recent", b"$Label1"))
    b = _flags((b"\\Seen", b"\\Recent", b"$Label1"))
    assert a == frozenset({"\\Seen", "$Label1"}) and a is b
    assert _flags([b"\\Seen", b"$Label1"]) == a  # a list is read like a tuple
    assert _flags(()) == frozenset()


def test_a_new_message_carries_no_instance_dict() -> None:
    from mxshift.engine.copier import NewMessage

    m = NewMessage(uid=1, size=10, fingerprint="f" * 40, strong=True, subject="s")
    assert not hasattr(m, "__dict__")
    with pytest.raises(AttributeError):
        m.uid = 2  # type: ignore[misc]
