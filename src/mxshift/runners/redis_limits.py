"""Per-server connection caps shared by every worker: a counting semaphore in Redis.

Why Redis and why leases: twenty workers each honouring ``max_connections`` on their own
would open twenty times the cap and get a tenant throttled. All of them count in one
sorted set per server instead; a member is one held slot, scored with the time it expires.
A holder refreshes its slots every ``ttl / 3`` seconds; a worker that dies (SIGKILL, a
machine gone) stops refreshing and its slots expire after ``ttl`` seconds, so a crash
never leaks capacity for good. Taking a slot is one Lua script (drop expired members,
count, add if under the cap), so it is atomic across machines; times come from the
Redis server's clock, never from the workers' (which may disagree).

Keys (prefix ``mxshift:``): ``slots:{server}`` the held slots, ``peak:{server}`` the
highest number held at once (for operators and tests), ``cap:{server}`` a cap lowered
after a throttle (a hash: ``cap``, ``cut_at``, ``quiet_since`` in Redis server time), so
that every worker backs off when one of them is throttled; it expires once fully
recovered. The rule itself is :mod:`mxshift.engine.backoff_policy`, the same as in one
process.
"""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager
from typing import Callable, Iterator

import redis

from mxshift.engine import backoff_policy as policy
from mxshift.engine.limits import NoFreeSlot, Reduction, set_limiter, waiting_allowed
from mxshift.errors import EndpointError, Retry
from mxshift.runners.settings import RunnerSettings, runner_settings

__all__ = ["RedisLimiter", "use_shared_limiter"]

PREFIX = "mxshift:"

# KEYS[1] slots zset, KEYS[2] peak; ARGV: token, cap, ttl (s). Returns 1 if taken.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if held >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
held = held + 1
local peak = tonumber(redis.call('GET', KEYS[2]) or '0')
if held > peak then redis.call('SET', KEYS[2], held) end
return 1
"""

# KEYS: slots zsets; ARGV[1] ttl, then one token per key. Pushes each expiry forward.
_REFRESH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + tonumber(ARGV[1]), ARGV[i + 1])
end
return #KEYS
"""


