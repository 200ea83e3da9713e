"""Per-server connection caps: how many IMAP connections mxshift holds to one server.

Why a seam of its own: providers limit simultaneous connections per user and per client
(Microsoft 365 allows about 20 per mailbox and throttles beyond; Gmail about 15 per
account), and a Dovecot refuses logins beyond ``mail_max_userip_connections``. A pass now
opens several connections (folders in parallel) and several passes run at once, so every
store is opened through a limiter that counts connections per ``host:port``. The
in-process :class:`LocalLimiter` serves one process; a shared one (e.g. Redis-backed, for
workers on several machines) only has to implement :class:`ConnectionLimiter`.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack, contextmanager
from typing import Callable, ContextManager, Iterator, Protocol, TypeVar

from mxshift.errors import EndpointError

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


class LocalLimiter:
    """Connection caps inside this process: one counting semaphore per server.

    ``caps`` maps "host:port" to its cap; a server not named gets ``default``.
    """

    def __init__(self, caps: dict[str, int] | None = None, default: int = 10) -> None:
        self._caps = dict(caps or {})
        self._default = default
        self._lock = threading.Lock()
        self._free: dict[str, threading.Condition] = {}
        self._in_use: dict[str, int] = {}
        self.peak: dict[str, int] = {}   # highest number of slots held at once, per server

    def set_cap(self, server: str, cap: int) -> None:
        if cap < 1:
            raise ValueError("a connection cap is at least 1")
        with self._lock:
            self._caps[server] = cap
            cond = self._free.get(server)
        if cond is not None:
            with cond:
                cond.notify_all()

    def cap(self, server: str) -> int:
        return self._caps.get(server, self._default)

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
                cond.wait()
            n = self._in_use[server] = self._in_use.get(server, 0) + 1
            self.peak[server] = max(self.peak.get(server, 0), n)
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


def configure(server: str, cap: int) -> None:
    """Tell this process's limiter the cap of ``server`` (from the project file).

    A shared limiter configured elsewhere (without ``set_cap``) is left alone."""
    set_cap = getattr(_limiter, "set_cap", None)
    if set_cap is not None:
        set_cap(server, cap)


class ByteBudget:
    """Bytes of message data a pass may hold in memory at once, shared by its workers.

    Why: each worker fetches a batch, then appends it; with several workers (and a large
    message travelling alone) the sum must still fit the configured ``batch_bytes``, so
    peak memory follows the budget, not the mailbox or the number of connections. A
    reservation larger than the whole budget (one large message) waits until it has the
    budget to itself.
    """

    def __init__(self, total: int) -> None:
        self.total = max(1, total)
        self.free = self.total
        self._cond = threading.Condition()
        self.peak = 0  # most bytes reserved at once

    @contextmanager
    def hold(self, size: int) -> Iterator[None]:
        size = max(0, min(size, self.total))
        with self._cond:
            while self.free < size:
                self._cond.wait()
            self.free -= size
            self.peak = max(self.peak, self.total - self.free)
        try:
            yield
        finally:
            with self._cond:
                self.free += size
                self._cond.notify_all()
