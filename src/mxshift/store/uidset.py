"""UID sets as IMAP writes them ("1:5,9"), so large folders fit in one command line."""

from __future__ import annotations

from typing import Iterable


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
