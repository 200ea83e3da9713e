"""Where passes run: here (a thread pool) or on Celery workers on any number of machines.

``run_passes`` is the one entry point for everyone who starts passes (``mxshift sync``,
the scheduler, the dashboard): Celery when ``MXSHIFT_BROKER_URL`` is set, the local
runner otherwise. Both return one PassResult per mailbox, in mailbox order.
"""

from __future__ import annotations

from typing import Callable

from mxshift.engine.journal import Hooks
from mxshift.engine.mailbox_pass import PassResult, Progress
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

__all__ = ["run_passes", "runner_settings", "RunnerSettings", "use_shared_limiter"]


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
