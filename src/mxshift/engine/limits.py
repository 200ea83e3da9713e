"""Per-server connection caps: how many IMAP connections mxshift holds to one server.

Why a seam of its own: providers limit simultaneous connections per user and per client
(Microsoft 365 allows about 20 per mailbox and throttles beyond; Gmail about 15 per
account), and a Dovecot refuses logins beyond ``mail_max_userip_connections``. A pass now
opens several connections (folders in parallel) and several passes run at once, so every
store is opened through a limiter that counts connections per ``host:port``. The
in-process :class:`LocalLimiter` serves one process; a shared one (e.g. Redis-backed, for
workers on several machines) only has to implement :class:`ConnectionLimiter`.

A server that throttles gets a lower cap for a while (issue 8: "reduce the connection
count for that server adaptively"): a store calls :func:`report_throttle`, the limiter
halves that server's effective cap and lets it grow back by one per quiet period (the
rule is :mod:`mxshift.engine.backoff_policy`). Connections above the lowered cap are not
killed; new ones wait (optional extras are refused with :class:`NoFreeSlot`).
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Callable, ContextManager, Iterator, Protocol, TypeVar

from mxshift.engine import backoff_policy as policy
from mxshift.errors import EndpointError

log = logging.getLogger(__name__)

T = TypeVar("T")
_local = threading.local()


class NoFreeSlot(EndpointError):
    """No slot is free right now and the caller asked not to wait (an optional extra
    connection: the pass goes on with the connections it has)."""


def waiting_allowed() -> bool:
    """False inside :func:`without_waiting` (for limiter implementations to honour)."""
    return not getattr(_local, "no_wait", False)


@contextmanager
def without_waiting() -> Iterator[None]:
    """Within this block (this thread), a full server raises :class:`NoFreeSlot` instead
    of waiting. Why: a pass that waited for an extra connection while holding its first
    ones could wait for itself; extras are only worth having when free."""
    before = getattr(_local, "no_wait", False)
    _local.no_wait = True
    try:
        yield
    finally:
        _local.no_wait = before


class ConnectionLimiter(Protocol):
    def slot(self, server: str) -> ContextManager[None]:
        """Hold one connection slot of ``server`` ("host:port") for the ``with`` block.

        Blocks until a slot is free (inside :func:`without_waiting`, an implementation
        should raise :class:`NoFreeSlot` instead; one that cannot tell may block). The
        slot is released when the block ends, also on an exception. A caller holds the
        slot for the whole life of the connection.
        """
        ...


@dataclass(frozen=True)
class Reduction:
    """One cut of a server's cap, as the admin is told about it."""

    server: str
    before: int
    after: int

    @property
    def note(self) -> str:
        return policy.reduction_note(self.server, self.before, self.after)


