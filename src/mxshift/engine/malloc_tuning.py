"""glibc malloc settings for a process that copies mail: memory goes back after each batch.

Why: a copy allocates and frees message-sized ``bytes`` (2 KB to 10 MB) in several
threads. glibc serves allocations above ``M_MMAP_THRESHOLD`` with their own mapping,
returned to the system when freed, but by default it raises that threshold to the size
of each such block freed (up to 32 MB): after the first large message, every later one
comes from a heap arena (one per thread, up to 8 per core), where the freed space stays
mapped: peak RSS then follows the mix of sizes and threads, not the batch budget. Three
settings keep the process near its budget:

- a fixed mmap threshold (which also turns the adjustment off): measured
  (``bench/copy_one_mailbox.py``) four 2,000-message mailboxes at once, peak RSS
  ~170 -> ~120 MB; one 5,000-message mailbox ~115 -> ~100 MB. Why 1 MiB, not glibc's
  128 KiB: every block above it is a fresh mapping (page faults, and munmap stalls the
  other threads), and most messages are below it;
- :func:`released`: once 2 MiB of message data were given back since the last time,
  ``malloc_trim(0)`` returns the free pages inside the heaps (not only at their top: a
  batch's messages are freed in another order than they were allocated, so the holes
  never reach the top). Measured: one 5,000-message mailbox at ``batch_bytes = "8MB"``
  88 -> 80 MB, ~75 trims costing ~70 ms of the copy's ~1.5 CPU s (the threads keep
  working: ctypes releases the GIL);
- at most one heap arena per core (``M_ARENA_MAX``, at least 2; glibc's default is 8 per
  core): the copying threads (two per folder connection) otherwise each keep an arena
  with its own partly used pages; more arenas than cores only shorten waits for an arena
  lock, which the GIL already serialises for Python's allocations. The cap binds only
  arenas made after it, so sync.py tunes before it starts several mailbox threads (a
  single pass tunes at its first copy). Measured: four mailboxes at once 86 -> 82 MB,
  CPU unchanged.

A no-op where the C library is not glibc (``mallopt`` missing) or on a failure: this is
an optimisation, never a reason for a copy to fail. ``MALLOC_*`` environment variables set
by an admin win (glibc reads them at start; we then leave its settings alone, and only
trim).
"""

from __future__ import annotations

import os
import threading
from typing import Callable

# glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

#: Blocks from this size up get their own mapping (glibc's initial default: 128 KiB).
MMAP_THRESHOLD = 1024 * 1024
#: Message bytes released between two trims of the heaps.
TRIM_EVERY = 2 * 1024 * 1024

_lock = threading.Lock()
_result: bool | None = None  # None: not tried yet
_trim: Callable[[int], int] | None = None  # glibc's malloc_trim, once found
_released = 0  # bytes released since the last trim


def _admin_set() -> bool:
    return any(k.startswith("MALLOC_") for k in os.environ) or "GLIBC_TUNABLES" in os.environ


def tune() -> bool:
    """Apply the settings once per process; True when they are in force (now or before)."""
    global _result
    with _lock:
        if _result is None:
            _result = _apply(settings=not _admin_set())
        return _result


def released(size: int) -> None:
    """``size`` bytes of message data were freed (a batch is done): trim the heaps once
    ``TRIM_EVERY`` bytes were freed since the last trim. Cheap otherwise."""
    global _released
    if _trim is None:
        return
    with _lock:
        _released += size
        if _released < TRIM_EVERY:
            return
        _released = 0
    _trim(0)


def _apply(*, settings: bool) -> bool:
    # ctypes only when a copy starts (start-up cost); CDLL(None) is the process's own
    # symbols, libc's among them: no ldconfig subprocess as ctypes.util.find_library runs
    global _trim
    import ctypes
    try:
        libc = ctypes.CDLL(None)
        mallopt, trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    _trim = trim
    if not settings:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mallopt(M_ARENA_MAX, max(2, os.cpu_count() or 2))
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
