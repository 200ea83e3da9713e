"""Logging in: a password, an admin/master login acting for the user, or an OAuth2 token.

Why two admin forms: SASL PLAIN with an authorization identity is the standard way
(RFC 4616) and what most servers with admin impersonation accept; Dovecot and several
hosted services also accept ``LOGIN "user*admin" password`` (a master-user separator).

Why tokens are asked for at each login, not held: a connection re-authenticates after a
drop or an expired-token BYE hours into a pass; the token cache hands back the same token
while it is fresh and a new one when it nears expiry. A token the server refuses is
dropped from the cache and a fresh one tried once, since a cached token may have been
revoked early; a second refusal is a real one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from mxshift.store.mechanisms import MECHANISMS, Mechanism  # noqa: F401 - re-exported

if TYPE_CHECKING:  # pragma: no cover
    from mxshift.oauth.tokens import TokenCache


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str = field(default="", repr=False)
    admin_user: str | None = None
    admin_mode: Literal["sasl", "dovecot"] = "sasl"
    admin_separator: str = "*"
    mechanism: Mechanism = "password"
    tokens: "TokenCache | None" = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:  # never show the password, even in a traceback
        return (f"Credentials(user={self.user!r}, admin_user={self.admin_user!r}, "
                f"mechanism={self.mechanism!r})")


class TokenRefused(LoginError):
    """The server refused a fresh token too; ``problems`` says what the token lacks."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


def authenticate(client: IMAPClient, cred: Credentials) -> None:
    """Log ``client`` in as ``cred.user``; LoginError on refusal (TokenRefused for a
    token refused twice), TokenError when no token could be had."""
    if cred.mechanism != "password":
        _token_login(client, cred)
    elif cred.admin_user is None:
        client.login(cred.user, cred.password)
    elif cred.admin_mode == "sasl":
        client.plain_login(cred.admin_user, cred.password, authorization_identity=cred.user)
    else:
        client.login(f"{cred.user}{cred.admin_separator}{cred.admin_user}", cred.password)


def _token_login(client: IMAPClient, cred: Credentials) -> None:
    assert cred.tokens is not None, "an OAuth2 login needs a token cache"
    last: LoginError | None = None
    for fresh in (False, True):
        token = cred.tokens.token(cred.user, fresh=fresh)
        try:
            if cred.mechanism == "xoauth2":
                client.oauth2_login(cred.user, token, mech="XOAUTH2")
            else:
                client.oauthbearer_login(cred.user, token)
            return
        except LoginError as exc:
            cred.tokens.invalidate(cred.user, token)
            last = exc
    from mxshift.oauth.tokens import Token

    cached = cred.tokens.peek(cred.user)
    problems = cred.tokens.provider.problems(cached or Token(token, 0.0))
    raise TokenRefused(str(last), problems)