class LocalLimiter:
    """Connection caps inside this process: one counting semaphore per server.

    ``caps`` maps "host:port" to its configured cap; a server not named gets ``default``.
    The cap enforced is that, lowered after a throttle (:meth:`throttled`); ``clock`` is
    injectable so that tests can watch the recovery without waiting minutes.
    """

    def __init__(self, caps: dict[str, int] | None = None, default: int = 10, *,
                 clock: Callable[[], float] = time.monotonic,
                 cap_policy: policy.CapPolicy = policy.CapPolicy()) -> None:
        self._caps = dict(caps or {})
        self._default = default
        self._clock = clock
        self._policy = cap_policy
        self._policies: dict[str, policy.CapPolicy] = {}
        self._lowered: dict[str, policy.Lowered] = {}
        self._lock = threading.Lock()
        self._free: dict[str, threading.Condition] = {}
        self._in_use: dict[str, int] = {}
        self.peak: dict[str, int] = {}   # highest number of slots held at once, per server
        # highest number held when a slot was taken since the last cut (for tests/operators)
        self.peak_since_cut: dict[str, int] = {}
        self.reductions: list[Reduction] = []

    def set_cap(self, server: str, cap: int, *, recovery_period: float | None = None) -> None:
        """Set the *configured* cap (and how fast a lowered cap recovers). A cap lowered
        after a throttle stays lowered: every pass configures its servers again."""
        if cap < 1:
            raise ValueError("a connection cap is at least 1")
        with self._lock:
            self._caps[server] = cap
            if recovery_period is not None:
                self._policies[server] = policy.CapPolicy(recovery_period,
                                                          self._policy.settle)
        self._wake(server)

    def _wake(self, server: str) -> None:
        with self._lock:
            cond = self._free.get(server)
        if cond is not None:
            with cond:
                cond.notify_all()

    def configured_cap(self, server: str) -> int:
        return self._caps.get(server, self._default)

    def policy_of(self, server: str) -> policy.CapPolicy:
        return self._policies.get(server, self._policy)

    def cap(self, server: str) -> int:
        """The cap enforced now: the configured one, or lower after a throttle."""
        with self._lock:
            return self._cap_locked(server)

    def _cap_locked(self, server: str) -> int:
        configured = self._caps.get(server, self._default)
        lowered = self._lowered.get(server)
        if lowered is None:
            return configured
        now, pol = self._clock(), self.policy_of(server)
        if policy.recovered(configured, lowered, now, pol):
            del self._lowered[server]
            return configured
        return policy.effective_cap(configured, lowered, now, pol)

    def throttled(self, server: str) -> Reduction | None:
        """``server`` throttled one of our connections: lower its cap (see
        backoff_policy). Returns the reduction, or None when the cap did not go down
        (already at 1, or the same episode as the last cut)."""
        with self._lock:
            before = self._cap_locked(server)
            lowered = policy.after_throttle(self._caps.get(server, self._default),
                                            self._lowered.get(server), self._clock(),
                                            self.policy_of(server),
                                            self._in_use.get(server, 0))
            self._lowered[server] = lowered
            if lowered.cap >= before:
                return None
            self.peak_since_cut[server] = 0
            cut = Reduction(server, before, lowered.cap)
            self.reductions.append(cut)
            return cut

    def in_use(self, server: str) -> int:
        return self._in_use.get(server, 0)

    def _cond(self, server: str) -> threading.Condition:
        with self._lock:
            cond = self._free.get(server)
            if cond is None:
                cond = self._free[server] = threading.Condition()
            return cond

    @contextmanager
    def slot(self, server: str) -> Iterator[None]:
        cond = self._cond(server)
        with cond:
            while self._in_use.get(server, 0) >= self.cap(server):
                if not waiting_allowed():
                    raise NoFreeSlot(f"{server}: all {self.cap(server)} connections in use")
                # a lowered cap grows back with time, not with a release: look again soon
                cond.wait(0.5 if server in self._lowered else None)
            n = self._in_use[server] = self._in_use.get(server, 0) + 1
            self.peak[server] = max(self.peak.get(server, 0), n)
            if server in self.peak_since_cut:
                self.peak_since_cut[server] = max(self.peak_since_cut[server], n)
        try:
            yield
        finally:
            with cond:
                self._in_use[server] -= 1
                cond.notify()


#: The limiter of this process, shared by every pass it runs (sync.py sets the caps from
#: the project file). Replace it with ``set_limiter`` to share caps between processes.
_limiter: ConnectionLimiter = LocalLimiter()


def limiter() -> ConnectionLimiter:
    return _limiter


def set_limiter(new: ConnectionLimiter) -> ConnectionLimiter:
    """Install ``new`` for this process; returns the previous one (tests restore it)."""
    global _limiter
    old, _limiter = _limiter, new
    return old


def server_key(host: str, port: int) -> str:
    return f"{host}:{port}"


class LimitedStore:
    """A store holding a connection slot until it is closed.

    Why a wrapper and not a change to the store: the slot is the limiter's business and
    any Store can carry one; everything but ``close`` goes straight to the store.
    """

    def __init__(self, store: object, release: ExitStack) -> None:
        self._store = store
        self._release = release

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def close(self) -> None:
        try:
            self._store.close()  # type: ignore[attr-defined]
        finally:
            self._release.close()  # idempotent: a second close releases nothing


