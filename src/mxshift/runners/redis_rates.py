"""Per-server rate limits shared by every worker: messages/s, bytes/s and bytes per day,
kept in Redis.

Why: ``[destination.throttle] messages_per_second = 5`` honoured by each of twenty
workers on its own is 100 messages/s at the tenant, which is what gets it throttled.
Every worker asks one Redis instead, and Redis hands out start times.

How: a *reservation* per call, one Lua script (atomic across machines, timed by the
Redis server's clock, never the workers'). For messages/s and bytes/s a key holds the
earliest time the next request may start ("theoretical arrival time", as in GCRA): a
request starts at ``max(now, next)`` and pushes ``next`` on by its cost (``messages /
rate``); the worker sleeps until its start. The spacing is strict (no burst), the same
rule as the in-process :class:`mxshift.store.throttle.RateLimiter`. The daily byte
budget is a counter per server and *UTC day*, so it survives worker restarts and
resets at 00:00 UTC for everyone at once.

A dead worker leaves nothing stuck: what it reserved is only time already passed or
about to pass (at most its last request's cost), every key carries an expiry just past
the time it stops mattering, and no key is held or locked by a worker. The bytes of a
request reserved by a worker that died before sending them stay counted for the day:
erring on the side of the provider's cap.

Keys (prefix ``mxshift:rate:``): ``{server}:msg`` and ``{server}:bytes`` the next start
times, ``{server}:day:{n}`` bytes sent on UTC day ``n`` (days since 1970-01-01). With
``bytes_per_day_scope = "user"`` (Gmail) the day is counted under ``{server}/{user}``
(:func:`mxshift.store.throttle.limiter_for` asks for it so; the other limits stay the
server's).
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import redis

from mxshift.errors import EndpointError, Retry
from mxshift.runners.settings import RunnerSettings, runner_settings
from mxshift.store import throttle
from mxshift.store.throttle import DailyBudgetSpent, ThrottleSettings

__all__ = ["RedisRateLimits", "use_shared_rates", "PREFIX"]

PREFIX = "mxshift:rate:"
DAY = 86400.0

# KEYS[1] next message start, KEYS[2] next byte start; ARGV: messages/s, bytes/s,
# bytes/day (0 = none), messages, bytes, day-key prefix, day length (s).
# Returns {"ok", wait, used today} or {"day", used today, seconds until the next day};
# numbers as strings (Redis would truncate Lua floats to integers).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local mps, bps, bpd = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local n, nbytes, daylen = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[7])
local day = math.floor(now / daylen)
local daykey = ARGV[6] .. day
local used = 0
if bpd > 0 then
  used = tonumber(redis.call('GET', daykey) or '0')
  if used > 0 and used + nbytes > bpd then
    return {'day', tostring(used), string.format('%.6f', (day + 1) * daylen - now)}
  end
end
local start = now
local function reserve(key, cost)
  local nxt = tonumber(redis.call('GET', key) or '0')
  if nxt > start then start = nxt end
  local new = math.max(nxt, now) + cost
  redis.call('SET', key, string.format('%.6f', new), 'PX',
             math.ceil((new - now) * 1000) + 1000)
end
if mps > 0 then reserve(KEYS[1], n / mps) end
if bps > 0 then reserve(KEYS[2], nbytes / bps) end
if bpd > 0 then
  used = redis.call('INCRBY', daykey, nbytes)
  redis.call('EXPIRE', daykey, math.ceil(2 * daylen))
end
return {'ok', string.format('%.6f', start - now), tostring(used)}
"""


class RedisRateLimits:
    """:class:`mxshift.store.throttle.RateLimits` shared through Redis.

    ``day``: the length of the daily budget's window in seconds (86400, aligned to
    00:00 UTC; tests shorten it). ``sleep`` is how this worker waits (tests record it).
    """

    def __init__(self, url: str, *, day: float = DAY,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._redis = redis.Redis.from_url(url)
        self._script = self._redis.register_script(_ACQUIRE)
        self._day = day
        self._sleep = sleep
        self._lock = threading.Lock()
        self.slept = 0.0

    def acquire(self, server: str, settings: ThrottleSettings, messages: int,
                nbytes: int) -> float:
        """Block until ``messages``/``nbytes`` may go to ``server`` by the limits of all
        workers together; return the seconds waited.

        A spent daily budget: wait for the next UTC day if that fits in
        ``max_total_wait``, else :class:`DailyBudgetSpent` (the pass stops with the
        reason; see README). Redis unreachable: EndpointError (try later), as for the
        connection limiter: no shared count, no sending."""
        waited = 0.0
        while True:
            status, a, b = self._call(server, settings, messages, nbytes)
            if status == "ok":
                wait = float(a)
                self._wait(wait)
                return waited + wait
            used, until = int(a), float(b)
            if waited + until > settings.max_total_wait:
                raise DailyBudgetSpent(throttle.daily_budget_message(
                    server, settings, used, until, "today (UTC), all workers"), until)
            # into the next day, by a hair: Redis decides which day it is
            self._wait(until + 0.01)
            waited += until + 0.01

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self.slept += seconds
            self._sleep(seconds)

    def _call(self, server: str, settings: ThrottleSettings, messages: int,
              nbytes: int) -> tuple[str, str, str]:
        base = PREFIX + server
        try:
            raw = self._script(keys=[base + ":msg", base + ":bytes"],
                               args=[settings.messages_per_second or 0,
                                     settings.bytes_per_second or 0,
                                     settings.bytes_per_day or 0, messages, nbytes,
                                     base + ":day:", self._day])
        except redis.RedisError as exc:
            raise EndpointError(f"rate limiter unreachable ({type(exc).__name__}); "
                                f"{server} not contacted", retry=Retry.TEMPORARY) from None
        status, a, b = (x.decode() if isinstance(x, bytes) else str(x) for x in raw)
        return status, a, b

    def used_today(self, server: str) -> int:
        """Bytes sent to ``server`` in the current window by all workers (for admins
        and tests)."""
        t = self._redis.time()
        day = int((t[0] + t[1] / 1e6) // self._day)
        return int(self._redis.get(f"{PREFIX}{server}:day:{day}") or 0)

    def keys(self, server: str) -> list[str]:
        """This server's keys in Redis now."""
        return sorted(k.decode() for k in self._redis.scan_iter(match=PREFIX + server + ":*"))

    def reset(self, server: str) -> None:
        keys = self.keys(server)
        if keys:
            self._redis.delete(*keys)

    def close(self) -> None:
        self._redis.close()


def use_shared_rates(settings: RunnerSettings | None = None) -> bool:
    """Install the Redis rate limits for this process when a Redis URL is configured
    (``MXSHIFT_REDIS_URL``, or a Redis broker); True if it did. Installed next to the
    shared connection limiter (workers on start, see ``mxshift.runners``)."""
    settings = settings or runner_settings()
    if settings.redis_url is None:
        return False
    throttle.set_rate_limits(RedisRateLimits(settings.redis_url))
    return True
