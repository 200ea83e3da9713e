"""Server back-pressure: recognise it, decide how long to wait, and when to give up.

Why its own (pure) module: "Request is throttled. Suggested Backoff Time: 52347
milliseconds" is the single most common reason migrations to Microsoft 365 die. Honouring
it is simple once it is *recognised*, and recognising it is string work over what servers
really send, tested here without a server:

* Microsoft: ``NO``/``BYE Request is throttled. Suggested Backoff Time: N milliseconds``,
  ``BYE Session invalidated - AccessTokenExpired``, "User is authenticated but not
  connected", "Server Unavailable. 15";
* RFC 5530 codes: ``[UNAVAILABLE]``, ``[INUSE]``, ``[LIMIT]`` (except on APPEND, where it
  refuses one message for its size and is the message's problem, not the server's);
* Gmail: ``[OVERQUOTA] Account exceeded command or bandwidth limits``, "Too many
  simultaneous connections";
* a BYE with any reason, a reset or closed connection.

:class:`WaitBudget` adds the waits of one pass up and stops at ``max_total_wait``, with a
reason an operator can act on. :class:`RateLimiter` spaces requests out *before* the
server has to complain (messages/s, bytes/s, bytes/day); it is the in-process
:class:`RateLimits`, and workers install a shared one (``mxshift.runners.redis_rates``).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Protocol

_BACKOFF = re.compile(r"suggested\s+back\s*-?off\s+time:\s*(\d+)\s*(milliseconds|ms|seconds|s)\b",
                      re.I)
_TOKEN_EXPIRED = re.compile(r"accesstokenexpired|token\s+(has\s+)?expired|expired\s+token|"
                            r"session\s+invalidated", re.I)
_BUSY = re.compile(r"\[(UNAVAILABLE|INUSE|SERVERBUG)\]|throttl|server\s+unavailable|"
                   r"authenticated\s+but\s+not\s+connected|too\s+many\s+simultaneous|"
                   r"exceeded\s+command\s+or\s+bandwidth|try\s+again\s+later|"
                   r"temporary\s+system\s+error", re.I)
_LIMIT = re.compile(r"\[LIMIT\]", re.I)


@dataclass(frozen=True)
class Backpressure:
    """What the server told us, graded.

    ``kind``: "throttled" (wait, same connection may go on), "token-expired" (log in again
    with a fresh token), "lost" (the connection is gone: reconnect). ``wait`` is the
    server's own suggestion in seconds, None when it gave none.
    """

    kind: str
    wait: float | None
    reconnect: bool
    text: str


def suggested_wait(text: str) -> float | None:
    """Seconds from "Suggested Backoff Time: N milliseconds" (or "... N seconds")."""
    m = _BACKOFF.search(text)
    if not m:
        return None
    n = int(m.group(1))
    return n / 1000.0 if m.group(2).lower() in ("milliseconds", "ms") else float(n)


def classify(text: str, *, command: str = "", lost: bool = False) -> Backpressure | None:
    """Grade a server answer (or, with ``lost``, the reason a connection died).

    None: not back-pressure (a real error of the command, graded by the caller)."""
    wait = suggested_wait(text)
    if _TOKEN_EXPIRED.search(text):
        return Backpressure("token-expired", wait, True, text)
    if lost:
        return Backpressure("lost", wait, True, text)
    if wait is not None or _BUSY.search(text):
        return Backpressure("throttled", wait, False, text)
    if _LIMIT.search(text) and command.upper() != "APPEND":
        return Backpressure("throttled", wait, False, text)
    return None


@dataclass(frozen=True)
class ThrottleSettings:
    """``[source.throttle]`` / ``[destination.throttle]`` in mxshift.toml."""

    max_total_wait: float = 1800.0   # seconds of back-off one pass may spend on a server
    default_wait: float = 5.0        # first wait when the server names none (then doubles)
    max_single_wait: float = 300.0
    messages_per_second: float | None = None
    bytes_per_second: int | None = None
    bytes_per_day: int | None = None  # Gmail: about 500 MB/day of IMAP uploads per user
    # whose budget bytes_per_day is: "server" (host:port, all mailboxes together) or
    # "user" (per mailbox on that server: Gmail's cap is per user; config defaults it so)
    bytes_per_day_scope: str = "server"
    # after a throttle halves the server's connection cap: seconds without one per +1
    connection_recovery: float = 300.0

    @property
    def limited(self) -> bool:
        return any(x is not None for x in (self.messages_per_second, self.bytes_per_second,
                                            self.bytes_per_day))


class ThrottledOut(Exception):
    """The wait budget is spent; ``str()`` is the reason for status and reports."""


class WaitBudget:
    """The back-off one pass (one store) has spent, and the next wait to take."""

    def __init__(self, settings: ThrottleSettings, host: str) -> None:
        self.settings = settings
        self.host = host
        self.total = 0.0
        self.waits: list[tuple[str, float]] = []   # (kind, seconds), for reports and tests
        self._streak = 0

    def next_wait(self, bp: Backpressure) -> float:
        """Seconds to wait now: the server's suggestion, else a doubling default (a lost
        connection is retried at once the first time). ThrottledOut past the budget."""
        if bp.wait is not None:
            wait = min(bp.wait, self.settings.max_single_wait)
        elif bp.kind in ("lost", "token-expired") and self._streak == 0:
            wait = 0.0
        else:
            wait = min(self.settings.default_wait * (2 ** self._streak),
                       self.settings.max_single_wait)
        self._streak += 1
        if self.total + wait > self.settings.max_total_wait:
            raise ThrottledOut(
                f"{self.host} kept pushing back ({bp.kind}): waited {self.total:.0f} s in "
                f"total this pass and the next wait ({wait:.0f} s) would pass the limit of "
                f"{self.settings.max_total_wait:.0f} s (max_total_wait in "
                f"[*.throttle]); last answer: {bp.text[:200]}")
        self.total += wait
        self.waits.append((bp.kind, wait))
        return wait

    def succeeded(self) -> None:
        """A command went through: the next push-back starts from the short wait again."""
        self._streak = 0


class DailyBudgetSpent(ThrottledOut):
    """The server's ``bytes_per_day`` budget is used up and waiting for the next window
    would take longer than ``max_total_wait``: the pass ends here with this reason (the
    journal makes the next pass go on where this one stopped). ``wait``: seconds until the
    budget frees again."""

    def __init__(self, message: str, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


def daily_budget_message(server: str, settings: ThrottleSettings, used: int,
                         wait: float, window: str) -> str:
    """The one line an admin reads in status and reports (the same for both limiters)."""
    hours = wait / 3600.0
    return (f"{server}: the upload budget of {settings.bytes_per_day} bytes per day "
            f"(bytes_per_day in [*.throttle]) is used up ({used} bytes {window}); it frees "
            f"in {hours:.1f} h, longer than max_total_wait ({settings.max_total_wait:.0f} s), "
            f"so this pass stops here and the next pass goes on (raise max_total_wait to "
            f"wait instead)")


class RateLimit(Protocol):
    """The rate limit of one server, as a store uses it."""

    def acquire(self, messages: int, nbytes: int) -> float:
        """Block until ``messages``/``nbytes`` may go to the server; return the seconds
        waited. Raise :class:`DailyBudgetSpent` when the daily budget is used up and
        waiting for it would exceed ``max_total_wait``."""
        ...


class RateLimits(Protocol):
    """Where rate limits are kept: this process (:class:`LocalRateLimits`, the default)
    or somewhere every worker shares (``mxshift.runners.redis_rates``).

    Why a seam: twenty workers each honouring 5 messages/s on their own send 100/s and
    get the tenant throttled; the engine should not care which one it has."""

    def acquire(self, server: str, settings: ThrottleSettings, messages: int,
                nbytes: int) -> float:
        """:meth:`RateLimit.acquire` for ``server`` ("host:port") under ``settings``."""
        ...


class RateLimiter:
    """Token buckets for messages/s and bytes/s, and a rolling 24-hour byte count.

    Shared by every connection to one server (see :func:`limiter_for`), so the limit holds
    for the server, not per connection. Kept in memory: bytes/day restarts with the process
    (the Redis limiter keeps it per UTC day, across workers and restarts).
    """

    def __init__(self, settings: ThrottleSettings, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, server: str = "") -> None:
        self.settings = settings
        self.server = server
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._next_msg = 0.0
        self._next_byte = 0.0
        self._day: list[tuple[float, int]] = []
        self.slept = 0.0

    def delay(self, messages: int, nbytes: int) -> float:
        """Reserve capacity for ``messages``/``nbytes``; return how long to wait first."""
        return self._reserve(messages, nbytes, None)

    def _reserve(self, messages: int, nbytes: int, max_day_wait: float | None) -> float:
        """As :meth:`delay`; with ``max_day_wait``, a daily budget that frees later than
        that raises :class:`DailyBudgetSpent` and reserves nothing."""
        s = self.settings
        with self._lock:
            now = self._clock()
            start = now
            if s.bytes_per_day:
                self._day = [(t, b) for t, b in self._day if t > now - 86400]
                used = sum(b for _, b in self._day)
                if used + nbytes > s.bytes_per_day and self._day:
                    # wait until enough of the oldest uploads have left the window
                    need = used + nbytes - s.bytes_per_day
                    freed = 0
                    for t, b in self._day:
                        freed += b
                        if freed >= need:
                            start = max(start, t + 86400)
                            break
                    if max_day_wait is not None and start - now > max_day_wait:
                        raise DailyBudgetSpent(daily_budget_message(
                            self.server or "server", s, used, start - now,
                            "in the last 24 h"), start - now)
            if s.messages_per_second:
                start = max(start, self._next_msg)
                self._next_msg = max(self._next_msg, now) + messages / s.messages_per_second
            if s.bytes_per_second:
                start = max(start, self._next_byte)
                self._next_byte = max(self._next_byte, now) + nbytes / s.bytes_per_second
            if s.bytes_per_day:
                self._day.append((max(start, now), nbytes))
            return max(0.0, start - now)

    def acquire(self, messages: int, nbytes: int) -> float:
        wait = self._reserve(messages, nbytes, self.settings.max_total_wait)
        if wait > 0:
            self.slept += wait
            self._sleep(wait)
        return wait


class LocalRateLimits:
    """:class:`RateLimits` in this process: one :class:`RateLimiter` per server and
    settings (the default; right for one machine)."""

    def __init__(self) -> None:
        self._limiters: dict[tuple[str, ThrottleSettings], RateLimiter] = {}
        self._lock = threading.Lock()

    def limiter(self, server: str, settings: ThrottleSettings) -> RateLimiter:
        with self._lock:
            key = (server, settings)
            if key not in self._limiters:
                self._limiters[key] = RateLimiter(settings, server=server)
            return self._limiters[key]

    def acquire(self, server: str, settings: ThrottleSettings, messages: int,
                nbytes: int) -> float:
        return self.limiter(server, settings).acquire(messages, nbytes)


@dataclass(frozen=True)
class ServerRate:
    """:class:`RateLimit` of one server, bound to where the limits are kept."""

    limits: RateLimits
    server: str
    settings: ThrottleSettings

    def acquire(self, messages: int, nbytes: int) -> float:
        return self.limits.acquire(self.server, self.settings, messages, nbytes)


_LOCAL = LocalRateLimits()
_rate_limits: RateLimits = _LOCAL


def set_rate_limits(limits: RateLimits | None) -> RateLimits:
    """Install where this process keeps rate limits (None: back to the in-process
    default); returns the one installed before. Workers install the Redis one
    (``mxshift.runners.use_shared_limiter``) so the limits hold across all of them."""
    global _rate_limits
    before, _rate_limits = _rate_limits, limits or _LOCAL
    return before


def rate_limits() -> RateLimits:
    return _rate_limits


def day_key(server: str, user: str) -> str:
    """The key of one user's daily budget on ``server`` (both limiters): "host:port/user"."""
    return f"{server}/{user}"


