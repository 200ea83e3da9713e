"""What an endpoint's ``[source.oauth]`` / ``[destination.oauth]`` table says, and the one
token cache per such table that every connection of the process shares.

Why shared: a token is fetched once per user and reused by every pass and every reconnect
(after a throttling BYE, a dropped connection) until it nears expiry, instead of once per
login. Secrets stay references until the first token is needed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mxshift.errors import MxshiftError
from mxshift.oauth.tokens import TokenCache, TokenError, TokenProvider, token_error
from mxshift.secrets import SecretRef

TokenKind = Literal["microsoft", "google", "command", "static"]
TOKEN_KINDS: tuple[TokenKind, ...] = ("microsoft", "google", "command", "static")


@dataclass(frozen=True)
class OAuthSettings:
    """``token_provider`` and what it needs; the rest stays at its default."""

    token_provider: TokenKind
    tenant_id: str | None = None          # microsoft
    client_id: str | None = None          # microsoft
    client_secret: SecretRef | None = None  # microsoft
    authority: str | None = None          # microsoft (national clouds)
    service_account: SecretRef | None = None  # google: the key JSON (file: or env:)
    token_uri: str | None = None          # google (override)
    command: tuple[str, ...] = ()         # command
    token: SecretRef | None = None        # static
    ca_file: str | None = None            # TLS trust for the token service
    refresh_margin: float = 300.0         # refresh this many seconds before expiry


def _read_key(ref: SecretRef) -> str:
    """The whole key file (a SecretRef resolves to one line; a key is a JSON document)."""
    if ref.kind == "file":
        path = Path(ref.value).expanduser()
        try:
            return path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise token_error(f"cannot read service account key {path}: "
                              f"{exc.strerror or exc}") from None
    return ref.resolve()


def make_provider(s: OAuthSettings) -> TokenProvider:
    """The provider ``s`` describes; TokenError when a secret it names is unusable."""
    try:
        if s.token_provider == "microsoft":
            from mxshift.oauth.microsoft import DEFAULT_AUTHORITY, MicrosoftTokens

            assert s.tenant_id and s.client_id and s.client_secret
            return MicrosoftTokens(tenant=s.tenant_id, client_id=s.client_id,
                                   client_secret=s.client_secret.resolve(),
                                   authority=s.authority or DEFAULT_AUTHORITY,
                                   ca_file=s.ca_file)
        if s.token_provider == "google":
            from mxshift.oauth.google import GoogleTokens

            assert s.service_account is not None
            return GoogleTokens(key_json=_read_key(s.service_account), token_uri=s.token_uri,
                                ca_file=s.ca_file)
        if s.token_provider == "command":
            from mxshift.oauth.command import CommandTokens

            return CommandTokens(s.command)
        from mxshift.oauth.command import StaticTokens

        assert s.token is not None
        return StaticTokens(s.token.resolve())
    except TokenError:
        raise
    except MxshiftError as exc:  # an env:/file: secret that is not there
        raise token_error(f"{s.token_provider} token provider: {exc}") from None


_CACHES: dict[OAuthSettings, TokenCache] = {}
_LOCK = threading.Lock()


def token_cache(s: OAuthSettings) -> TokenCache:
    """The process-wide cache for ``s`` (made, and its provider built, on first use)."""
    with _LOCK:
        cache = _CACHES.get(s)
        if cache is None:
            cache = _CACHES[s] = TokenCache(make_provider(s), margin=s.refresh_margin)
        return cache


def forget_caches() -> None:
    """Drop every cache (tests; a long-lived process whose config changed)."""
    with _LOCK:
        _CACHES.clear()


# -- reading the table (mxshift.toml) ---------------------------------------------------


def parse_oauth(t, directory: Path, *, default_provider: str | None = None  # type: ignore[no-untyped-def]
                ) -> OAuthSettings:
    """``[source.oauth]`` / ``[destination.oauth]`` -> OAuthSettings (``t``: a config
    table, see :mod:`mxshift.config_table`). Each provider's required keys are checked
    here, so a missing tenant id stops the run at start-up, not at the first login."""
    from mxshift.config_table import _choice, _number, _string, _string_list

    def ref(name: str) -> SecretRef | None:
        cell = _string(t, name, None, secret=True)
        if cell is None:
            return None
        try:
            parsed = SecretRef.parse(cell)
        except ValueError as exc:
            raise t.fail(name, f"is not usable: {exc}") from None
        if parsed.kind == "file":
            path = Path(parsed.value).expanduser()
            parsed = SecretRef("file", str(path if path.is_absolute() else directory / path))
        return parsed

    t.allow("token_provider", "tenant_id", "client_id", "client_secret", "authority",
            "service_account", "token_uri", "command", "token", "ca_file", "refresh_margin")
    kind = _choice(t, "token_provider", TOKEN_KINDS, default_provider or "static")
    if "token_provider" not in t.data and default_provider is None:
        raise t.fail("token_provider", f"is required: one of {', '.join(TOKEN_KINDS)}")
    need = {"microsoft": ("tenant_id", "client_id", "client_secret"),
            "google": ("service_account",), "command": ("command",),
            "static": ("token",)}[kind]
    for key in need:
        if key not in t.data:
            raise t.fail(key, f"is required for token_provider = {kind!r}")
    ca_file = _string(t, "ca_file", None)
    if ca_file is not None and not Path(ca_file).expanduser().is_absolute():
        ca_file = str(directory / ca_file)
    authority = _string(t, "authority", None)
    if authority is not None and not authority.startswith("https://"):
        raise t.fail("authority", f"must be an https:// URL like "
                                  f"https://login.microsoftonline.com, got {authority!r}")
    return OAuthSettings(
        token_provider=kind,
        tenant_id=_string(t, "tenant_id", None),
        client_id=_string(t, "client_id", None),
        client_secret=ref("client_secret"),
        authority=authority,
        service_account=ref("service_account"),
        token_uri=_string(t, "token_uri", None),
        command=_string_list(t, "command", ()),
        token=ref("token"),
        ca_file=ca_file,
        refresh_margin=_number(t, "refresh_margin", 300.0),
    )


def token_problems(s: OAuthSettings, user: str) -> list[str]:
    """What the cached token of ``user`` lacks for IMAP (a missing role or scope), for
    preflight; [] when there is no cached token or nothing is missing."""
    cache = token_cache(s)
    token = cache.peek(user)
    return cache.provider.problems(token) if token is not None else []
