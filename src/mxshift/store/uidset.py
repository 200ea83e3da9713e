"""UID sets as IMAP writes them ("1:5,9"), so large folders fit in one command line, and
the APPENDUID/COPYUID response codes (RFC 4315) that answer with them."""

from __future__ import annotations

import re
from typing import Iterable

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
