"""The HTTP session MSAL and google-auth talk through.

Why our own: ``requests`` lets ``REQUESTS_CA_BUNDLE`` (set system-wide on many hosts)
override a session's ``verify``, so a ``ca_file`` an admin names for a TLS-inspecting proxy
would be ignored; and a pooled connection left open for the life of the process would keep
a socket to the identity provider for hours. Token requests are rare: each one gets fresh
connections, closed right after.
"""

from __future__ import annotations

from typing import Any

import requests


class TokenSession(requests.Session):
    def __init__(self, ca_file: str | None = None, timeout: float = 30.0) -> None:
        super().__init__()
        self.ca_file = ca_file
        self.timeout = timeout

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[no-untyped-def, override]
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if self.ca_file:
            settings["verify"] = self.ca_file
        return settings

    def request(self, method, url, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def, override]
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)
