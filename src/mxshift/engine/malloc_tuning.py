"""glibc malloc settings for a process that copies mail: memory goes back after each batch.

Why: a copy allocates and frees message-sized ``bytes`` (2 KB to 10 MB) in several
threads. glibc serves allocations above ``M_MMAP_THRESHOLD`` with their own mapping,
returned to the system when freed, but by default it raises that threshold to the size
of each such block freed (up to 32 MB): after the first large message, every later one
comes from a heap arena (one per thread, up to 8 per core), where the freed space stays
mapped: peak RSS then follows the mix of sizes and threads, not the batch budget. A fixed
threshold (which also turns the adjustment off) keeps the process near its budget:
measured (``bench/copy_one_mailbox.py``) four 2,000-message mailboxes at once, peak RSS
~170 -> ~120 MB; one 5,000-message mailbox ~115 -> ~100 MB. Why 1 MiB, not glibc's
128 KiB: every block above it is a fresh mapping (page faults, and munmap stalls the other
threads), and most messages are below it. Why not also cap the arenas
(``M_ARENA_MAX``): with a dozen copying threads that made passes slower at times, for
no further saving.

A no-op where the C library is not glibc (``mallopt`` missing) or on a failure: this is
an optimisation, never a reason for a copy to fail. ``MALLOC_*`` environment variables set
by an admin win (glibc reads them at start; we then leave its settings alone).
"""

from __future__ import annotations

import os
import threading

# glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3

#: Blocks from this size up get their own mapping (glibc's initial default: 128 KiB).
MMAP_THRESHOLD = 1024 * 1024

_lock = threading.Lock()
_result: bool | None = None  # None: not tried yet


def _admin_set() -> bool:
    return any(k.startswith("MALLOC_") for k in os.environ) or "GLIBC_TUNABLES" in os.environ


def tune() -> bool:
    """Apply the settings once per process; True when they are in force (now or before)."""
    global _result
    with _lock:
        if _result is None:
            _result = False if _admin_set() else _apply()
        return _result


def _apply() -> bool:
    # ctypes only when a copy starts (start-up cost); CDLL(None) is the process's own
    # symbols, libc's among them: no ldconfig subprocess as ctypes.util.find_library runs
    import ctypes
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
