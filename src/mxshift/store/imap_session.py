"""Opening an IMAP session: connect, secure, log in; and the small helpers around it.

Why apart from imap.py: connecting has its own failure grades (cannot connect, TLS not
trusted, login refused, login throttled) and is shared by the first login and every
reconnect after back-pressure; the store module reads better without it.
"""

from __future__ import annotations

import imaplib
import random
import re
import socket
import ssl
import sys

from imapclient import IMAPClient, imap4, tls
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from mxshift.engine import limits
from mxshift.errors import EndpointError, MailboxError, Retry
from mxshift.store import throttle
from mxshift.store.auth import Credentials, TokenRefused, authenticate

_BACKOFF_CODES = ("[UNAVAILABLE]", "[LIMIT]", "[INUSE]", "[SERVERBUG]", "THROTTL")
# The connection is gone (BYE, EOF, reset, timeout): imaplib's "abort" is a subclass of
# its "error", so these must be caught first, or a dead server reads as a bad folder.
_LOST = (IMAPClientAbortError, OSError, socket.timeout)


def _endpoint_error(host: str, exc: BaseException) -> EndpointError:
    text = str(exc)
    if any(code in text.upper() for code in _BACKOFF_CODES):
        return EndpointError(f"{host}: server asks to back off: {text}", retry=Retry.WAIT,
                             wait_seconds=60)
    return EndpointError(f"{host}: {text or type(exc).__name__}", retry=Retry.TEMPORARY)


def tls_context(ca_file: str | None, verify: bool) -> ssl.SSLContext:
    """Verification on by default; off only when the project file names this host."""
    ctx = ssl.create_default_context(cafile=ca_file)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


# Every tag imaplib makes: Int2AP's letters A-P, then the command number.
_TAGGED = re.compile(rb"(?P<tag>[A-P]+\d+) (?P<type>[A-Z]+) (?P<data>.*)", re.ASCII)
# The imaplib whose _connect ours restates (3.11-3.13); another falls back to its own.
_IMAPLIB_CONNECT_AS_EXPECTED = sys.version_info < (3, 14) and all(
    hasattr(imaplib, n) for n in ("Int2AP", "AllowedVersions"))


class _GreetingCapabilities:
    """imaplib sends CAPABILITY right after the greeting, even when the greeting already
    carries them (``* OK [CAPABILITY IMAP4rev1 ...]``, as Dovecot, Exchange and most
    servers send): one round trip of every login for nothing, a tenth of a no-change
    pass. The greeting's list is used once, at connect, when it names IMAP4rev1; any
    later ask (after STARTTLS, RFC 3501 6.2.1: never trust what came before TLS) and a
    greeting without it send the command as always. Popping it also keeps imapclient
    from taking the greeting's list for the one the LOGIN answer brings."""

    _greeted = False
    untagged_responses: dict[str, list[object]]
    _encoding: str
    capabilities: tuple[str, ...]

    def _connect(self) -> None:
        """imaplib's ``_connect`` with one compiled tagged-response pattern for every
        connection: imaplib compiles a new one per connection (its tag prefix is random,
        so the ``re`` cache never has it), ~4% of a no-change pass's CPU. A tag of
        another prefix still matches no command we sent, and imaplib aborts on it as
        before (``unexpected tagged response``)."""
        if not _IMAPLIB_CONNECT_AS_EXPECTED:
            super()._connect()  # type: ignore[misc]
            return
        self.tagpre = imaplib.Int2AP(random.randint(4096, 65535))
        self.tagre = _TAGGED
        if __debug__:
            self._cmd_log_len = 10
            self._cmd_log_idx = 0
            self._cmd_log: dict[int, object] = {}
        self.welcome = self._get_response()  # type: ignore[attr-defined]
        if "PREAUTH" in self.untagged_responses:
            self.state = "AUTH"
        elif "OK" in self.untagged_responses:
            self.state = "NONAUTH"
        else:
            raise self.error(self.welcome)  # type: ignore[attr-defined]
        self._get_capabilities()
        for version in imaplib.AllowedVersions:
            if version in self.capabilities:
                self.PROTOCOL_VERSION = version
                return
        raise self.error("server not IMAP4 compliant")  # type: ignore[attr-defined]

    def _get_capabilities(self) -> None:
        first, self._greeted = not self._greeted, True
        said = self.untagged_responses.pop("CAPABILITY", None) if first else None
        if said and isinstance(said[-1], bytes):
            caps = tuple(str(said[-1], self._encoding).upper().split())
            if "IMAP4REV1" in caps:
                self.capabilities = caps
                return
        super()._get_capabilities()  # type: ignore[misc]


