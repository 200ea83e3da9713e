"""Fetching a folder's next batch from the source while the current one is appended.

Why: one connection pair otherwise waits on each server in turn: the source Dovecot
idles while the destination stores a MULTIAPPEND, and the destination idles while we
read the next FETCH. A thread of its own per copier runs the next batch's FETCH (and the
per-message work that needs no journal: the line-end check, fingerprint and SHA-256,
which releases the GIL) while the copier appends the current batch.

Why this is crash-safe: a FETCH (``BODY.PEEK``) changes nothing anywhere, and every
journal write stays in the copier's own thread, in the order of a serial copy. A pass
stopped while a batch is prefetched loses only that read.

Memory stays bounded: at most two batches per copier (the one being appended, the one
being fetched), and the fetch thread reserves its batch's bytes in the pass's
:class:`~mxshift.engine.limits.ByteBudget` before it reads them. The reservation is
taken in the fetch thread (never by the copier while it holds its current batch, which
could wait for itself) and given back by the copier once the batch is settled.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from mxshift.engine.limits import ByteBudget

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Held(Generic[R]):
    """A fetched batch and its reservation in the byte budget (released once)."""

    value: R
    _hold: AbstractContextManager[None] | None
    size: int = 0  # bytes reserved for it

    def release(self) -> None:
        hold, self._hold = self._hold, None
        if hold is not None:
            hold.__exit__(None, None, None)


class Prefetcher(Generic[T, R]):
    """Run ``fetch(job)`` one job ahead of the caller, in one background thread.

    ``start(job, size)`` begins fetching (reserving ``size`` bytes first); ``take()``
    waits for that job's result. At most one job is in flight: ``start`` again only after
    ``take``. With ``background=False`` the fetch runs inside ``take()`` (one batch: a
    thread would only cost its start-up). ``close()`` waits for a job still in flight and
    releases its reservation; it is safe to call at any time, also after a failure.
    """

    def __init__(self, fetch: Callable[[T], R], budget: ByteBudget, *,
                 background: bool = True, name: str = "prefetch",
                 on_fetched: Callable[[int], None] | None = None) -> None:
        self._fetch = fetch
        self._on_fetched = on_fetched  # test seam: called (fetch thread) after each job
        self._budget = budget
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name) if background else None
        self._future: Future[Held[R]] | None = None
        self._job: tuple[T, int] | None = None
        self.fetched = 0  # jobs fetched so far

    def start(self, job: T, size: int) -> None:
        assert self._future is None and self._job is None, "take() the previous job first"
        if self._pool is None:
            self._job = (job, size)
        else:
            self._future = self._pool.submit(self._run, job, size)

    def take(self) -> Held[R]:
        if self._future is not None:
            future, self._future = self._future, None
            return future.result()
        assert self._job is not None, "nothing started"
        (job, size), self._job = self._job, None
        return self._run(job, size)

    def close(self) -> None:
        future, self._future, self._job = self._future, None, None
        if future is not None:
            try:
                held = future.result()
            except Exception:  # noqa: BLE001 - the caller's own failure (or end) is what counts
                pass
            else:
                held.release()  # an unused prefetch: its read is simply dropped
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _run(self, job: T, size: int) -> Held[R]:
        hold = self._budget.hold(size)
        hold.__enter__()
        try:
            value = self._fetch(job)
            self.fetched += 1
            if self._on_fetched is not None:
                self._on_fetched(self.fetched)
        except BaseException:
            hold.__exit__(None, None, None)
            raise
        return Held(value, hold, size)
