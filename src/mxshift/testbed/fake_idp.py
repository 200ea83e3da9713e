"""The FAKE identity provider: a stand-in for Microsoft Entra ID and Google's token service.

Why a fake (and named so): Microsoft's and Google's clouds cannot be reached from a test
machine, but everything up to their HTTP endpoints can be real: MSAL and google-auth make
their real requests here, and a real Dovecot (``oauth`` variant) checks every XOAUTH2 /
OAUTHBEARER token by asking this process (its ``oauth2`` passdb, introspection mode
``post``). So a test sees tokens issued, cached, refused, expired and refreshed end to end.

What it serves:

* ``https://…/{tenant}/v2.0/.well-known/openid-configuration`` and
  ``https://…/{tenant}/oauth2/v2.0/token`` (client credentials), as Entra ID does, with
  Entra's ``AADSTSnnnnn`` errors for a wrong secret, an unknown app, missing consent;
* ``https://…/google/token`` (JWT bearer grant, service account, subject = the user), with
  Google's ``unauthorized_client`` / ``invalid_grant`` errors;
* ``http://…/introspect`` for Dovecot: ``{"active": true, "username": …}`` or
  ``{"active": false}`` for an unknown, expired or revoked token.

Controls for tests: :meth:`FakeIdP.expire_all` (every token issued so far stops working),
``lifetime`` (seconds a new token is valid), and the counters ``issued`` (per user or app)
and ``introspections``.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

MICROSOFT_ROLE = "IMAP.AccessAsApp"
GOOGLE_SCOPE = "https://mail.google.com/"


@dataclass
class MicrosoftApp:
    tenant: str
    client_id: str
    secret: str
    roles: tuple[str, ...] = (MICROSOFT_ROLE,)
    consent: bool = True
    app_user: str | None = None  # the mailbox Dovecot is told an app token belongs to


@dataclass
class GoogleAccount:
    client_email: str
    client_id: str
    public_key_pem: bytes
    delegated_scopes: tuple[str, ...] = (GOOGLE_SCOPE,)
    users: frozenset[str] | None = None  # None: every user exists


@dataclass
class _Issued:
    username: str
    expires_at: float
    kind: str


@dataclass
class FakeIdP:
    """Start with :func:`start_fake_idp`; stop with :meth:`stop`."""

    host: str
    ca_file: str
    lifetime: float = 3600.0
    https_port: int = 0
    http_port: int = 0
    ms_apps: dict[tuple[str, str], MicrosoftApp] = field(default_factory=dict)
    google: dict[str, GoogleAccount] = field(default_factory=dict)
    issued: dict[str, int] = field(default_factory=dict)
    introspections: int = 0
    refused_introspections: int = 0
    _tokens: dict[str, _Issued] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _servers: list[ThreadingHTTPServer] = field(default_factory=list)

    # -- set-up -------------------------------------------------------------------------
    @property
    def authority(self) -> str:
        """What MSAL is given as ``authority`` (the tenant is appended by mxshift)."""
        return f"https://{self.host}:{self.https_port}"

    @property
    def google_token_uri(self) -> str:
        return f"https://{self.host}:{self.https_port}/google/token"

    def add_microsoft_app(self, tenant: str, client_id: str, secret: str,
                          **kwargs: Any) -> MicrosoftApp:
        app = MicrosoftApp(tenant, client_id, secret, **kwargs)
        self.ms_apps[(tenant, client_id)] = app
        return app

    def add_google_account(self, client_email: str, public_key_pem: bytes, *,
                           client_id: str = "1234567890", **kwargs: Any) -> GoogleAccount:
        acct = GoogleAccount(client_email, client_id, public_key_pem, **kwargs)
        self.google[client_email] = acct
        return acct

    def expire_all(self) -> int:
        """Every token issued so far stops working now (as if its lifetime ended)."""
        with self._lock:
            for t in self._tokens.values():
                t.expires_at = 0.0
            return len(self._tokens)

    def stop(self) -> None:
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()
        self._servers.clear()

    # -- issuing ------------------------------------------------------------------------
    def _issue(self, username: str, kind: str, counter: str) -> tuple[str, int]:
        token = f"fake-{kind}-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = _Issued(username, time.time() + self.lifetime, kind)
            self.issued[counter] = self.issued.get(counter, 0) + 1
        return token, int(self.lifetime)

    def _ms_token(self, app: MicrosoftApp) -> dict[str, Any]:
        """A JWT shaped like Entra's app-only token (claims readable, signature fake)."""
        import jwt

        opaque, lifetime = self._issue(app.app_user or "", "microsoft",
                                       f"microsoft:{app.client_id}")
        claims = {"aud": "https://outlook.office365.com", "tid": app.tenant,
                  "appid": app.client_id, "roles": list(app.roles), "jti": opaque,
                  "exp": int(time.time() + lifetime)}
        token = jwt.encode(claims, "fake-idp-signing-key-not-a-secret-0123456789",
                           algorithm="HS256")
        with self._lock:  # Dovecot will present the JWT, not the opaque id
            self._tokens[token] = self._tokens.pop(opaque)
        return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                "access_token": token}

    def microsoft_token(self, tenant: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        app = self.ms_apps.get((tenant, form.get("client_id", "")))
        if app is None:
            return _aadsts(400, "unauthorized_client", 700016,
                           f"Application with identifier '{form.get('client_id')}' was not "
                           f"found in the directory '{tenant}'.")
        if form.get("client_secret") != app.secret:
            return _aadsts(401, "invalid_client", 7000215,
                           "Invalid client secret provided. Ensure the secret being sent in "
                           "the request is the client secret value, not the client secret "
                           "ID, for a secret added to app '" + app.client_id + "'.")
        if not app.consent:
            return _aadsts(400, "invalid_grant", 65001,
                           "The user or administrator has not consented to use the "
                           "application with ID '" + app.client_id + "'.")
        if form.get("grant_type") != "client_credentials":
            return _aadsts(400, "unsupported_grant_type", 70003, "unsupported grant type")
        return 200, self._ms_token(app)

    def google_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        import jwt

        assertion = form.get("assertion", "")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT"}
        acct = self.google.get(str(unverified.get("iss")))
        if acct is None:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        try:
            # google-auth addresses the assertion to Google's token endpoint whatever
            # token_uri it posts to; Google accepts that audience, and so does this fake
            claims = jwt.decode(assertion, acct.public_key_pem, algorithms=["RS256"],
                                audience=[self.google_token_uri,
                                          "https://oauth2.googleapis.com/token"])
        except jwt.PyJWTError as exc:
            return 400, {"error": "invalid_grant", "error_description": f"Invalid JWT: {exc}"}
        scopes = set(str(claims.get("scope", "")).split())
        if not scopes or not scopes <= set(acct.delegated_scopes):
            return 401, {"error": "unauthorized_client",
                         "error_description": "Client is unauthorized to retrieve access "
                                              "tokens using this method, or client not "
                                              "authorized for any of the scopes requested."}
        user = str(claims.get("sub") or "")
        if not user or (acct.users is not None and user not in acct.users):
            return 400, {"error": "invalid_grant", "error_description": "Invalid email or User ID"}
        token, lifetime = self._issue(user, "google", user)
        return 200, {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}

    def introspect(self, token: str) -> dict[str, Any]:
        with self._lock:
            self.introspections += 1
            found = self._tokens.get(token)
            if found is None or found.expires_at <= time.time() or not found.username:
                self.refused_introspections += 1
                return {"active": False}
            return {"active": True, "username": found.username,
                    "exp": int(found.expires_at), "scope": "imap"}


def _aadsts(status: int, error: str, code: int, text: str) -> tuple[int, dict[str, Any]]:
    trace = secrets.token_hex(8)
    return status, {"error": error, "error_description": f"AADSTS{code}: {text} Trace ID: "
                                                         f"{trace} Timestamp: 2026-01-01",
                    "error_codes": [code], "trace_id": trace, "correlation_id": trace}


def _handler(idp: FakeIdP) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            return None

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            return {k: v[0] for k, v in parse_qs(body).items()}

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            if path.endswith("/.well-known/openid-configuration"):
                tenant = path.strip("/").split("/")[0]
                base = f"{idp.authority}/{tenant}"
                self._reply(200, {
                    "issuer": f"{base}/v2.0",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                    "jwks_uri": f"{base}/discovery/v2.0/keys",
                    "response_types_supported": ["code", "token"],
                    "subject_types_supported": ["pairwise"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "tenant_region_scope": "EU",
                })
                return
            self._reply(404, {"error": "not_found"})

        def do_POST(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            form = self._form()
            if path == "/introspect":
                self._reply(200, idp.introspect(form.get("token", "")))
            elif path == "/google/token":
                self._reply(*idp.google_token(form))
            elif path.endswith("/oauth2/v2.0/token"):
                self._reply(*idp.microsoft_token(path.strip("/").split("/")[0], form))
            else:
                self._reply(404, {"error": "not_found"})

    return Handler


def start_fake_idp(base_dir: Path, *, host: str = "127.0.0.1",
                   introspection_port: int = 0) -> FakeIdP:
    """Start the FAKE IdP: HTTPS (token endpoints, throwaway CA in ``base_dir``) and
    plain HTTP (Dovecot's introspection, on ``introspection_port``)."""
    import trustme

    base_dir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    cert = ca.issue_cert(host, "localhost")
    ca_file = base_dir / "fake-idp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    idp = FakeIdP(host=host, ca_file=str(ca_file))
    handler = _handler(idp)

    https = ThreadingHTTPServer((host, 0), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    https.socket = ctx.wrap_socket(https.socket, server_side=True)
    http = ThreadingHTTPServer((host, introspection_port), handler)
    for srv in (https, http):
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, name="fake-idp", daemon=True).start()
        idp._servers.append(srv)
    idp.https_port = https.server_address[1]
    idp.http_port = http.server_address[1]
    return idp
