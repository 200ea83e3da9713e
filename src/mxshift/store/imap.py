"""ImapStore: the Store protocol on top of imapclient.

Why our own layer: imapclient speaks the verbs; this class gives them the contracts the
engine relies on (raw wire folder names, aware dates, UID sets compressed to ranges so a
50,000-message folder fits in one command line, APPENDUID/COPYUID parsed) and grades the
errors so a pass knows whether to skip a message, a folder, a mailbox or back off.

Back-pressure (issue 8): given ``throttle_settings`` (the project wiring always gives
them), a throttled, dropped or token-expired command is waited out as the server says,
the connection logged in again and the folder re-selected, and the command repeated where
that is safe (see :meth:`ImapStore._retry`, :mod:`mxshift.store.throttle`).
"""

from __future__ import annotations

import functools
import re
import time
from datetime import datetime
from typing import Callable, Iterable, Iterator, NoReturn, TypeVar

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from imapclient.response_parser import parse_fetch_response
from imapclient.imapclient import seq_to_parenstr, seq_to_parenstr_upper

from mxshift.engine import limits
from mxshift.errors import (EndpointError, FolderError, MailboxError, MessageError, Retry)
from mxshift.mapping import Namespace, RemoteFolder
from mxshift.store import throttle
from mxshift.store.auth import Credentials
from mxshift.store import imap_wire, list_status, list_status_lines
from mxshift.store.fetch_parse import (IDENTITY_FIELDS, _META_ITEMS, _flags,  # noqa: F401
                                       _metas, _s, parse_body_fetch, parse_fetch_fast)
from mxshift.store.base import FolderStatus, MessageMeta, QuotaInfo, RawMessage
from mxshift.store.imap_backpressure import BackPressure
from mxshift.store.imap_first_scan import FirstScan
from mxshift.store.imap_pipelined import Pipelined
from mxshift.store.imap_select import Selecting
from mxshift.store.spool import Spool, spooling
from mxshift.store.imap_session import (_BACKOFF_CODES, _LOST, _clean, _drop,  # noqa: F401
                                        _endpoint_error,
                                        _open_client, _quiet_close, _with_appendlimit,
                                        tls_context)
from mxshift.store.uidset import compress_uids, parse_uidplus

T = TypeVar("T")

