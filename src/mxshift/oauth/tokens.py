"""Access tokens: what a provider hands out, and the per-user cache in front of it.

Why a cache of our own: a migration logs in thousands of times (every pass, every reconnect
after a throttling BYE). Asking the identity provider each time is slow and gets *us*
throttled; holding a token until it is about to expire is what the providers ask for. Why
"about to": a token that expires between our check and the server's is a failed login, so
a token is refreshed ``margin`` seconds before its expiry, and a token the server refused
is dropped at once (``invalidate``), whatever its stated lifetime.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from mxshift.errors import MailboxError, Retry


@dataclass(frozen=True)
class Token:
    """An access token and when it stops working (``time.time()`` seconds)."""

    value: str = field(repr=False)
    expires_at: float

    def __repr__(self) -> str:  # never show the token, even in a traceback
        return f"Token(expires_at={self.expires_at:.0f})"


class TokenError(MailboxError):
    """No token could be had for a mailbox. The message says why in the operator's words
    (wrong secret, missing permission, unknown user), never the secret or the token."""


class TokenProvider(Protocol):
    """Where tokens come from (Microsoft, Google, a command, a fixed value)."""

    #: short name for messages: "microsoft", "google", "command", "static"
    kind: str

    def fetch(self, user: str) -> Token:
        """A new token for ``user`` (the mailbox, the SASL user); TokenError if refused."""
        ...

    def problems(self, token: Token) -> list[str]:
        """What the token lacks for IMAP (scope, role), in plain words; [] when fine."""
        ...


class TokenCache:
    """Tokens per user, refreshed ``margin`` seconds before expiry; thread-safe.

    ``fetches`` counts provider calls, so tests and reports can tell a refresh happened.
    """

    def __init__(self, provider: TokenProvider, *, margin: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.provider = provider
        self.margin = margin
        self._clock = clock
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()
        self._user_locks: dict[str, threading.Lock] = {}
        self.fetches = 0

    def token(self, user: str, *, fresh: bool = False) -> str:
        """A usable token for ``user``: the cached one unless it is near expiry, was
        refused, or ``fresh`` is asked for (after the server refused it)."""
        key = user.lower()
        with self._lock:
            user_lock = self._user_locks.setdefault(key, threading.Lock())
        with user_lock:  # one fetch per user at a time; others wait and share it
            cached = self._tokens.get(key)
            if not fresh and cached is not None and \
                    cached.expires_at - self.margin > self._clock():
                return cached.value
            token = self.provider.fetch(user)
            self.fetches += 1
            self._tokens[key] = token
            return token.value

    def peek(self, user: str) -> Token | None:
        return self._tokens.get(user.lower())

    def invalidate(self, user: str, value: str | None = None) -> None:
        """Forget ``user``'s token (only if it is still ``value``, when given: another
        thread may already have fetched a fresh one)."""
        key = user.lower()
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and (value is None or cached.value == value):
                del self._tokens[key]


def token_error(message: str, *, final: bool = True) -> TokenError:
    return TokenError(message, retry=Retry.FINAL if final else Retry.TEMPORARY)
