"""ImapStore: the Store protocol on top of imapclient.

Why our own layer: imapclient speaks the verbs; this class gives them the contracts the
engine relies on (raw wire folder names, aware dates, UID sets compressed to ranges so a
50,000-message folder fits in one command line, APPENDUID/COPYUID parsed) and grades the
errors so a pass knows whether to skip a message, a folder, a mailbox or back off.
"""

from __future__ import annotations

import re
import socket
import ssl
from datetime import datetime
from typing import Iterable, Iterator

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError
from imapclient.response_parser import parse_fetch_response
from imapclient.datetime_util import datetime_to_INTERNALDATE
from imapclient.imapclient import _literal, _quote, seq_to_parenstr, seq_to_parenstr_upper

from mxshift.errors import EndpointError, FolderError, MailboxError, MessageError, Retry
from mxshift.mapping import Namespace, RemoteFolder
from mxshift.store.auth import Credentials, authenticate
from mxshift.store.base import FolderStatus, MessageMeta, QuotaInfo, RawMessage
from mxshift.store.uidset import compress_uids

IDENTITY_FIELDS = b"BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)]"
_META_ITEMS = ["RFC822.SIZE", "FLAGS", "INTERNALDATE",
               "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)]"]
_UIDPLUS_RE = re.compile(rb"\[(APPENDUID|COPYUID) (\d+) ([\d:,]+)(?: ([\d:,]+))?\]", re.I)
_BACKOFF_CODES = ("[UNAVAILABLE]", "[LIMIT]", "[INUSE]", "[SERVERBUG]", "THROTTL")
# The connection is gone (BYE, EOF, reset, timeout): imaplib's "abort" is a subclass of
# its "error", so these must be caught first, or a dead server reads as a bad folder.
_LOST = (IMAPClientAbortError, OSError, socket.timeout)


def _s(value: bytes | str) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value


def _flags(raw: Iterable[bytes | str]) -> frozenset[str]:
    return frozenset(_s(f) for f in raw if _s(f).lower() != "\\recent")


def expand_uid_set(text: str) -> list[int]:
    """``"3:5,9"`` -> ``[3, 4, 5, 9]`` (as APPENDUID/COPYUID write them)."""
    out: list[int] = []
    for part in text.split(","):
        if ":" in part:
            a, b = (int(x) for x in part.split(":"))
            lo, hi = min(a, b), max(a, b)
            out.extend(range(lo, hi + 1))
        else:
            out.append(int(part))
    return out


def parse_uidplus(text: bytes | str) -> tuple[str, int, list[int], list[int]] | None:
    """Parse an APPENDUID or COPYUID response code -> (kind, uidvalidity, src, dst)."""
    data = text if isinstance(text, bytes) else text.encode()
    m = _UIDPLUS_RE.search(data)
    if not m:
        return None
    kind = m.group(1).decode().upper()
    if kind == "APPENDUID":
        return kind, int(m.group(2)), [], expand_uid_set(m.group(3).decode())
    return kind, int(m.group(2)), expand_uid_set(m.group(3).decode()), \
        expand_uid_set((m.group(4) or b"").decode())


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