class RedisLimiter:
    """:class:`mxshift.engine.limits.ConnectionLimiter` shared through Redis.

    ``caps``/``default`` as in LocalLimiter: every worker reads the same project file, so
    each knows the caps itself (``set_cap`` is called when stores are configured)."""

    def __init__(self, url: str, *, caps: dict[str, int] | None = None, default: int = 10,
                 ttl: float = 30.0, poll: float = 0.05,
                 clock: Callable[[], float] | None = None,
                 cap_policy: policy.CapPolicy = policy.CapPolicy()) -> None:
        self._redis = redis.Redis.from_url(url)
        self._caps = dict(caps or {})
        self._default = default
        # Lowered caps are timed by the Redis server's clock (workers' clocks may
        # disagree); tests inject their own.
        self._clock = clock or self._redis_now
        self._policy = cap_policy
        self._policies: dict[str, policy.CapPolicy] = {}
        self._ttl = ttl
        self._poll = poll
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._refresh = self._redis.register_script(_REFRESH)
        self._lock = threading.Lock()
        self._held: dict[str, str] = {}  # token -> server, refreshed by the heartbeat
        self._heartbeat: threading.Thread | None = None
        self._stopped = threading.Event()

    # -- caps -----------------------------------------------------------------------
    def set_cap(self, server: str, cap: int, *, recovery_period: float | None = None) -> None:
        """The configured cap; a cap lowered in Redis after a throttle stays lowered."""
        if cap < 1:
            raise ValueError("a connection cap is at least 1")
        self._caps[server] = cap
        if recovery_period is not None:
            self._policies[server] = policy.CapPolicy(recovery_period, self._policy.settle)

    def configured_cap(self, server: str) -> int:
        return self._caps.get(server, self._default)

    def policy_of(self, server: str) -> policy.CapPolicy:
        return self._policies.get(server, self._policy)

    def _redis_now(self) -> float:
        t = self._redis.time()
        return t[0] + t[1] / 1e6

    def _read_lowered(self, pipe: "redis.Redis | redis.client.Pipeline",
                      server: str) -> policy.Lowered | None:
        raw = pipe.hgetall(PREFIX + "cap:" + server)
        if not raw:
            return None
        return policy.Lowered(int(raw[b"cap"]), float(raw[b"cut_at"]),
                              float(raw[b"quiet_since"]))

    def cap(self, server: str) -> int:
        """The cap enforced now by every worker: configured, or lower after a throttle."""
        lowered = self._read_lowered(self._redis, server)
        if lowered is None:  # the usual case: one round trip, no clock
            return self.configured_cap(server)
        return policy.effective_cap(self.configured_cap(server), lowered, self._clock(),
                                    self.policy_of(server))

    def throttled(self, server: str) -> Reduction | None:
        """Lower ``server``'s cap for every worker (an optimistic transaction: two
        workers throttled at once make one cut, see backoff_policy's ``settle``)."""
        key = PREFIX + "cap:" + server
        configured, pol = self.configured_cap(server), self.policy_of(server)
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    lowered = self._read_lowered(pipe, server)
                    now = self._clock()
                    before = policy.effective_cap(configured, lowered, now, pol)
                    after = policy.after_throttle(configured, lowered, now, pol,
                                                  self.in_use(server))
                    keep = policy.forget_after(configured, after, pol) + pol.settle
                    pipe.multi()
                    pipe.hset(key, mapping={"cap": after.cap, "cut_at": after.cut_at,
                                            "quiet_since": after.quiet_since})
                    pipe.pexpire(key, max(1, int(keep * 1000)))
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue
        if after.cap >= before:
            return None
        return Reduction(server, before, after.cap)

    # -- observation ----------------------------------------------------------------
    def in_use(self, server: str) -> int:
        """Slots held now by every worker (expired ones not counted)."""
        t = self._redis.time()
        now = t[0] + t[1] / 1e6
        return int(self._redis.zcount(PREFIX + "slots:" + server, f"({now}", "+inf"))

    def peak(self, server: str) -> int:
        """The highest number of slots ever held at once (all workers)."""
        return int(self._redis.get(PREFIX + "peak:" + server) or 0)

    def reset(self, server: str) -> None:
        self._redis.delete(PREFIX + "slots:" + server, PREFIX + "peak:" + server,
                           PREFIX + "cap:" + server)

    # -- the semaphore --------------------------------------------------------------
    @contextmanager
    def slot(self, server: str) -> Iterator[None]:
        token = f"{uuid.uuid4().hex}"
        keys = [PREFIX + "slots:" + server, PREFIX + "peak:" + server]
        delay = self._poll
        try:
            while not self._acquire(keys=keys, args=[token, self.cap(server), self._ttl]):
                if not waiting_allowed():  # an optional extra: the pass goes on without
                    raise NoFreeSlot(f"{server}: all {self.cap(server)} connections in use")
                time.sleep(delay)
                delay = min(delay * 1.5, 1.0)
        except redis.RedisError as exc:
            # no shared count, no connection: the pass fails as "endpoint, try later"
            raise EndpointError(f"connection limiter unreachable ({type(exc).__name__}); "
                                f"{server} not contacted", retry=Retry.TEMPORARY) from None
        with self._lock:
            self._held[token] = server
            self._ensure_heartbeat()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(token, None)
            try:
                self._redis.zrem(keys[0], token)
            except redis.RedisError:
                pass  # Redis unreachable: the slot expires by itself after ttl

    def _ensure_heartbeat(self) -> None:
        if self._heartbeat is None or not self._heartbeat.is_alive():
            self._heartbeat = threading.Thread(target=self._beat, name="mxshift-slots",
                                               daemon=True)
            self._heartbeat.start()

    def _beat(self) -> None:
        while not self._stopped.wait(self._ttl / 3):
            with self._lock:
                held = list(self._held.items())
            if not held:
                continue
            try:
                self._refresh(keys=[PREFIX + "slots:" + srv for _, srv in held],
                              args=[self._ttl, *[tok for tok, _ in held]])
            except redis.RedisError:
                pass  # try again next beat; slots expire only after a whole ttl

    def close(self) -> None:
        self._stopped.set()
        self._redis.close()


def use_shared_limiter(settings: RunnerSettings | None = None) -> bool:
    """Install the Redis limiter for this process when a Redis URL is configured
    (``MXSHIFT_REDIS_URL``, or a Redis broker); True if it did.

    Workers do it on start; any other process that opens stores while workers run (the
    scheduler, the dashboard, ``preflight``/``verify``) should too, or its connections
    are counted only by itself."""
    settings = settings or runner_settings()
    if settings.redis_url is None:
        return False
    set_limiter(RedisLimiter(settings.redis_url, ttl=settings.slot_ttl))
    return True
