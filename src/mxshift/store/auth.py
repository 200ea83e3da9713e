"""Logging in: a user's own password, or an admin/master login acting for the user.

Why two admin forms: SASL PLAIN with an authorization identity is the standard way
(RFC 4616) and what most servers with admin impersonation accept; Dovecot and several
hosted services also accept ``LOGIN "user*admin" password`` (a master-user separator).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from imapclient import IMAPClient


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str = field(repr=False)
    admin_user: str | None = None
    admin_mode: Literal["sasl", "dovecot"] = "sasl"
    admin_separator: str = "*"

    def __repr__(self) -> str:  # never show the password, even in a traceback
        return f"Credentials(user={self.user!r}, admin_user={self.admin_user!r})"


def authenticate(client: IMAPClient, cred: Credentials) -> None:
    """Log ``client`` in as ``cred.user``; LoginError on refusal."""
    if cred.admin_user is None:
        client.login(cred.user, cred.password)
    elif cred.admin_mode == "sasl":
        client.plain_login(cred.admin_user, cred.password, authorization_identity=cred.user)
    else:
        client.login(f"{cred.user}{cred.admin_separator}{cred.admin_user}", cred.password)
