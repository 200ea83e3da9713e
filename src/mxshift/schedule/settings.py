"""``[schedule]`` in mxshift.toml: the planned timeline of the migration.

Times must carry a timezone offset (``2026-12-05T18:00:00+01:00`` or ``...Z``): an admin in
Berlin planning a cutover for a customer in New York must not get a silent guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from mxshift.config_table import _Table

# mxshift.schedule.plan (parse_duration) is imported when a duration is given: every
# command loads the config, few have a [schedule] (start-up time, tests/test_startup.py).


@dataclass(frozen=True)
class ScheduleSettings:
    prestage_at: datetime | None = None
    delta_interval: timedelta = timedelta(hours=24)
    cutover_at: datetime | None = None
    sweep_interval: timedelta = timedelta(minutes=60)
    sweep_window: timedelta = timedelta(hours=48)
    cutover_retry: timedelta = timedelta(minutes=15)  # a cutover refused by DNS is retried


def parse_time(value: Any) -> datetime:
    """A TOML datetime or an ISO 8601 string, with an offset; returned in UTC."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise ValueError(f"{value!r} is not a time like 2026-12-05T18:00:00+01:00") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        raise ValueError(f"{value} is a date without a time; give a time and offset, like "
                         f"{value}T18:00:00+01:00")
    if not isinstance(value, datetime):
        raise ValueError(f"must be a time like 2026-12-05T18:00:00+01:00, got {value!r}")
    if value.tzinfo is None:
        raise ValueError(f"{value.isoformat()} has no timezone; add an offset such as +01:00 "
                         "or Z")
    return value.astimezone(timezone.utc)


def parse_schedule(t: _Table) -> ScheduleSettings:
    t.allow("prestage_at", "delta_interval", "cutover_at", "sweep_interval", "sweep_window",
            "cutover_retry")
    values: dict[str, Any] = {}
    for name in ("prestage_at", "cutover_at"):
        if name in t.data:
            try:
                values[name] = parse_time(t.get(name))
            except ValueError as exc:
                raise t.fail(name, str(exc)) from None
    for name in ("delta_interval", "sweep_interval", "sweep_window", "cutover_retry"):
        if name in t.data:
            raw = t.get(name)
            if not isinstance(raw, str):
                raise t.fail(name, f"must be a duration string like \"24h\", got {raw!r}")
            from mxshift.schedule.plan import parse_duration

            try:
                values[name] = parse_duration(raw)
            except ValueError as exc:
                raise t.fail(name, str(exc)) from None
    return ScheduleSettings(**values)
