"""Turning a project's endpoint and a mailbox's sealed secret into a logged-in Store.

Why here and lazy: secrets are resolved at the moment of login (an ``env:`` variable set
for this run only is honoured) and never held longer than the login needs.
"""

from __future__ import annotations

from typing import Callable

from mxshift.config import Endpoint
from mxshift.errors import MailboxError, MxshiftError, Retry
from mxshift.secrets import SecretBox
from mxshift.store.auth import Credentials
from mxshift.store.base import Store
from mxshift.store.imap import ImapStore


def credentials(endpoint: Endpoint, user: str, sealed: str | None, box: SecretBox) -> Credentials:
    try:
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
    def open_store() -> Store:
        return ImapStore.connect(host=endpoint.host, port=endpoint.port,
                                 security=endpoint.security,
                                 credentials=credentials(endpoint, user, sealed, box),
                                 ca_file=endpoint.ca_file, verify_tls=endpoint.verify_tls,
                                 timeout=endpoint.timeout,
                                 disabled=endpoint.disable_capabilities)
    return open_store
