"""OAuth2 access tokens for IMAP (XOAUTH2 / OAUTHBEARER): providers and the per-user cache.

Providers: Microsoft 365 app-only (MSAL), Google Workspace service account with
domain-wide delegation (google-auth), a command that prints a token, a static token.
"""

from mxshift.oauth.settings import TOKEN_KINDS, OAuthSettings, forget_caches, token_cache
from mxshift.oauth.tokens import Token, TokenCache, TokenError, TokenProvider

__all__ = ["OAuthSettings", "TOKEN_KINDS", "Token", "TokenCache", "TokenError",
           "TokenProvider", "forget_caches", "token_cache"]