@dataclass(frozen=True)
class UserDayRate:
    """:class:`RateLimit` with the daily budget per mailbox user and the other limits per
    server. Why: Gmail's upload cap is per user; counting all mailboxes of imap.gmail.com
    against one 500 MB would stall a migration of many users after the first few.

    The day is asked first: a spent budget raises before any server rate is reserved."""

    day: RateLimit
    rest: RateLimit | None

    def acquire(self, messages: int, nbytes: int) -> float:
        waited = self.day.acquire(messages, nbytes)
        return waited + (self.rest.acquire(messages, nbytes) if self.rest else 0.0)


def _bind(server: str, settings: ThrottleSettings) -> RateLimit:
    if isinstance(_rate_limits, LocalRateLimits):
        return _rate_limits.limiter(server, settings)
    return ServerRate(_rate_limits, server, settings)


def limiter_for(server: str, settings: ThrottleSettings,
                user: str | None = None) -> RateLimit | None:
    """The rate limit of ``server`` (None when no rate is configured), kept by the
    installed :class:`RateLimits`. With ``bytes_per_day_scope = "user"`` and a ``user``,
    the daily budget is that user's on the server (:class:`UserDayRate`); connections of
    the same user share it, other users have their own."""
    if not settings.limited:
        return None
    if user and settings.bytes_per_day and settings.bytes_per_day_scope == "user":
        rest = replace(settings, bytes_per_day=None)
        day = ThrottleSettings(max_total_wait=settings.max_total_wait,
                               bytes_per_day=settings.bytes_per_day,
                               bytes_per_day_scope="user")
        return UserDayRate(_bind(day_key(server, user), day),
                           _bind(server, rest) if rest.limited else None)
    return _bind(server, settings)
