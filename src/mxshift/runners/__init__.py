"""Where passes run: here (a thread pool) or on Celery workers on any number of machines.

``run_passes`` is the one entry point for everyone who starts passes (``mxshift sync``,
the scheduler, the dashboard): Celery when ``MXSHIFT_BROKER_URL`` is set, the local
runner otherwise. Both return one PassResult per mailbox, in mailbox order.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from mxshift.engine.journal import Hooks
from mxshift.engine.pass_result import PassResult, Progress
from mxshift.project import OpenProject
from mxshift.runners.settings import RunnerSettings, runner_settings


def use_shared_limiter(settings: RunnerSettings | None = None) -> bool:
    """See :func:`mxshift.runners.redis_limits.use_shared_limiter` (imported lazily: the
    local runner needs no Redis client). Installs the shared rate limits too
    (:func:`mxshift.runners.redis_rates.use_shared_rates`): caps and rates go together."""
    from mxshift.runners.redis_limits import use_shared_limiter as install
    from mxshift.runners.redis_rates import use_shared_rates

    use_shared_rates(settings)
    return install(settings)


def install_shared_limits(settings: RunnerSettings | None = None, *,
                          on_unreachable: Callable[[str], None] | None = None) -> bool:
    """Every command that opens IMAP connections does this first (sync, preflight,
    verify, cutover, sweep, run, serve; through :func:`shared_limits`): when Redis is
    configured (``MXSHIFT_REDIS_URL`` or a Redis broker) its connections count against the same caps and rates as the
    workers', so an admin's ``verify`` beside twenty workers cannot exceed a tenant's cap.
    True if installed; False without Redis (caps per process, no Redis client imported).

    Redis is checked with one PING before anything is installed, because a process that
    counted its connections against an unreachable Redis would fail every pass one by one.
    Unreachable: EndpointError (one line for the CLI), unless ``on_unreachable`` is
    given (the dashboard, which must still serve pages): it gets that line, and the
    shared limiter is installed anyway, so each action that needs a connection fails
    with "connection limiter unreachable" (until Redis answers again) rather than
    silently ignoring the caps."""
    settings = settings or runner_settings()
    if settings.redis_url is None:
        return False
    problem = shared_limits_problem(settings.redis_url)
    if problem is not None:
        if on_unreachable is None:
            from mxshift.errors import EndpointError

            raise EndpointError(problem)
        on_unreachable(problem)
    use_shared_limiter(settings)
    return True


@contextmanager
def shared_limits(settings: RunnerSettings | None = None, *,
                  on_unreachable: Callable[[str], None] | None = None) -> Iterator[bool]:
    """:func:`install_shared_limits` for the length of one command, then the limiter and
    rates installed before are back (and the Redis clients closed). Why scoped: a
    command run in-process (tests, the CliRunner) must not leave this process counting
    its connections in a Redis that may be gone by the next command."""
    settings = settings or runner_settings()
    if settings.redis_url is None:  # the usual one-machine case: nothing to import
        yield False
        return
    from mxshift.engine import limits
    from mxshift.store import throttle

    before, rates_before = limits.limiter(), throttle.rate_limits()
    installed = install_shared_limits(settings, on_unreachable=on_unreachable)
    try:
        yield installed
    finally:
        for mine in (limits.set_limiter(before), throttle.set_rate_limits(rates_before)):
            close = getattr(mine, "close", None)
            if close is not None:
                close()


def shared_limits_problem(redis_url: str) -> str | None:
    """None if the Redis at ``redis_url`` answers a PING within a few seconds, else one
    line for the operator (the URL without its password)."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        return (f"shared connection limiter unreachable: Redis at {_safe_url(redis_url)} "
                f"({type(exc).__name__}: {exc}); MXSHIFT_REDIS_URL (or a Redis "
                "MXSHIFT_BROKER_URL) is set, so connections must be counted there")
    finally:
        client.close()
    return None


def _safe_url(url: str) -> str:
    """``url`` without a password (it may be in ``redis://:secret@host``)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


__all__ = ["run_passes", "runner_settings", "RunnerSettings", "use_shared_limiter",
           "install_shared_limits", "shared_limits", "shared_limits_problem"]


def run_passes(proj: OpenProject, mailbox_ids: list[int] | None = None,
               kind: str | None = None, *, allow_mass_delete: bool = False,
               progress: Progress | None = None,
               should_stop: Callable[[], bool] | None = None, hooks: Hooks | None = None,
               settings: RunnerSettings | None = None) -> list[PassResult]:
    """One pass of ``kind`` (None: what the project's phase calls for; or prestage,
    delta, final, sweep) for each mailbox in ``mailbox_ids`` (None: all).

    ``should_stop``: the local runner asks it before each mailbox; the Celery runner
    before enqueueing (a queued pass is the workers' from then on). ``hooks`` are the
    engine's in-process test hooks: local runner only."""
    settings = settings or runner_settings()
    if settings.distributed:
        from mxshift.runners.celery_runner import run_celery

        if hooks is not None:
            raise ValueError("engine hooks cannot cross to Celery workers")
        if should_stop is not None and should_stop():
            return []
        return run_celery(proj, mailbox_ids, kind, settings,
                          allow_mass_delete=allow_mass_delete, progress=progress)
    from mxshift.runners.local import run_local

    return run_local(proj, mailbox_ids, kind, allow_mass_delete=allow_mass_delete,
                     progress=progress, should_stop=should_stop, hooks=hooks)
