"""Opening an IMAP session: connect, secure, log in; and the small helpers around it.

Why apart from imap.py: connecting has its own failure grades (cannot connect, TLS not
trusted, login refused, login throttled) and is shared by the first login and every
reconnect after back-pressure; the store module reads better without it.
"""

from __future__ import annotations

import re
import socket
import ssl

from imapclient import IMAPClient
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

def _open_client(*, host: str, port: int, security: str, credentials: Credentials,
                 ca_file: str | None, verify_tls: bool, timeout: float) -> IMAPClient:
    """A connected, secured, logged-in client: EndpointError (cannot connect, or the
    server pushes back at login) or MailboxError (login refused)."""
    try:
        ctx = tls_context(ca_file, verify_tls) if security != "none" else None
        client = IMAPClient(host, port=port, use_uid=True, ssl=security == "tls",
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
