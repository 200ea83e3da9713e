"""Google Workspace tokens: a service account with domain-wide delegation (google-auth).

Why delegation: the service account signs a JWT whose subject is the mailbox user and gets
a token for ``https://mail.google.com/`` *as that user*; one key file serves a whole
domain once a super admin has listed the account's client id and the scope under Admin
console > Security > API controls > Domain-wide delegation. Tokens are per user (unlike
Microsoft's app token), so the per-user cache really matters here.
"""

from __future__ import annotations

import json
import time
from typing import Any

from mxshift.oauth.tokens import Token, token_error

SCOPE = "https://mail.google.com/"


def explain_refusal(data: Any, *, client: str, user: str) -> str:
    """Plain words for Google's token error (``error`` / ``error_description``)."""
    if not isinstance(data, dict):
        data = {}
    error = str(data.get("error") or "")
    description = str(data.get("error_description") or "")
    if error == "unauthorized_client":
        return (f"service account client {client} may not act for users, or not for "
                f"{SCOPE}: add the client id with that scope under Admin console > "
                f"Security > API controls > Domain-wide delegation")
    if error == "invalid_grant" and "email" in description.lower():
        return f"Google does not know the user {user} (invalid_grant: {description})"
    if error == "invalid_grant":
        return (f"Google refused the service account's signed request for {user} "
                f"(invalid_grant: {description or 'no detail'}): the key may be deleted or "
                f"the machine's clock off")
    return f"Google refused a token for {user}: {error or 'refused'} {description}".strip()


class GoogleTokens:
    """Tokens for ``user`` from a service-account key (the JSON Google hands out)."""

    kind = "google"

    def __init__(self, *, key_json: str, token_uri: str | None = None,
                 ca_file: str | None = None, timeout: float = 30.0) -> None:
        try:
            info = json.loads(key_json)
        except json.JSONDecodeError as exc:
            raise token_error(f"the service account key is not JSON: {exc.msg} at line "
                              f"{exc.lineno}") from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise token_error("the service account key is not a Google service account "
                              "key file (\"type\": \"service_account\")")
        if token_uri:
            info["token_uri"] = token_uri
        self.client = str(info.get("client_id") or info.get("client_email") or "?")
        self._info = info
        self._ca_file = ca_file
        self._timeout = timeout

    def fetch(self, user: str) -> Token:
        from google.auth import exceptions
        from google.oauth2 import service_account

        try:
            creds = service_account.Credentials.from_service_account_info(
                self._info, scopes=[SCOPE], subject=user)
        except (ValueError, KeyError) as exc:
            raise token_error(f"the service account key is incomplete: {exc}") from None
        from google.auth.transport.requests import Request

        from mxshift.oauth.http import TokenSession

        session = TokenSession(self._ca_file, self._timeout)
        try:
            creds.refresh(Request(session=session))
        except exceptions.RefreshError as exc:
            data = exc.args[1] if len(exc.args) > 1 else None
            raise token_error(explain_refusal(data, client=self.client, user=user)) from None
        except exceptions.TransportError as exc:
            raise token_error(f"cannot reach Google's token service: {exc}",
                              final=False) from None
        finally:
            session.close()
        expiry = creds.expiry.timestamp() if creds.expiry else time.time() + 3600
        if creds.expiry is not None and creds.expiry.tzinfo is None:
            # google-auth keeps expiry as naive UTC
            from datetime import timezone
            expiry = creds.expiry.replace(tzinfo=timezone.utc).timestamp()
        return Token(creds.token, expiry)

    def problems(self, token: Token) -> list[str]:
        return []
