"""Turning a project's endpoint and a mailbox's sealed secret into a logged-in Store.

Why here and lazy: secrets are resolved at the moment of login (an ``env:`` variable set
for this run only is honoured) and never held longer than the login needs.
"""

from __future__ import annotations

from typing import Callable

from mxshift.config import Endpoint
from mxshift.engine.limits import configure, open_limited, server_key
from mxshift.errors import MailboxError, MxshiftError, Retry
from mxshift.secrets import SecretBox
from mxshift.store.auth import Credentials
from mxshift.store.base import Store
from mxshift.store.imap import ImapStore


def credentials(endpoint: Endpoint, user: str, sealed: str | None, box: SecretBox) -> Credentials:
    try:
        if endpoint.auth != "password":  # OAuth2: a token per user, no password
            from mxshift.oauth import token_cache

            assert endpoint.oauth is not None, "config requires [x.oauth] for OAuth2"
            return Credentials(user, mechanism=endpoint.auth,  # type: ignore[arg-type]
                               tokens=token_cache(endpoint.oauth))
        if endpoint.admin is not None and not sealed:
            a = endpoint.admin
            return Credentials(user, a.password.resolve(), admin_user=a.user,
                               admin_mode=a.mode, admin_separator=a.separator)
        if not sealed:
            raise MailboxError(f"{user}: no password and no admin login for {endpoint.host}",
                               retry=Retry.FINAL)
        return Credentials(user, box.open(sealed).resolve())
    except MailboxError:
        raise
    except MxshiftError as exc:
        raise MailboxError(f"{user}: {exc}", retry=Retry.FINAL) from None


def store_factory(endpoint: Endpoint, user: str, sealed: str | None,
                  box: SecretBox) -> Callable[[], Store]:
    def connect() -> Store:
        return ImapStore.connect(host=endpoint.host, port=endpoint.port,
                                 security=endpoint.security,
                                 credentials=credentials(endpoint, user, sealed, box),
                                 ca_file=endpoint.ca_file, verify_tls=endpoint.verify_tls,
                                 timeout=endpoint.timeout,
                                 disabled=endpoint.disable_capabilities,
                                 throttle_settings=endpoint.throttle,
                                 max_message_size=endpoint.max_message_size)

    server = server_key(endpoint.host, endpoint.port)
    # the configured cap only: a cap lowered after a throttle stays lowered (limits.py)
    configure(server, endpoint.max_connections,
              recovery_period=endpoint.throttle.connection_recovery)

    def open_store() -> Store:
        # Every connection holds a slot of the server's cap (engine/limits.py).
        return open_limited(server, connect)
    return open_store
