"""Where passes run, from the environment (pure: a mapping in, settings out).

Why environment variables and not mxshift.toml: the same project file is copied to every
worker machine, while the broker and database are properties of the deployment (they
hold credentials an admin keeps out of the project file).

    MXSHIFT_BROKER_URL          Celery broker; set -> passes go to workers (redis://...)
    MXSHIFT_RESULT_BACKEND      where workers put results (default: the broker URL)
    MXSHIFT_REDIS_URL           shared connection limiter (default: the broker URL when
                                it is a Redis URL; none -> caps are per process)
    MXSHIFT_QUEUE               queue name (default "mxshift"; one per project if several
                                projects share a Redis)
    MXSHIFT_VISIBILITY_TIMEOUT  seconds after which Redis hands a task that was taken
                                but not acknowledged to another worker (default 21600):
                                only a safety net, see MXSHIFT_LEASE_CHECK
    MXSHIFT_LEASE_CHECK         seconds between looks of the workers' lease watcher
                                (runners/requeue.py; default 2, 0 = off): a live pass's
                                task is kept from redelivery, a dead worker's task is
                                requeued after 3 looks without a live lease
    MXSHIFT_SLOT_TTL            seconds a dead worker's connection slots stay counted
                                (default 30)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from mxshift.errors import ConfigError

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class RunnerSettings:
    broker_url: str | None
    result_backend: str | None
    redis_url: str | None
    queue: str = "mxshift"
    visibility_timeout: float = 21600.0
    slot_ttl: float = 30.0
    lease_check: float = 2.0

    @property
    def distributed(self) -> bool:
        """Passes go to Celery workers (a broker is configured)."""
        return self.broker_url is not None

    def worker_broker(self) -> str:
        """A worker needs a broker: the configured one, else Redis on this host."""
        return self.broker_url or DEFAULT_BROKER


def _seconds(env: Mapping[str, str], name: str, default: float, *,
             zero: bool = False) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number of seconds") from None
    if value < 0 or (value == 0 and not zero):
        raise ConfigError(f"{name}={raw!r}: expected a positive number of seconds")
    return value


def runner_settings(env: Mapping[str, str] | None = None) -> RunnerSettings:
    env = os.environ if env is None else env
    broker = env.get("MXSHIFT_BROKER_URL") or None
    backend = env.get("MXSHIFT_RESULT_BACKEND") or broker
    redis_url = env.get("MXSHIFT_REDIS_URL") or None
    if redis_url is None and broker and broker.startswith(("redis://", "rediss://")):
        redis_url = broker
    return RunnerSettings(
        broker_url=broker, result_backend=backend, redis_url=redis_url,
        queue=env.get("MXSHIFT_QUEUE") or "mxshift",
        visibility_timeout=_seconds(env, "MXSHIFT_VISIBILITY_TIMEOUT", 21600.0),
        slot_ttl=_seconds(env, "MXSHIFT_SLOT_TTL", 30.0),
        lease_check=_seconds(env, "MXSHIFT_LEASE_CHECK", 2.0, zero=True))
