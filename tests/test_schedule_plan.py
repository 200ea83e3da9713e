"""The timeline's pure logic: what is due at a given moment, catch-up, the sweep window."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mxshift.schedule.plan import Plan, Run, format_duration, outlook, parse_duration
from mxshift.strays import TrendPoint, receiving_hop, summary, trend

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
H = timedelta(hours=1)


def plan(**kw) -> Plan:  # type: ignore[no-untyped-def]
    base = dict(start_at=T0, delta_interval=24 * H, cutover_at=T0 + 50 * H,
                sweep_interval=H, sweep_window=48 * H)
    base.update(kw)
    return Plan(**base)  # type: ignore[arg-type]


def ran(kind: str, at: datetime, status: str = "ok") -> Run:
    return Run(kind, at, status, at, at + timedelta(minutes=5))


def test_prestage_is_due_at_its_start_and_not_before() -> None:
    assert outlook(plan(), [], T0 - H).due is None
    assert outlook(plan(), [], T0 - H).phase == "planning"
    look = outlook(plan(), [], T0)
    assert (look.due.kind, look.due.due_at) == ("prestage", T0)  # type: ignore[union-attr]


def test_a_manual_first_pass_counts_as_the_prestage() -> None:
    look = outlook(plan(first_pass_at=T0 + H), [], T0 + 2 * H)
    assert look.due is None and look.phase == "delta"
    assert look.slots[0].status == "done" and look.slots[0].trigger == "manual"
    assert look.next_at == T0 + 25 * H  # deltas are anchored at the first pass


def test_deltas_then_final_then_sweeps() -> None:
    p = plan(first_pass_at=T0)
    runs = [ran("prestage", T0)]
    assert outlook(p, runs, T0 + 23 * H).due is None
    look = outlook(p, runs, T0 + 24 * H)
    assert (look.due.kind, look.due.due_at) == ("delta", T0 + 24 * H)  # type: ignore[union-attr]
    runs += [ran("delta", T0 + 24 * H), ran("delta", T0 + 48 * H)]
    look = outlook(p, runs, T0 + 50 * H)
    assert (look.due.kind, look.due.due_at) == ("final", T0 + 50 * H)  # type: ignore[union-attr]
    # no delta slot at or after the cutover
    assert [s.due_at for s in look.slots if s.kind == "delta"] == [T0 + 24 * H, T0 + 48 * H]
    done = plan(first_pass_at=T0, cutover_done_at=T0 + 50 * H)
    runs.append(ran("final", T0 + 50 * H))
    look = outlook(done, runs, T0 + 50 * H + 30 * timedelta(minutes=1))
    assert look.due is None and look.phase == "sweeping"
    assert look.next_at == T0 + 51 * H
    sweeps = [s for s in look.slots if s.kind == "sweep"]
    assert len(sweeps) == 48 and sweeps[-1].due_at == T0 + 98 * H


def test_catch_up_runs_only_the_latest_missed_slot() -> None:
    p = plan(first_pass_at=T0, cutover_done_at=T0 + 50 * H)
    runs = [ran("prestage", T0), ran("final", T0 + 50 * H)] + [
        ran("sweep", T0 + (50 + i) * H) for i in range(1, 5)]
    look = outlook(p, runs, T0 + 61 * H + timedelta(minutes=10))
    assert look.due is not None and look.due.due_at == T0 + 61 * H and look.catch_up
    missed = [s.due_at for s in look.slots if s.status == "missed" and s.kind == "sweep"]
    assert missed == [T0 + (50 + i) * H for i in range(5, 11)]


def test_an_interrupted_slot_is_resumed_a_running_one_blocks() -> None:
    p = plan(first_pass_at=T0, cutover_done_at=T0 + 50 * H)
    base = [ran("prestage", T0), ran("final", T0 + 50 * H)]
    look = outlook(p, base + [ran("sweep", T0 + 51 * H, "interrupted")], T0 + 51 * H + H / 2)
    assert look.due is not None and look.due.trigger == "resume"
    look = outlook(p, base + [ran("sweep", T0 + 51 * H, "running")], T0 + 51 * H + H / 2)
    assert look.due is None


def test_sweep_window_ends_early_or_extends() -> None:
    p = plan(first_pass_at=T0, cutover_done_at=T0 + 50 * H, sweep_ended_at=T0 + 55 * H)
    runs = [ran("prestage", T0), ran("final", T0 + 50 * H)]
    look = outlook(p, runs, T0 + 56 * H)
    assert look.phase == "swept"
    assert max(s.due_at for s in look.slots if s.kind == "sweep") == T0 + 55 * H
    longer = plan(first_pass_at=T0, cutover_done_at=T0 + 50 * H, sweep_window=72 * H)
    assert len([s for s in outlook(longer, runs, T0 + 60 * H).slots if s.kind == "sweep"]) == 72


def test_final_waits_for_the_prestage() -> None:
    look = outlook(plan(cutover_at=T0 - H), [], T0)
    assert look.due is not None and look.due.kind == "prestage"


@pytest.mark.parametrize("text,seconds", [("24h", 86400), ("60m", 3600), ("90s", 90),
                                          ("2d", 172800), ("1h30m", 5400)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


@pytest.mark.parametrize("bad", ["", "24", "h", "0h", "1x", "-1h"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_stray_trend_and_its_summary() -> None:
    arrivals = [T0 + timedelta(minutes=5)] * 12 + [T0 + timedelta(minutes=70)] * 3
    points = trend(arrivals, T0, T0 + 6 * H)
    assert points[:3] == [TrendPoint(1, 12), TrendPoint(2, 3), TrendPoint(3, 0)]
    assert len(points) == 7
    assert summary(points) == "12 stray messages in hour 1, 3 in hour 2, 0 since hour 3"
    assert summary([TrendPoint(1, 0)]) == "no stray messages since the cutover"
    assert summary(trend([T0 + 2 * H], T0, T0 + 2 * H)) == "1 stray message in hour 3"


def test_receiving_hop_is_the_topmost_received_header() -> None:
    headers = (b"Received: from mx.sender.example (mx.sender.example [192.0.2.1])\r\n"
               b"\tby mail.oldhost.example (Postfix) with ESMTPS id 4F;\r\n"
               b"\tTue, 1 Dec 2026 09:00:00 +0000\r\n"
               b"Received: from laptop by mx.sender.example; Tue, 1 Dec 2026\r\n")
    assert receiving_hop(headers) == "by mail.oldhost.example from mx.sender.example"
    assert receiving_hop(b"") is None