class _Plain(_GreetingCapabilities, imap4.IMAP4WithTimeout):
    pass


class _Tls(_GreetingCapabilities, tls.IMAP4_TLS):
    pass


class _Client(IMAPClient):
    """IMAPClient whose imaplib connection takes the greeting's capabilities."""

    def _create_IMAP4(self):  # type: ignore[no-untyped-def]
        if self.stream:
            return super()._create_IMAP4()
        timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return _Tls(self.host, self.port, self.ssl_context, timeout)
        return _Plain(self.host, self.port, timeout)


def _open_client(*, host: str, port: int, security: str, credentials: Credentials,
                 ca_file: str | None, verify_tls: bool, timeout: float) -> IMAPClient:
    """A connected, secured, logged-in client: EndpointError (cannot connect, or the
    server pushes back at login) or MailboxError (login refused)."""
    try:
        ctx = tls_context(ca_file, verify_tls) if security != "none" else None
        client = _Client(host, port=port, use_uid=True, ssl=security == "tls",
                            ssl_context=ctx, timeout=timeout)
        if security == "starttls":
            client.starttls(ctx)
    except ssl.SSLCertVerificationError as exc:
        raise EndpointError(f"{host}:{port}: TLS certificate not trusted: "
                            f"{exc.verify_message}", retry=Retry.FINAL) from None
    except (OSError, socket.timeout, IMAPClientError, ssl.SSLError) as exc:
        raise EndpointError(f"{host}:{port}: cannot connect: {exc}") from None
    client.normalise_times = False
    # imapclient sets imaplib's debug level to 5 so its logger sees the protocol: imaplib
    # then repr()s every untagged response, message bodies included, even with logging
    # off: a fifth of a full copy's CPU. Commands we send are still logged by imapclient.
    client._imap.debug = 0
    client.folder_encode = False
    try:
        authenticate(client, credentials)
    except LoginError as exc:
        _quiet_close(client)
        text = _clean(str(exc))
        bp = throttle.classify(text, command="LOGIN")
        if bp is not None and bp.kind == "throttled":
            # e.g. "Too many simultaneous connections": fewer of them from now on
            note = limits.report_throttle(limits.server_key(host, port))
            raise EndpointError(f"{host}: login of {credentials.user} throttled: {text}"
                                + (f" ({note})" if note else ""),
                                retry=Retry.WAIT, wait_seconds=bp.wait) from None
        why = "; ".join(exc.problems) if isinstance(exc, TokenRefused) and exc.problems \
            else ""
        raise MailboxError(f"login as {credentials.user} failed on {host}: {text}"
                           + (f" ({why})" if why else ""), retry=Retry.FINAL) from None
    except (OSError, IMAPClientError) as exc:
        _quiet_close(client)
        raise _endpoint_error(host, exc) from None
    except BaseException:  # no token to be had (TokenError), or interrupted
        _quiet_close(client)
        raise
    return client


def _with_appendlimit(caps: frozenset[str], limit: int) -> frozenset[str]:
    """``caps`` with APPENDLIMIT lowered to ``limit`` (kept when the server's is lower)."""
    current = [int(c.split("=", 1)[1]) for c in caps
               if c.startswith("APPENDLIMIT=") and c.split("=", 1)[1].isdigit()]
    if current and min(current) <= limit:
        return caps
    return frozenset({c for c in caps if not c.startswith("APPENDLIMIT")}
                     | {f"APPENDLIMIT={limit}"})


def _drop(client: IMAPClient) -> None:
    """Close a connection that is (probably) dead without waiting for a LOGOUT answer."""
    try:
        client.shutdown()
    except Exception:
        pass


def _clean(text: str) -> str:
    """imapclient wraps server text as "b'...'"; show the server's words only."""
    m = re.search(r"b['\"](.*)['\"]", text)
    return (m.group(1) if m else text).strip()


def _quiet_close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            pass