class ImapStore(BackPressure, Pipelined, FirstScan, Selecting):
    """One authenticated IMAP connection, speaking the Store protocol (and the delta
    pass's pipelined reads and writes: store/imap_pipelined.py)."""

    def __init__(self, client: IMAPClient, *, host: str,
                 disabled: frozenset[str] = frozenset(),
                 reopen: Callable[[], IMAPClient] | None = None,
                 throttle_settings: throttle.ThrottleSettings | None = None,
                 max_message_size: int | None = None) -> None:
        self._c = client
        self._host = host
        caps = {_s(c).upper() for c in client.capabilities()}
        self.capabilities = frozenset(caps - {d.upper() for d in disabled})
        if max_message_size is not None:
            # A provider's size limit (35 MB on Microsoft 365) as the APPENDLIMIT the
            # copier already honours: larger messages are skipped with the reason.
            self.capabilities = _with_appendlimit(self.capabilities, max_message_size)
        self._selected_name: str | None = None
        self._reusable: FolderStatus | None = None  # see select
        # Back-pressure (see _retry): how to log in again, what was selected and how,
        # and the wait budget this store (one pass, one server) may spend.
        self._reopen = reopen
        self._readonly = True
        self._uidvalidity: tuple[str, int] | None = None  # (folder, UIDVALIDITY) at select
        self._reconnecting = False
        settings = throttle_settings or throttle.ThrottleSettings()
        self.budget = throttle.WaitBudget(settings, host)
        self.limiter: throttle.RateLimit | None = None  # set by connect(): per host:port
        self.reconnects = 0
        self.sleep: Callable[[float], None] = time.sleep
        # "host:port" as the connection limiter counts it (set by connect()): a throttle
        # lowers that server's cap (engine/limits.py); the cuts seen are noted here.
        self.server: str | None = None
        self.notes: list[str] = []

    # -- connection -----------------------------------------------------------------
    @classmethod
    def connect(cls, *, host: str, port: int, security: str, credentials: Credentials,
                ca_file: str | None = None, verify_tls: bool = True, timeout: float = 60.0,
                disabled: frozenset[str] = frozenset(),
                throttle_settings: throttle.ThrottleSettings | None = None,
                max_message_size: int | None = None) -> "ImapStore":
        """Connect, secure and log in; raise EndpointError or MailboxError (bad login)."""
        reopen = functools.partial(_open_client, host=host, port=port, security=security,
                                   credentials=credentials, ca_file=ca_file,
                                   verify_tls=verify_tls, timeout=timeout)
        # Without throttle settings the store fails fast on back-pressure (an
        # EndpointError, as before issue 8); the project wiring (connect.py) always gives
        # them, so real passes wait, reconnect and go on.
        store = cls(reopen(), host=host, disabled=disabled,
                    reopen=reopen if throttle_settings is not None else None,
                    throttle_settings=throttle_settings, max_message_size=max_message_size)
        store.server = limits.server_key(host, port)
        if throttle_settings is not None:
            store.limiter = throttle.limiter_for(f"{host}:{port}", throttle_settings,
                                                 user=credentials.user)
        if {"CONDSTORE", "ENABLE"} <= store.capabilities:
            # So that SELECT reports HIGHESTMODSEQ (RFC 7162 3.1.8): the folder's
            # change counter as of the moment we start reading it.
            store._enable_modseq()
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

    def list_folders_status(self) -> tuple[list[RemoteFolder], dict[str, FolderStatus]]:
        """One ``LIST "" "*" RETURN (STATUS (...))`` where the server offers LIST-STATUS
        (and it is not in ``disable_capabilities``); else :meth:`list_folders` and no
        statuses. An answer we cannot read also falls back (STATUS per folder)."""
        if "LIST-STATUS" not in self.capabilities:
            return self.list_folders(), {}
        args = list_status.list_command_args(self.capabilities)

        def once() -> dict[str, list[object]]:
            imap = self._c._imap  # looked up each time: a reconnect replaces the client
            for key in ("LIST", "STATUS"):
                imap.untagged_responses.pop(key, None)
            typ, data = imap._simple_command("LIST", *args)
            if typ != "OK":
                raise IMAPClientError(b" ".join(d for d in data if isinstance(d, bytes))
                                      .decode("utf-8", "replace"))
            return {key: imap.untagged_responses.pop(key, []) for key in ("LIST", "STATUS")}

        try:
            untagged = self._retry("LIST", once)
            # the plain shapes by regex, anything else by imapclient's tokenizer
            return list_status_lines.parse(untagged) or list_status.parse_list_status(untagged)
        except list_status.ListStatusError:
            return self.list_folders(), {}
        except IMAPClientError as exc:
            self._raise_if_back_pressure(exc, "LIST")
            raise FolderError(f"LIST-STATUS: {_clean(str(exc))}") from None

    def create_folder(self, name: str) -> None:
        try:
            self._retry("CREATE", lambda: self._c.create_folder(name))
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
        return _metas(data, uid_list)

    def fetch_sizes(self, uids: Iterable[int]) -> dict[int, int]:
        uid_list = sorted(set(uids))
        if not uid_list:
            return {}
        data = self._call(self._fetch, compress_uids(uid_list), ["RFC822.SIZE"])
        return {u: int(i[b"RFC822.SIZE"]) for u, i in data.items()  # type: ignore[call-overload]
                if b"RFC822.SIZE" in i}

    def fetch_header_fields(self, uids: Iterable[int], names: Iterable[str]) -> dict[int, bytes]:
        uid_list = sorted(set(uids))
        if not uid_list:
            return {}
        fields = " ".join(n.upper() for n in names)
        data = self._call(self._fetch, compress_uids(uid_list),
                          [f"BODY.PEEK[HEADER.FIELDS ({fields})]"])
        return {uid: next((v for k, v in item.items()
                           if k.startswith(b"BODY[HEADER.FIELDS")), b"") or b""
                for uid, item in data.items()}

    def fetch_raw(self, uids: Iterable[int]) -> Iterator[RawMessage]:
        uid_list = sorted(set(uids))
        if not uid_list:
            return
        data = self._call(self._fetch, compress_uids(uid_list),
                          ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"])
        self._rate(len(data), sum(len(i.get(b"BODY[]") or b"")  # type: ignore
                                  for i in data.values()))
        for uid in uid_list:
            item = data.pop(uid, None)
            if item is None or b"BODY[]" not in item:
                continue
            yield RawMessage(uid=uid, raw=item[b"BODY[]"], flags=_flags(item.get(b"FLAGS", ())),
                             internaldate=item[b"INTERNALDATE"])

    def fetch_spooled(self, uid: int) -> RawMessage | None:
        """One large message whose FETCH literal streams into a temporary file as it is
        read (store/spool.py: :func:`~mxshift.store.spool.spooling`): one round trip, a
        chunk in memory. None when it is gone. Its ``raw`` is the :class:`Spool`."""
        def fetch() -> tuple[Spool, dict[bytes, object] | None]:
            spool = Spool()  # a fresh one for every attempt (after a reconnect too)
            try:
                with spooling(self._c._imap, spool):
                    item = self._fetch(str(uid), ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"])
            except BaseException:
                spool.close()
                raise
            return spool, item.get(uid)

        spool, item = self._call(fetch)  # retried as a read; errors graded as fetch_raw's
        if item is None or b"INTERNALDATE" not in item or b"BODY[]" not in item:
            spool.close()
            return None
        self._rate(1, len(spool))
        return RawMessage(uid=uid, raw=spool, flags=_flags(item.get(b"FLAGS", ())),  # type: ignore[arg-type]
                          internaldate=item[b"INTERNALDATE"])  # type: ignore[arg-type]

    def uids_from(self, first_uid: int) -> list[int]:
        found = self._call(self._c.search, ["UID", f"{max(first_uid, 1)}:*"])
        # "N:*" always matches the highest UID even when it is below N (RFC 3501).
        return sorted(u for u in found if u >= first_uid)

    # -- writing --------------------------------------------------------------------
    def append(self, folder: str, raw: bytes | Spool, flags: Iterable[str],
               internaldate: datetime) -> int | None:
        try:
            typ, data = self._append_retrying(folder, [(raw, frozenset(flags), internaldate)])
        except IMAPClientError as exc:
            self._append_refused(folder, _clean(str(exc)))
        text = b" ".join(d for d in data if isinstance(d, bytes))
        if typ != "OK":
            self._append_refused(folder, _clean(text.decode("utf-8", "replace")))
        if "UIDPLUS" not in self.capabilities:
            return None  # an unadvertised APPENDUID is not to be relied on
        parsed = parse_uidplus(text)
        return parsed[3][0] if parsed and parsed[3] else None

    def _append_refused(self, folder: str, text: str) -> NoReturn:
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

    def _append_command(self, folder: str,
                        messages: list[tuple[bytes, frozenset[str], datetime]]
                        ) -> tuple[str, list]:
        """One APPEND (MULTIAPPEND for several) written by :func:`imap_wire.send_append`."""
        if folder == self._selected:
            self._reusable = None  # its UIDNEXT and EXISTS grow: select sends SELECT again
        return imap_wire.send_append(self._c._imap, folder, messages,
                                     literal_plus="LITERAL+" in self.capabilities)

    def append_many(self, folder: str,
                    messages: list[tuple[bytes, frozenset[str], datetime]]) -> list[int] | None:
        try:
            # imapclient's multiappend cannot take a raw (folder_encode off) name.
            typ, data = self._append_retrying(folder, messages)
        except IMAPClientError as exc:
            raise MessageError(_clean(str(exc)), retry=Retry.FINAL) from None
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

    def add_gmail_labels(self, uids: Iterable[int], labels: Iterable[str]) -> None:
        """``UID STORE uids +X-GM-LABELS.SILENT (labels)`` on the selected folder (Gmail,
        X-GM-EXT-1): the messages then also show in those label folders. ``labels`` are
        unicode label names (imapclient encodes them); idempotent like any STORE, so
        repeated as it is after back-pressure. Used by engine/gmail_labels.py."""
        uid_list, label_list = sorted(set(uids)), sorted(set(labels))
        if uid_list and label_list:
            self._call(self._c.add_gmail_labels, compress_uids(uid_list), label_list,
                       silent=True)

    def remove_flags(self, uids: Iterable[int], flags: Iterable[str]) -> None:
        uid_list, flag_list = sorted(set(uids)), sorted(flags)
        if uid_list and flag_list:
            self._call(self._c.remove_flags, compress_uids(uid_list), flag_list, silent=True)

    def store_flags(self, commands: Iterable[tuple[bool, Iterable[str], Iterable[int]]]
                    ) -> None:
        """Several ``UID STORE uids +FLAGS.SILENT|-FLAGS.SILENT (flags)`` (``add``,
        ``flags``, ``uids``), sent together and answered together: one round trip.

        Why pipelined: a delta pass's flag changes are a few STOREs per folder, and each
        used to wait for its answer. RFC 3501 5.5 allows sending commands without waiting
        where no command's result depends on another's; the caller guarantees that (no
        UID in both directions of one flag, see engine/flag_plan.py). At most
        ``PIPELINE_DEPTH`` commands are in flight, so the server's answers never fill the
        socket while we are still writing. STORE is idempotent: after back-pressure the
        whole set is sent again.
        """
        todo = [(add, compress_uids(u), seq_to_parenstr(sorted(f)))
                for add, f, u in ((a, list(f), list(u)) for a, f, u in commands) if f and u]
        if not todo:
            return

        def once() -> None:  # the client looked up each time: a reconnect replaces it
            imap_wire.pipeline_stores(self._c._imap, todo)

        try:
            self._retry("STORE", once)
        except IMAPClientError as exc:
            self._raise_if_back_pressure(exc, "STORE")
            raise FolderError(f"STORE on {self._selected!r}: {_clean(str(exc))}") from None

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

    def expunge(self, uids: list[int], *, marked: bool = False) -> None:
        """``marked``: the caller already set \\Deleted on ``uids`` (in the same
        :meth:`store_flags` round trip as its flag changes)."""
        if not uids:
            return
        uidset = compress_uids(sorted(uids))
        if not marked:
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
    def _enable_modseq(self) -> None:
        """ENABLE CONDSTORE, and QRESYNC where offered and not disabled (RFC 7162 3.2.3:
        before any SELECT, or the QRESYNC parameter is refused). A server that does not
        confirm QRESYNC in its ENABLED reply loses it from :attr:`capabilities`, so the
        engine falls back to CONDSTORE for it."""
        wanted = ["CONDSTORE"]
        if "QRESYNC" in self.capabilities:
            wanted.append("QRESYNC")
        enabled = self._call(self._c.enable, *wanted) or []
        if "QRESYNC" in self.capabilities and "QRESYNC" not in {_s(e).upper() for e in enabled}:
            self.capabilities = self.capabilities - {"QRESYNC"}

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
        args = ["UID", "FETCH", uidset, seq_to_parenstr_upper(items)]
        if modifiers:
            args.append(seq_to_parenstr_upper(modifiers))
        data = self._fetch_answer(args)
        fast = parse_fetch_fast(data)
        if fast is not None:
            return fast
        by_seq = parse_fetch_response(data, self._c.normalise_times, False)
        return {int(item[b"UID"]): item for item in by_seq.values()  # type: ignore[arg-type]
                if b"UID" in item}

    def _fetch_answer(self, args: list[str]) -> list:
        """imaplib's untagged FETCH answer to one ``UID FETCH`` command (checked OK)."""
        c = self._c
        tag = c._imap._command(*args)
        typ, data = c._imap._command_complete("FETCH", tag)
        c._checkok("fetch", typ, data)
        return c._imap._untagged_response(typ, data, "FETCH")[1]