class ImapStore:
    """One authenticated IMAP connection, speaking the Store protocol."""

    def __init__(self, client: IMAPClient, *, host: str,
                 disabled: frozenset[str] = frozenset()) -> None:
        self._c = client
        self._host = host
        caps = {_s(c).upper() for c in client.capabilities()}
        self.capabilities = frozenset(caps - {d.upper() for d in disabled})
        self._selected: str | None = None

    # -- connection -----------------------------------------------------------------
    @classmethod
    def connect(cls, *, host: str, port: int, security: str, credentials: Credentials,
                ca_file: str | None = None, verify_tls: bool = True, timeout: float = 60.0,
                disabled: frozenset[str] = frozenset()) -> "ImapStore":
        """Connect, secure and log in; raise EndpointError or MailboxError (bad login)."""
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
        client.folder_encode = False
        try:
            authenticate(client, credentials)
        except LoginError as exc:
            _quiet_close(client)
            raise MailboxError(f"login as {credentials.user} failed on {host}: "
                               f"{_clean(str(exc))}", retry=Retry.FINAL) from None
        except (OSError, IMAPClientError) as exc:
            _quiet_close(client)
            raise _endpoint_error(host, exc) from None
        store = cls(client, host=host, disabled=disabled)
        if {"CONDSTORE", "ENABLE"} <= store.capabilities:
            # So that SELECT reports HIGHESTMODSEQ (RFC 7162 3.1.8): the folder's
            # change counter as of the moment we start reading it.
            store._call(client.enable, "CONDSTORE")
        return store

    def close(self) -> None:
        _quiet_close(self._c)

    # -- folders --------------------------------------------------------------------
    def namespace(self) -> Namespace:
        if "NAMESPACE" in self.capabilities:
            personal = self._call(self._c.namespace).personal
            if personal:
                prefix, sep = personal[0]
                return Namespace(prefix=_s(prefix), separator=_s(sep or "/"))
        listing = self._call(self._c._command_and_check, "list", '""', '""', unpack=False)
        sep = "/"
        for line in listing or []:
            m = re.search(rb'\) "(.)"', line if isinstance(line, bytes) else b"")
            if m:
                sep = m.group(1).decode()
        return Namespace(prefix="", separator=sep)

    def list_folders(self) -> list[RemoteFolder]:
        out = []
        for flags, _delim, name in self._call(self._c.list_folders):
            out.append(RemoteFolder(name=_s(name), flags=frozenset(_s(f) for f in flags)))
        return out

    def create_folder(self, name: str) -> None:
        try:
            self._c.create_folder(name)
        except _LOST as exc:
            raise _endpoint_error(self._host, exc) from None
        except IMAPClientError as exc:
            if "ALREADYEXISTS" in str(exc).upper() or "exists" in str(exc).lower():
                return
            raise FolderError(f"cannot create folder {name!r}: {_clean(str(exc))}",
                              retry=Retry.FINAL) from None

    def delete_folder(self, name: str) -> None:
        if self._selected == name:
            self._call(self._c.unselect_folder)
            self._selected = None
        self._call(self._c.delete_folder, name)

    def status(self, folder: str) -> FolderStatus:
        items = ["MESSAGES", "UIDNEXT", "UIDVALIDITY"]
        if "CONDSTORE" in self.capabilities:
            items.append("HIGHESTMODSEQ")
        if "STATUS=SIZE" in self.capabilities:
            items.append("SIZE")
        try:
            st = self._c.folder_status(folder, items)
        except _LOST as exc:
            raise _endpoint_error(self._host, exc) from None
        except IMAPClientError as exc:
            raise FolderError(f"STATUS {folder!r}: {_clean(str(exc))}") from None
        return FolderStatus(uidvalidity=int(st[b"UIDVALIDITY"]), uidnext=int(st[b"UIDNEXT"]),
                            messages=int(st[b"MESSAGES"]),
                            highestmodseq=int(st[b"HIGHESTMODSEQ"])
                            if b"HIGHESTMODSEQ" in st else None,
                            size=int(st[b"SIZE"]) if b"SIZE" in st else None)

    def select(self, folder: str, *, readonly: bool) -> FolderStatus:
        try:
            st = self._c.select_folder(folder, readonly=readonly)
        except _LOST as exc:
            raise _endpoint_error(self._host, exc) from None
        except IMAPClientError as exc:
            raise FolderError(f"SELECT {folder!r}: {_clean(str(exc))}") from None
        self._selected = folder
        uidnext = st.get(b"UIDNEXT")
        if uidnext is None:  # some servers omit it from SELECT; STATUS always has it
            uidnext = self.status(folder).uidnext
        perm = st.get(b"PERMANENTFLAGS")
        return FolderStatus(uidvalidity=int(st[b"UIDVALIDITY"]), uidnext=int(uidnext),
                            messages=int(st.get(b"EXISTS", 0)),
                            highestmodseq=int(st[b"HIGHESTMODSEQ"])
                            if b"HIGHESTMODSEQ" in st else None,
                            permanent_flags=frozenset(_s(f) for f in perm)
                            if perm is not None else None)

    # -- reading --------------------------------------------------------------------
    def uid_flags(self) -> dict[int, frozenset[str]]:
        data = self._call(self._fetch, "1:*", ["FLAGS"])
        return {uid: _flags(item.get(b"FLAGS", ())) for uid, item in data.items()}

    def all_uids(self) -> list[int]:
        return sorted(self._call(self._c.search, "ALL"))

    def changed_since(self, modseq: int) -> dict[int, frozenset[str]]:
        if "CONDSTORE" not in self.capabilities:
            raise FolderError("CHANGEDSINCE needs CONDSTORE, which this server does not offer")
        data = self._call(self._fetch, "1:*", ["FLAGS"], [f"CHANGEDSINCE {modseq}"])
        return {uid: _flags(item.get(b"FLAGS", ())) for uid, item in data.items()}

    def fetch_meta(self, uids: Iterable[int]) -> list[MessageMeta]:
        uid_list = sorted(set(uids))
        if not uid_list:
            return []
        data = self._call(self._fetch, compress_uids(uid_list), _META_ITEMS)
        out = []
        for uid in uid_list:
            item = data.get(uid)
            if item is None or b"RFC822.SIZE" not in item:
                continue
            header = next((v for k, v in item.items()
                           if k.startswith(b"BODY[HEADER.FIELDS")), b"") or b""
            out.append(MessageMeta(uid=uid, size=int(item[b"RFC822.SIZE"]),
                                   flags=_flags(item.get(b"FLAGS", ())),
                                   internaldate=item[b"INTERNALDATE"], headers=header))
        return out

    def fetch_raw(self, uids: Iterable[int]) -> Iterator[RawMessage]:
        uid_list = sorted(set(uids))
        if not uid_list:
            return
        data = self._call(self._fetch, compress_uids(uid_list),
                          ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"])
        for uid in uid_list:
            item = data.pop(uid, None)
            if item is None or b"BODY[]" not in item:
                continue
            yield RawMessage(uid=uid, raw=item[b"BODY[]"], flags=_flags(item.get(b"FLAGS", ())),
                             internaldate=item[b"INTERNALDATE"])

    def uids_from(self, first_uid: int) -> list[int]:
        found = self._call(self._c.search, ["UID", f"{max(first_uid, 1)}:*"])
        # "N:*" always matches the highest UID even when it is below N (RFC 3501).
        return sorted(u for u in found if u >= first_uid)

    # -- writing --------------------------------------------------------------------
    def append(self, folder: str, raw: bytes, flags: Iterable[str],
               internaldate: datetime) -> int | None:
        try:
            resp = self._c.append(folder, raw, flags=tuple(sorted(flags)), msg_time=internaldate)
        except _LOST as exc:
            raise _endpoint_error(self._host, exc) from None
        except IMAPClientError as exc:
            text = _clean(str(exc))
            upper = text.upper()
            # On APPEND, [LIMIT]/[TOOBIG] refuse this message (Dovecot: "Mail size is larger
            # than the maximum size"), not the server: skip it, don't back off.
            if "[LIMIT]" in upper or "[TOOBIG]" in upper:
                raise MessageError(text, retry=Retry.FINAL) from None
            if "[OVERQUOTA]" in upper:  # every further message would be refused too
                raise MailboxError(f"{self._host}: mailbox full: {text}",
                                   retry=Retry.FINAL) from None
            if any(code in upper for code in _BACKOFF_CODES):
                raise EndpointError(f"{self._host}: {text}", retry=Retry.WAIT,
                                    wait_seconds=60) from None
            if "TRYCREATE" in upper:
                raise FolderError(f"APPEND to {folder!r}: {text}") from None
            raise MessageError(text, retry=Retry.FINAL) from None
        if "UIDPLUS" not in self.capabilities:
            return None  # an unadvertised APPENDUID is not to be relied on
        parsed = parse_uidplus(resp or b"")
        return parsed[3][0] if parsed and parsed[3] else None

    def append_many(self, folder: str,
                    messages: list[tuple[bytes, frozenset[str], datetime]]) -> list[int] | None:
        try:
            # imapclient's multiappend cannot take a raw (folder_encode off) name; this is
            # the same command built from its own pieces.
            args: list[bytes] = [_quote(folder).encode("ascii")]
            for raw, flags, date in messages:
                args.append(seq_to_parenstr(sorted(flags)).encode("ascii"))
                args.append(f'"{datetime_to_INTERNALDATE(date)}"'.encode("ascii"))
                args.append(_literal(raw))
            typ, data = self._c._raw_command(b"APPEND", args, uid=False)
        except IMAPClientError as exc:
            raise MessageError(_clean(str(exc)), retry=Retry.FINAL) from None
        except OSError as exc:
            raise _endpoint_error(self._host, exc) from None
        text = b" ".join(d for d in data if isinstance(d, bytes))
        if typ != "OK":
            raise MessageError(_clean(text.decode("utf-8", "replace")), retry=Retry.FINAL)
        if "UIDPLUS" not in self.capabilities:
            return None
        parsed = parse_uidplus(text)
        if parsed and len(parsed[3]) == len(messages):
            return parsed[3]
        return None

    def add_flags(self, uids: Iterable[int], flags: Iterable[str]) -> None:
        uid_list, flag_list = sorted(set(uids)), sorted(flags)
        if uid_list and flag_list:
            self._call(self._c.add_flags, compress_uids(uid_list), flag_list, silent=True)

    def remove_flags(self, uids: Iterable[int], flags: Iterable[str]) -> None:
        uid_list, flag_list = sorted(set(uids)), sorted(flags)
        if uid_list and flag_list:
            self._call(self._c.remove_flags, compress_uids(uid_list), flag_list, silent=True)

    def move(self, uids: list[int], folder: str) -> dict[int, int] | None:
        if not uids:
            return {}
        uidset = compress_uids(sorted(uids))
        self._uidplus_codes()  # drop stale ones
        if "MOVE" in self.capabilities:
            resp = self._call(self._c.move, uidset, folder)
            codes = [resp or b""] + self._uidplus_codes()
        else:
            resp = self._call(self._c.copy, uidset, folder)
            codes = [resp or b""] + self._uidplus_codes()
            self.expunge(uids)
        if "UIDPLUS" not in self.capabilities:
            return None
        for code in codes:
            parsed = parse_uidplus(code)
            if parsed and parsed[0] == "COPYUID" and len(parsed[2]) == len(parsed[3]):
                return dict(zip(parsed[2], parsed[3]))
        return None

    def expunge(self, uids: list[int]) -> None:
        if not uids:
            return
        uidset = compress_uids(sorted(uids))
        self._call(self._c.add_flags, uidset, ["\\Deleted"], silent=True)
        if "UIDPLUS" in self.capabilities:
            self._call(self._c.uid_expunge, uidset)
            return
        # Without UID EXPUNGE a plain EXPUNGE would also remove messages the user marked
        # \Deleted; only expunge when ours are the only ones, else leave them marked.
        deleted = set(self._call(self._c.search, ["DELETED"]))
        if deleted <= set(uids):
            self._call(self._c.expunge)

    def quota(self) -> QuotaInfo | None:
        if "QUOTA" not in self.capabilities:
            return None
        try:
            _roots, quotas = self._c.get_quota_root("INBOX")
        except _LOST as exc:
            raise _endpoint_error(self._host, exc) from None
        except IMAPClientError:
            return None
        for q in quotas:
            if _s(q.resource).upper() == "STORAGE":
                return QuotaInfo(root=_s(q.quota_root), used_bytes=int(q.usage) * 1024,
                                 limit_bytes=int(q.limit) * 1024)
        return None

    # -- helpers --------------------------------------------------------------------
    def _uidplus_codes(self) -> list[bytes]:
        """Response codes imaplib set aside since the last call.

        UID COPY/MOVE answer with untagged FETCH data only (imaplib's ``uid()``), so the
        tagged ``OK [COPYUID ...]`` of a COPY survives only where imaplib files every
        bracketed code: ``untagged_responses["COPYUID"]`` (MOVE sends it untagged: "OK").
        """
        pending = self._c._imap.untagged_responses
        codes = [c for c in pending.pop("OK", []) if isinstance(c, bytes)]
        codes += [b"[COPYUID " + c + b"]" for c in pending.pop("COPYUID", [])
                  if isinstance(c, bytes)]
        return codes

    def _fetch(self, uidset: str, items: list[str],
               modifiers: list[str] | None = None) -> dict[int, dict[bytes, object]]:
        """UID FETCH over a compressed UID set ("1:500,720").

        imapclient's ``fetch`` keeps only UIDs it was given one by one, which would force
        a 50,000-UID command line; this keeps its parser and drops that filter.

        Keyed by the UID inside each response: a server reports another session's flag
        change as ``* 2 FETCH (FLAGS (...))`` without a UID, which keyed "by UID" would
        land on (and overwrite) the message whose UID happens to be 2.
        """
        c = self._c
        args = ["UID", "FETCH", uidset, seq_to_parenstr_upper(items)]
        if modifiers:
            args.append(seq_to_parenstr_upper(modifiers))
        tag = c._imap._command(*args)
        typ, data = c._imap._command_complete("FETCH", tag)
        c._checkok("fetch", typ, data)
        typ, data = c._imap._untagged_response(typ, data, "FETCH")
        by_seq = parse_fetch_response(data, c.normalise_times, False)
        return {int(item[b"UID"]): item for item in by_seq.values()  # type: ignore[arg-type]
                if b"UID" in item}

    def _call(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return fn(*args, **kwargs)
        except _LOST as exc:
            raise _endpoint_error(self._host, exc) from None
        except IMAPClientError as exc:
            text = _clean(str(exc))
            if any(code in text.upper() for code in _BACKOFF_CODES):
                raise EndpointError(f"{self._host}: {text}", retry=Retry.WAIT,
                                    wait_seconds=60) from None
            raise FolderError(f"{getattr(fn, '__name__', 'command')} on "
                              f"{self._selected!r}: {text}") from None


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
