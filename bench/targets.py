"""Issue #3's targets, judged from one bench/run's rows, beside a bare client's.

Why here and not by hand in a note: the targets are relative to the peers *in the same
run*, and on this VM every tool's speed moves by up to 2x between runs. The floor rows
(bench/floor.py: a client that does nothing but move the bytes, over one and over four
connection pairs) say, for the same moment, how far the servers and the machine let a
client go. It is not a proof of a ceiling (a cleverer client might do better), but a
goal above it is a goal that even a client without a journal, checks or a parsing
library did not reach in that run.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Protocol


class RowLike(Protocol):
    step: str
    tool: str
    wall: float
    pass_s: float | None
    mbytes: float
    rss_mb: float
    differences: list[str]
    failed: list[str]
    per_mailbox_ms: float | None
    repeats: list[float]


def import_seconds(module: str, repeat: int = 3) -> float:
    """The least wall time of a fresh Python that only imports ``module``."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
        best = min(best, time.monotonic() - t0)
    return best


def _row(rows: list[RowLike], tool: str, step: str) -> RowLike | None:
    return next((r for r in rows if r.tool == tool and r.step.startswith(step)), None)


def _best_floor(rows: list[RowLike], step: str) -> float | None:
    """The floor's fastest copy of ``step`` (over one connection pair, or four)."""
    rates = [_rate(r) for r in rows if r.tool.startswith("floor") and r.step.startswith(step)]
    return max((x for x in rates if x is not None), default=None)


def _rate(r: RowLike | None) -> float | None:
    if r is None or not r.mbytes:
        return None
    t = r.pass_s or r.wall
    return r.mbytes / t if t else None


def _delta_s(r: RowLike) -> float:
    """Step 3's time: the median of its runs from the same state when it was repeated
    (bench.Bench.repeat_delta), else the one run's; mxshift's pass, a peer's process."""
    if len(r.repeats) > 1:
        return statistics.median(r.repeats)
    return r.pass_s if r.pass_s is not None else r.wall


def _of(r: RowLike) -> str:
    return f" (median of {len(r.repeats)})" if len(r.repeats) > 1 else ""


def _mbs(x: float | None) -> str:
    return f"{x:.1f} MB/s" if x is not None else "-"


def judge(rows: list[RowLike], orm_import_s: float | None) -> list[tuple[str, ...]]:
    """(target, mxshift, reference, floor, verdict) per target of the issue."""
    out: list[tuple[str, ...]] = []
    for step, factor, label in (("1 ", 1.5, "full copy >= 1.5x interimap"),
                                ("4 ", 1.3, "four mailboxes >= 1.3x interimap")):
        mx, peer = _rate(_row(rows, "mxshift", step)), _rate(_row(rows, "interimap", step))
        floor = _best_floor(rows, step)
        if mx is None or peer is None:
            continue
        goal = factor * peer
        verdict = "met" if mx >= goal else "not met"
        if floor is not None and goal > floor:
            verdict += (f" (the goal, {goal:.1f} MB/s, is above what the bare client "
                        f"reached)")
        elif floor is not None:
            verdict += f" (goal {goal:.1f} MB/s = {goal / floor:.0%} of the bare client's)"
        out.append((label, f"{_mbs(mx)} = {mx / peer:.2f}x", f"interimap {_mbs(peer)}",
                    _mbs(floor), verdict))
    mx, mb = _row(rows, "mxshift", "3 "), _row(rows, "mbsync", "3 ")
    if mx is not None and mx.pass_s is not None and mb is not None:
        mine, theirs = _delta_s(mx), _delta_s(mb)
        out.append(("delta pass no slower than mbsync", f"{mine:.3f} s{_of(mx)}",
                    f"mbsync {theirs:.3f} s{_of(mb)}", "-",
                    "met" if mine <= theirs else "not met"))
    mx, floor = _row(rows, "mxshift", "5 "), _row(rows, "floor", "5 ")
    if mx is not None and mx.per_mailbox_ms is not None:
        f = floor.per_mailbox_ms if floor is not None else None
        verdict = "met" if mx.per_mailbox_ms <= 10 else "not met"
        if f is not None and f > 10:
            verdict += " (the bare client took more than 10 ms too)"
        out.append(("no-change <= 10 ms per mailbox", f"{mx.per_mailbox_ms:.1f} ms",
                    "-", f"{f:.1f} ms" if f is not None else "-", verdict))
    starts = [r.wall - r.pass_s for r in rows if r.tool == "mxshift" and r.pass_s is not None
              and r.step[:2] in ("2 ", "3 ")]
    if starts:
        verdict = "met" if max(starts) < 0.3 else "not met"
        if orm_import_s is not None and orm_import_s >= 0.3:
            verdict += " (importing sqlalchemy.orm alone takes longer)"
        out.append(("start-up < 0.3 s", " / ".join(f"{s:.3f} s" for s in starts), "-",
                    f"import sqlalchemy.orm {orm_import_s:.3f} s"
                    if orm_import_s is not None else "-", verdict))
    mine = [r for r in rows if r.tool == "mxshift"]
    if mine:
        peak = max(r.rss_mb for r in mine)
        out.append(("peak RSS <= 80 MB", f"{peak:.0f} MB", "-", "-",
                    "met" if peak <= 80 else "not met"))
        bad = [r.step for r in mine if r.differences or r.failed]
        out.append(("every step exact", "exact" if not bad else "differs: " + ", ".join(bad),
                    "-", "-", "met" if not bad else "not met"))
    return out


def table(judged: list[tuple[str, ...]]) -> str:
    head = ("target", "mxshift", "peer", "bare client (floor.py)", "verdict")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(j) + " |" for j in judged]
    return "\n".join(lines)
