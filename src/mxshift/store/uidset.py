"""UID sets as IMAP writes them ("1:5,9"), so large folders fit in one command line, and
the APPENDUID/COPYUID response codes (RFC 4315) that answer with them."""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Collection, Iterable, Iterator

_UIDPLUS_RE = re.compile(rb"\[(APPENDUID|COPYUID) (\d+) ([\d:,]+)(?: ([\d:,]+))?\]", re.I)


def compress_uids(uids: Iterable[int]) -> str:
    """``[1, 2, 3, 5]`` -> ``"1:3,5"``; input need not be sorted or unique."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("empty UID set")
    parts: list[str] = []
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = uid
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


class UidRuns(Collection[int]):
    """A set of UIDs held as runs of consecutive ones, e.g. the journalled UIDs of a
    folder as the state database returns them (``Journal.uid_runs``).

    Why: a delta's QRESYNC request names the UIDs it knows, and a large folder's are a
    few runs; reading them as runs (one row per run, in SQL) and writing them as runs
    costs what the runs are, not one Python object per message (issue #3: "cost grows
    with the changes, not with the mailbox")."""

    def __init__(self, runs: Iterable[tuple[int, int]]) -> None:
        merged: list[tuple[int, int]] = []
        for a, b in sorted(runs):  # overlapping or touching runs (a UID twice) merge
            if merged and a <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            else:
                merged.append((a, b))
        self.runs = merged
        self._starts = [a for a, _ in self.runs]
        self._count = sum(b - a + 1 for a, b in self.runs)

    def __contains__(self, uid: object) -> bool:
        if not isinstance(uid, int):
            return False
        i = bisect_right(self._starts, uid) - 1
        return i >= 0 and uid <= self.runs[i][1]

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[int]:
        for a, b in self.runs:
            yield from range(a, b + 1)

    @property
    def highest(self) -> int:
        """The highest UID, 0 when empty."""
        return self.runs[-1][1] if self.runs else 0

    def text(self) -> str:
        """As IMAP writes a set (``compress_uids``'s form): ``"1:3,5"``."""
        if not self.runs:
            raise ValueError("empty UID set")
        return ",".join(f"{a}:{b}" if b != a else str(a) for a, b in self.runs)


def highest_uid(uids: Iterable[int]) -> int:
    """The highest of ``uids`` (0 when empty), without a walk over a :class:`UidRuns`."""
    return uids.highest if isinstance(uids, UidRuns) else max(uids, default=0)


def expand_uid_set(text: str) -> list[int]:
    """``"3:5,9"`` -> ``[3, 4, 5, 9]`` (as APPENDUID/COPYUID write them)."""
    out: list[int] = []
    for part in text.split(","):
        if ":" in part:
            a, b = (int(x) for x in part.split(":"))
            lo, hi = min(a, b), max(a, b)
            out.extend(range(lo, hi + 1))
        else:
            out.append(int(part))
    return out


def parse_uidplus(text: bytes | str) -> tuple[str, int, list[int], list[int]] | None:
    """Parse an APPENDUID or COPYUID response code -> (kind, uidvalidity, src, dst)."""
    data = text if isinstance(text, bytes) else text.encode()
    m = _UIDPLUS_RE.search(data)
    if not m:
        return None
    kind = m.group(1).decode().upper()
    if kind == "APPENDUID":
        return kind, int(m.group(2)), [], expand_uid_set(m.group(3).decode())
    return kind, int(m.group(2)), expand_uid_set(m.group(3).decode()), \
        expand_uid_set((m.group(4) or b"").decode())
