"""Tokens from a command the admin names, and fixed tokens for tests.

Why a command: every other identity provider (Keycloak, Okta, a vault, a company script)
can print a token; mxshift runs ``command`` with the mailbox user as its last argument and
in ``MXSHIFT_USER``, and reads the token from the first line of its output. An optional
second line ``expires_in=SECONDS`` says how long it lasts (default: ``lifetime``).
"""

from __future__ import annotations

import os
import subprocess
import time

from mxshift.oauth.tokens import Token, token_error


class CommandTokens:
    kind = "command"

    def __init__(self, command: tuple[str, ...], *, lifetime: float = 3000.0,
                 timeout: float = 60.0) -> None:
        self.command = command
        self.lifetime = lifetime
        self.timeout = timeout

    def fetch(self, user: str) -> Token:
        env = dict(os.environ, MXSHIFT_USER=user)
        name = self.command[0]
        try:
            proc = subprocess.run([*self.command, user], capture_output=True, text=True,
                                  timeout=self.timeout, env=env, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise token_error(f"token command {name!r} not found") from None
        except subprocess.TimeoutExpired:
            raise token_error(f"token command {name!r} did not answer within "
                              f"{self.timeout:.0f} s", final=False) from None
        if proc.returncode != 0:
            # stderr is the command's own explanation; its stdout might be a token
            why = (proc.stderr.strip().splitlines() or ["no message"])[-1][:300]
            raise token_error(f"token command {name!r} failed for {user} "
                              f"(exit {proc.returncode}): {why}")
        lines = proc.stdout.splitlines()
        token = lines[0].strip() if lines else ""
        if not token:
            raise token_error(f"token command {name!r} printed no token for {user}")
        lifetime = self.lifetime
        for line in lines[1:]:
            key, _, value = line.partition("=")
            if key.strip() == "expires_in":
                try:
                    lifetime = float(value)
                except ValueError:
                    pass
        return Token(token, time.time() + lifetime)

    def problems(self, token: Token) -> list[str]:
        return []


class StaticTokens:
    """One fixed token for every user (tests; a long-lived token from elsewhere)."""

    kind = "static"

    def __init__(self, token: str, *, lifetime: float = 3600.0) -> None:
        self._token = token
        self.lifetime = lifetime

    def fetch(self, user: str) -> Token:
        return Token(self._token, time.time() + self.lifetime)

    def problems(self, token: Token) -> list[str]:
        return []
