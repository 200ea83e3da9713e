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
server has to complain (messages/s, bytes/s, bytes/day).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Callable

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


class RateLimiter:
    """Token buckets for messages/s and bytes/s, and a rolling 24-hour byte count.

    Shared by every connection to one server (see :func:`limiter_for`), so the limit holds
    for the server, not per connection. Kept in memory: bytes/day restarts with the process.
    """

    def __init__(self, settings: ThrottleSettings, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._next_msg = 0.0
        self._next_byte = 0.0
        self._day: list[tuple[float, int]] = []
        self.slept = 0.0

    def delay(self, messages: int, nbytes: int) -> float:
        """Reserve capacity for ``messages``/``nbytes``; return how long to wait first."""
        s = self.settings
        with self._lock:
            now = self._clock()
            start = now
            if s.messages_per_second:
                start = max(start, self._next_msg)
                self._next_msg = max(self._next_msg, now) + messages / s.messages_per_second
            if s.bytes_per_second:
                start = max(start, self._next_byte)
                self._next_byte = max(self._next_byte, now) + nbytes / s.bytes_per_second
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
                self._day.append((max(start, now), nbytes))
            return max(0.0, start - now)

    def acquire(self, messages: int, nbytes: int) -> float:
        wait = self.delay(messages, nbytes)
        if wait > 0:
            self.slept += wait
            self._sleep(wait)
        return wait


_LIMITERS: dict[tuple[str, ThrottleSettings], RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter_for(server: str, settings: ThrottleSettings) -> RateLimiter | None:
    """The process-wide limiter of ``server`` (None when no rate is configured)."""
    if not settings.limited:
        return None
    with _LIMITERS_LOCK:
        key = (server, settings)
        if key not in _LIMITERS:
            _LIMITERS[key] = RateLimiter(settings)
        return _LIMITERS[key]
