"""glibc malloc settings for copies: freed message memory goes back to the system."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Frees 31 of 32 message-sized blocks (2 MiB each, keeping the last one) after an earlier
# larger block was freed, which raises glibc's default mmap threshold: untuned, the 62 MB
# stay in the heap under the kept block; tuned, each block had its own mapping.
PROBE = """
from mxshift.engine import malloc_tuning
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
tuned = malloc_tuning.tune()
assert malloc_tuning.tune() is tuned  # once per process, same answer
a = b"y" * (4 << 20); del a
base = rss()
blocks = [b"x" * (2 << 20) for _ in range(32)]
keep = blocks[-1]
del blocks
print(tuned, (rss() - base) // (1 << 20))
"""


def _probe(**env: str) -> tuple[bool, int]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env},
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_tuned_process_returns_freed_message_memory() -> None:
    tuned, kept_mb = _probe()
    assert tuned
    assert kept_mb < 16


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_an_admins_malloc_settings_are_left_alone() -> None:
    tuned, kept_mb = _probe(MALLOC_CHECK_="0")
    assert not tuned
    assert kept_mb > 32  # glibc's own behaviour: what the tuning is for
