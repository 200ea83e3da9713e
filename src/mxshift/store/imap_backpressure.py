"""Back-pressure for ImapStore: wait as the server says, log in again, repeat what is safe.

Why a mixin of its own: it is one policy (issue 8) spread over every command, with its
own state on the store (``budget``, ``_reopen``, ``_reconnecting``, ``notes``); kept here,
imap.py stays the protocol and this file the patience.
"""

from __future__ import annotations

import select
from datetime import datetime
from typing import Callable, TypeVar

from imapclient.exceptions import IMAPClientError

from mxshift.engine import limits
from mxshift.errors import EndpointError, FolderError, Retry, ThrottledError
from mxshift.store import throttle
from mxshift.store.imap_session import _BACKOFF_CODES, _LOST, _clean, _drop, _endpoint_error

T = TypeVar("T")


class BackPressure:
    """Mixed into :class:`mxshift.store.imap.ImapStore`."""

    def _retry(self, command: str, once: Callable[[], "T"]) -> "T":
        """Run one idempotent command through the server's back-pressure.

        Throttled (Microsoft's "Suggested Backoff Time", [UNAVAILABLE], [INUSE], [LIMIT]
        outside APPEND, Gmail's bandwidth limit): wait as told, then send it again. Lost
        (BYE, reset, EOF) or token expired: wait, log in again (a fresh token), re-select
        the folder, send it again. Reads, flag changes, UID EXPUNGE, CREATE and SELECT are
        safe to repeat; APPEND is not (see :meth:`_append_retrying`). Gives up with an
        EndpointError once the pass's wait budget (``max_total_wait``) is spent; other
        IMAP errors go to the caller to grade.
        """
        while True:
            try:
                result = once()
            except _LOST as exc:
                if self._reconnecting or self._reopen is None:
                    raise _endpoint_error(self._host, exc) from None
                self._back_off(throttle.classify(_clean(str(exc)) or type(exc).__name__,
                                                 command=command, lost=True))
                continue
            except IMAPClientError as exc:
                bp = throttle.classify(_clean(str(exc)), command=command)
                if bp is None or self._reconnecting or self._reopen is None:
                    raise
                self._back_off(bp)
                continue
            self.budget.succeeded()
            return result

    def _raise_if_back_pressure(self, exc: IMAPClientError, command: str) -> None:
        """Back-pressure left over (no retrying, or given up) is the server's trouble, not
        the folder's: an EndpointError with the server's suggested wait."""
        text = _clean(str(exc))
        bp = throttle.classify(text, command=command)
        if bp is not None:
            raise EndpointError(f"{self._host}: {text}", retry=Retry.WAIT,
                                wait_seconds=bp.wait or 60) from None

    def _back_off(self, bp: throttle.Backpressure | None) -> None:
        assert bp is not None
        self._lower_cap(bp)
        self._wait(bp)
        if bp.reconnect:
            self._reconnect(bp)

    def _lower_cap(self, bp: throttle.Backpressure) -> None:
        """A throttle (also a BYE or drop that gives throttling as its reason, not a plain
        lost connection or an expired token) lowers the server's connection cap."""
        if self.server is None:
            return
        if bp.kind == "throttled" or (bp.kind == "lost" and
                                      throttle.classify(bp.text) is not None):
            note = limits.report_throttle(self.server)
            if note is not None:
                self.notes.append(note)

    def _rate(self, messages: int, nbytes: int) -> None:
        """Wait for the server's rate limits (shared by all workers when installed); a
        spent daily budget ends the pass as a ThrottledError that says so."""
        if self.limiter is None:
            return
        try:
            self.limiter.acquire(messages, nbytes)
        except throttle.DailyBudgetSpent as exc:
            raise ThrottledError(str(exc), retry=Retry.WAIT,
                                 wait_seconds=exc.wait) from None

    def _wait(self, bp: throttle.Backpressure) -> None:
        try:
            wait = self.budget.next_wait(bp)
        except throttle.ThrottledOut as exc:
            raise ThrottledError(str(exc), retry=Retry.WAIT,
                                wait_seconds=self.budget.settings.max_single_wait) from None
        if wait > 0:
            self.sleep(wait)

    def _reconnect(self, bp: throttle.Backpressure) -> None:
        """Log in again (a fresh token after an expired one) and re-select the folder
        that was selected, in the same mode; a changed UIDVALIDITY is a FolderError (the
        UIDs in hand mean other messages now)."""
        assert self._reopen is not None
        creds = getattr(self._reopen, "keywords", {}).get("credentials")
        if bp.kind == "token-expired" and creds is not None and creds.tokens is not None:
            creds.tokens.invalidate(creds.user)
        _drop(self._c)
        while True:
            self._reconnecting = True
            try:
                self._c = self._reopen()
                if {"CONDSTORE", "ENABLE"} <= self.capabilities:
                    self._enable_modseq()
                if self._selected is not None:
                    try:
                        st = self._c.select_folder(self._selected, readonly=self._readonly)
                    except _LOST:
                        raise
                    except IMAPClientError as exc:  # gone or refused: not worth waiting
                        if throttle.classify(_clean(str(exc)), command="SELECT") is None:
                            self._selected = None
                            raise FolderError(f"SELECT {self._selected!r} after reconnecting: "
                                              f"{_clean(str(exc))}") from None
                        raise
                    if self._uidvalidity is not None and \
                            self._uidvalidity[0] == self._selected and \
                            int(st[b"UIDVALIDITY"]) != self._uidvalidity[1]:
                        self._selected = None
                        raise FolderError(f"{self._selected!r} changed UIDVALIDITY while "
                                          f"reconnecting; it is read again next pass")
                break
            except (EndpointError, IMAPClientError, OSError) as exc:
                # the server is still pushing back (or down): wait within the budget
                self._wait(throttle.classify(str(exc), lost=True)  # type: ignore[arg-type]
                           or throttle.Backpressure("lost", None, True, str(exc)))
            finally:
                self._reconnecting = False
        self.reconnects += 1

    def _ensure_alive(self) -> None:
        """Before a command that must not be sent twice: read what the server said while
        we were quiet. A BYE that came meanwhile (token expired, idle timeout, an admin's
        kick) is then handled by reconnecting *before* the APPEND, not in its middle."""
        if self._reopen is None:
            return
        try:
            sock = self._c.socket()
            waiting = bool(getattr(sock, "pending", lambda: 0)()) or \
                bool(select.select([sock], [], [], 0)[0])
        except (OSError, ValueError):
            waiting = True
        if waiting:
            self._retry("NOOP", lambda: self._c.noop())

    def _append_retrying(self, folder: str,
                         messages: list[tuple[bytes, frozenset[str], datetime]]
                         ) -> tuple[str, list]:
        """APPEND through back-pressure, where that is safe.

        A tagged NO that is back-pressure refused the message(s): nothing was stored, so
        wait and send again. A connection lost in the middle is different: the server may
        have stored them before it went, and sending again could duplicate. Then the pass
        stops here with an EndpointError, and the journal's pending rows are settled from
        what the destination holds at the start of the next pass (reconcile.py).
        """
        self._rate(len(messages), sum(len(m[0]) for m in messages))
        while True:
            self._ensure_alive()
            try:
                typ, data = self._append_command(folder, messages)
            except _LOST as exc:
                raise EndpointError(f"{self._host}: connection lost during APPEND to "
                                    f"{folder!r} ({_clean(str(exc)) or type(exc).__name__}); "
                                    f"the next pass settles it") from None
            if typ != "OK" and self._reopen is not None:
                text = _clean(b" ".join(d for d in data if isinstance(d, bytes))
                              .decode("utf-8", "replace"))
                bp = throttle.classify(text, command="APPEND")
                if bp is not None:
                    self._back_off(bp)
                    continue
            self.budget.succeeded()
            return typ, data

    def _call(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        name = getattr(fn, "__name__", "command")
        on_client = getattr(fn, "__self__", None) is self._c

        def once():  # type: ignore[no-untyped-def]
            # after a reconnect, a method of the old client is the new client's method
            return (getattr(self._c, name) if on_client else fn)(*args, **kwargs)

        try:
            return self._retry(name.upper(), once)
        except IMAPClientError as exc:
            text = _clean(str(exc))
            if any(code in text.upper() for code in _BACKOFF_CODES):
                raise EndpointError(f"{self._host}: {text}", retry=Retry.WAIT,
                                    wait_seconds=60) from None
            raise FolderError(f"{getattr(fn, '__name__', 'command')} on "
                              f"{self._selected!r}: {text}") from None