def open_limited(server: str, connect: Callable[[], T]) -> T:
    """Take a slot of ``server`` (waiting if needed), then ``connect()``; the slot goes
    back when the returned store is closed, or at once when connecting fails."""
    stack = ExitStack()
    stack.enter_context(limiter().slot(server))
    try:
        store = connect()
    except BaseException:
        stack.close()
        raise
    return LimitedStore(store, stack)  # type: ignore[return-value]


def configure(server: str, cap: int, *, recovery_period: float | None = None) -> None:
    """Tell this process's limiter the cap of ``server`` (from the project file), and how
    fast a cap lowered after a throttle grows back (``[x.throttle] connection_recovery``).

    Called for every mailbox: it sets the configured cap only, so a cap lowered after a
    throttle stays lowered. A shared limiter configured elsewhere (without ``set_cap``)
    is left alone."""
    set_cap = getattr(_limiter, "set_cap", None)
    if set_cap is not None:
        set_cap(server, cap, recovery_period=recovery_period)


def report_throttle(server: str) -> str | None:
    """A store got a throttling answer from ``server``: lower its cap in this process's
    limiter. Returns the note for the admin ("server X throttled: connections reduced
    from N to M") when the cap went down, None otherwise (or for a limiter that cannot
    adapt). Never raises: a limiter's trouble must not turn a wait into a failure."""
    throttled = getattr(_limiter, "throttled", None)
    if throttled is None:
        return None
    try:
        cut = throttled(server)
    except Exception as exc:  # e.g. Redis unreachable: the wait still happens
        log.warning("could not lower the connection cap of %s: %s", server, exc)
        return None
    if cut is None:
        return None
    log.warning("%s", cut.note)
    return cut.note


class ByteBudget:
    """Bytes of message data held in memory at once, shared by everyone copying.

    ``mxshift sync`` makes one for the whole run (sync.py: every pass and folder worker
    of the process); a pass run on its own makes its own (engine/mailbox_pass.py).

    Why: each worker fetches a batch, then appends it; with several workers (and a large
    message travelling alone) the sum must still fit the configured ``batch_bytes``, so
    peak memory follows the budget, not the mailbox or the number of connections. A
    reservation larger than the whole budget (one large message) waits until it has the
    budget to itself. Reservations are served in the order asked (first come, first
    served): with workers that fetch their next batch ahead, small reservations would
    otherwise keep a large message waiting for the whole budget indefinitely.
    """

    def __init__(self, total: int) -> None:
        self.total = max(1, total)
        self.free = self.total
        self._cond = threading.Condition()
        self.peak = 0  # most bytes reserved at once
        self._tickets = 0   # reservations asked for so far
        self._serving = 0   # the ticket whose turn it is

    @contextmanager
    def hold(self, size: int) -> Iterator[None]:
        size = max(0, min(size, self.total))
        if size == 0:  # nothing to hold: no need to queue behind anyone
            yield
            return
        with self._cond:
            ticket = self._tickets
            self._tickets += 1
            while self._serving != ticket or self.free < size:
                self._cond.wait()
            self._serving += 1
            self._cond.notify_all()  # the next in line may fit too
            self.free -= size
            self.peak = max(self.peak, self.total - self.free)
        try:
            yield
        finally:
            self.give_back(size)

    def try_take(self, size: int, *, keep_free: int = 0) -> bool:
        """Reserve ``size`` bytes now, or not at all (never waits): only when nobody is
        queued and ``keep_free`` bytes stay free after it. The caller gives them back
        with :meth:`give_back`. For a holder that does not wait (engine/early_fetch.py):
        leaving room for the waiting kind keeps every ``hold`` servable."""
        with self._cond:
            if size <= 0:
                return True
            if self._serving != self._tickets or self.free - size < keep_free:
                return False
            self.free -= size
            self.peak = max(self.peak, self.total - self.free)
            return True

    def give_back(self, size: int) -> None:
        with self._cond:
            self.free += size
            self._cond.notify_all()
