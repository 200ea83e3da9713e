"""Microsoft 365 app-only tokens (MSAL client credentials) for IMAP.

Why app-only: an admin migrating a tenant has no user passwords; an Entra ID application
with the ``IMAP.AccessAsApp`` permission (admin-consented), registered as a service
principal in Exchange Online with access to the mailboxes, logs in as any mailbox with
XOAUTH2, the mailbox address being the SASL user. The token is the application's, the
same for every mailbox; it is still cached per user by :class:`TokenCache`, which costs
nothing here (MSAL answers from its own cache) and keeps one code path for every provider.

Errors come back from Entra ID as ``AADSTSnnnnn`` codes; :func:`explain_aadsts` turns
the ones an admin meets while setting this up into what to do about them.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

from mxshift.oauth.tokens import Token, token_error

SCOPE = "https://outlook.office365.com/.default"
ROLE = "IMAP.AccessAsApp"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"

# AADSTS code -> what it means for the admin (placeholders: {tenant}, {client})
_AADSTS = {
    7000215: "the client secret of app {client} is wrong (AADSTS7000215)",
    7000222: "the client secret of app {client} has expired (AADSTS7000222): create a new "
             "one in Entra ID > App registrations > Certificates & secrets",
    700016: "app {client} is not known in tenant {tenant} (AADSTS700016): check the client "
            "id and tenant id, and that an admin consented to the app in that tenant",
    90002: "tenant {tenant} does not exist (AADSTS90002): check tenant_id",
    900023: "tenant {tenant} is not a valid tenant id or domain (AADSTS900023)",
    500011: "Exchange Online is not available in tenant {tenant} (AADSTS500011: resource "
            "principal https://outlook.office365.com not found)",
    65001: "the app has no {role} permission in tenant {tenant}: an admin has not "
           "consented to it (AADSTS65001)",
    7000112: "app {client} is disabled in tenant {tenant} (AADSTS7000112)",
    1002012: "the scope was refused (AADSTS1002012)",
}


def explain_aadsts(result: dict[str, Any], *, tenant: str, client: str) -> str:
    """Plain words for an MSAL error result (``error``, ``error_description``,
    ``error_codes``)."""
    codes = result.get("error_codes") or []
    for code in codes:
        if code in _AADSTS:
            return _AADSTS[code].format(tenant=tenant, client=client, role=ROLE)
    description = str(result.get("error_description") or result.get("error") or "refused")
    return f"Microsoft refused a token for app {client} in tenant {tenant}: " \
           f"{description.splitlines()[0]}"


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT access token, read without checking its signature (we only
    read what Microsoft granted, to explain a refusal; the server does the checking)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, json.JSONDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


class MicrosoftTokens:
    """Client-credentials tokens for ``SCOPE`` from ``authority``/``tenant``.

    ``authority`` is Microsoft's (or a national cloud's, e.g. login.microsoftonline.us);
    ``ca_file`` is for a TLS-inspecting proxy in between (and the testbed's fake IdP).
    """

    kind = "microsoft"

    def __init__(self, *, tenant: str, client_id: str, client_secret: str,
                 authority: str = DEFAULT_AUTHORITY, ca_file: str | None = None,
                 timeout: float = 30.0) -> None:
        import msal  # imported here: only projects that use Microsoft pay for it

        from mxshift.oauth.http import TokenSession

        self.tenant, self.client_id = tenant, client_id
        base = authority.rstrip("/")
        self._session = TokenSession(ca_file, timeout)
        try:
            self._app = msal.ConfidentialClientApplication(
                client_id, client_credential=client_secret, authority=f"{base}/{tenant}",
                http_client=self._session,
                instance_discovery=False if base != DEFAULT_AUTHORITY else None)
        except ValueError as exc:  # the authority's discovery document was refused
            raise token_error(f"Microsoft's sign-in service does not know tenant {tenant} "
                              f"({exc})") from None
        except Exception as exc:  # requests' connection errors
            raise token_error(f"cannot reach Microsoft's sign-in service at {base}: "
                              f"{type(exc).__name__}: {exc}", final=False) from None
        finally:
            self._session.close()
        self._lock = threading.Lock()

    def fetch(self, user: str) -> Token:
        with self._lock:
            # Asked for a token means the previous one is unusable (expiring or refused):
            # MSAL's own cache would hand it back, so empty it first.
            self._app.remove_tokens_for_client()
            try:
                result = self._app.acquire_token_for_client(scopes=[SCOPE])
            except ValueError as exc:  # MSAL: authority unreachable or malformed
                raise token_error(f"cannot reach Microsoft's token service for tenant "
                                  f"{self.tenant}: {exc}", final=False) from None
            except Exception as exc:  # requests' connection errors
                raise token_error(f"cannot reach Microsoft's token service for tenant "
                                  f"{self.tenant}: {type(exc).__name__}: {exc}",
                                  final=False) from None
            finally:
                self._session.close()
        if "access_token" not in result:
            raise token_error(explain_aadsts(result, tenant=self.tenant,
                                             client=self.client_id))
        return Token(result["access_token"],
                     time.time() + float(result.get("expires_in") or 3600))

    def problems(self, token: Token) -> list[str]:
        claims = jwt_claims(token.value)
        if claims is None:
            return []
        roles = claims.get("roles") or []
        if ROLE not in roles:
            return [f"the app has no {ROLE} permission in tenant {self.tenant} (the token "
                    f"carries roles: {', '.join(roles) or 'none'}): add it under API "
                    f"permissions > Office 365 Exchange Online > Application permissions "
                    f"and grant admin consent"]
        return []
