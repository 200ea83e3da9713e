"""How many connections a throttled server gets: lower the cap at once, recover slowly.

Why its own (pure) module: a server that answers "Request is throttled" or "Too many
simultaneous connections" is telling us that *all of us together* ask too much; waiting
alone (store/throttle.py) does not help if every connection then comes back at once. The
limiters (engine/limits.py in one process, runners/redis_limits.py across workers) keep
one :class:`Lowered` state per server and ask this module what the cap is now; the rule is
the same everywhere and is tested without a server or a clock.

The rule is AIMD, as in TCP congestion control:

* **cut in half** on a throttle (multiplicative decrease, minimum 1). The server's real
  limit is unknown (Microsoft 365 throttles on a per-user budget, not a fixed count);
  halving gets under it in a few steps however far above it we were, where "minus one"
  would need many throttles (each costing a wait) to get there. The base is the smaller
  of the current cap and the connections in use: with a cap of 10 and 2 in use, the server
  complained about 2, so 10 -> 5 would change nothing.
* **settle**: throttles within ``settle`` seconds of a cut do not cut again. Several
  connections opened before the cut are throttled at about the same moment; counting each
  would drop a cap of 8 to 1 for one episode. They do restart the recovery clock.
* **+1 per quiet period** (``recovery_period``, default 5 minutes) without a throttle,
  up to the configured ``max_connections`` (additive increase: probing back carefully).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CapPolicy:
    recovery_period: float = 300.0   # seconds without a throttle for each +1
    settle: float = 30.0             # a throttle this soon after a cut does not cut again

    def __post_init__(self) -> None:
        if self.recovery_period <= 0:
            raise ValueError("recovery_period must be positive")


@dataclass(frozen=True)
class Lowered:
    """A server's cap after its last throttle: ``cap`` from ``quiet_since`` on (the time
    of the last throttle; recovery counts from there), ``cut_at`` the time of the last cut."""

    cap: int
    cut_at: float
    quiet_since: float


def effective_cap(configured: int, lowered: Lowered | None, now: float,
                  policy: CapPolicy) -> int:
    """The cap to enforce at ``now``: the lowered cap plus one per quiet period, never
    above ``configured`` (so a configured cap set lower meanwhile wins at once)."""
    if lowered is None:
        return configured
    steps = int(max(0.0, now - lowered.quiet_since) // policy.recovery_period)
    return max(1, min(configured, lowered.cap + steps))


def after_throttle(configured: int, lowered: Lowered | None, now: float,
                   policy: CapPolicy, in_use: int | None = None) -> Lowered:
    """The state after the server throttled us at ``now``."""
    current = effective_cap(configured, lowered, now, policy)
    if lowered is not None and now - lowered.cut_at < policy.settle:
        return Lowered(current, lowered.cut_at, now)     # same episode: only restart recovery
    base = min(current, in_use) if in_use else current
    return Lowered(max(1, base // 2), now, now)


def recovered(configured: int, lowered: Lowered | None, now: float, policy: CapPolicy) -> bool:
    """True once the cap is back at ``configured`` (the state can be forgotten)."""
    return effective_cap(configured, lowered, now, policy) >= configured


def next_step_at(lowered: Lowered, now: float, policy: CapPolicy) -> float:
    """When the cap next goes up by one (for a waiter that wants to wake up then)."""
    steps = int(max(0.0, now - lowered.quiet_since) // policy.recovery_period)
    return lowered.quiet_since + (steps + 1) * policy.recovery_period


def forget_after(configured: int, lowered: Lowered, policy: CapPolicy) -> float:
    """Seconds after ``quiet_since`` when the state is fully recovered (a Redis TTL)."""
    return max(0, configured - lowered.cap) * policy.recovery_period


def reduction_note(server: str, before: int, after: int) -> str:
    """What the admin reads in the pass's notes and the event log."""
    return f"server {server} throttled: connections reduced from {before} to {after}"
