"""A source/destination account pair with its own state database, for engine tests.

Why: every scenario runs several ways (normal, re-run, crash at every step, lost state),
each on fresh accounts of the same real Dovecot servers; this keeps that cheap and short.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable

from imapclient import IMAPClient
from sqlalchemy import select

from mxshift.engine.journal import Hooks
from mxshift.engine.mailbox_pass import MailboxPass, PassResult
from mxshift.engine.settings import PassSettings
from mxshift.state.db import StateDB, open_state
from mxshift.state.models import Finding, Mailbox, Message, Project
from mxshift.store.auth import Credentials
from mxshift.store.imap import ImapStore
from mxshift.testbed.corpus_load import server_folder_name
from mxshift.testbed.dovecot import DovecotServer
from mxshift.testbed.snapshot import diff, snapshot

BASE_DATE = datetime(2021, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2)))


def make_message(i: int, *, subject: str | None = None, message_id: bool = True,
                 body: str | None = None, extra: bytes = b"") -> bytes:
    mid = f"Message-ID: <m{i}@scenario.test>\r\n" if message_id else ""
    text = (f"{mid}From: Alice <alice@example.test>\r\nTo: bob@example.test\r\n"
            f"Subject: {subject or f'message {i}'}\r\n"
            f"Date: Thu, 4 Mar 2021 05:06:{i % 60:02d} +0200\r\n"
            f"\r\n{body or f'body of message {i}'}\r\n")
    return text.encode() + extra


@dataclass
class Bed:
    src_server: DovecotServer
    dst_server: DovecotServer
    directory: Path
    su: str = ""
    sp: str = ""
    du: str = ""
    dp: str = ""
    db: StateDB | None = None
    mailbox_id: int = 0
    _clients: dict[str, IMAPClient] = field(default_factory=dict)

    @classmethod
    def make(cls, src: DovecotServer, dst: DovecotServer, directory: Path) -> "Bed":
        directory.mkdir(parents=True, exist_ok=True)
        bed = cls(src, dst, directory)
        bed.su, bed.sp = src.new_user("s")
        bed.du, bed.dp = dst.new_user("d")
        bed._open_state()
        return bed

    def _open_state(self) -> None:
        self.db = open_state(self.directory)
        with self.db.session() as s, s.begin():
            project = Project(name="test")
            s.add(project)
            s.flush()
            mb = Mailbox(project_id=project.id, source_user=self.su, destination_user=self.du)
            s.add(mb)
            s.flush()
            self.mailbox_id = mb.id

    # -- servers --------------------------------------------------------------------
    def source(self) -> IMAPClient:
        return self._client("src", self.src_server, self.su, self.sp)

    def dest(self) -> IMAPClient:
        return self._client("dst", self.dst_server, self.du, self.dp)

    def _client(self, key: str, server: DovecotServer, user: str, pw: str) -> IMAPClient:
        c = self._clients.get(key)
        if c is None:
            c = server.connect(user, pw)
            c.normalise_times = False
            self._clients[key] = c
        c.noop()
        return c

    def folder(self, side: str, *logical: str) -> str:
        client = self.source() if side == "src" else self.dest()
        return server_folder_name(client, tuple(logical))

    def create(self, *logical: str) -> str:
        name = self.folder("src", *logical)
        if logical != ("INBOX",):
            self.source().create_folder(name)
        return name

    def put(self, logical: tuple[str, ...], messages: Iterable[bytes],
            flags: Iterable[str] = (), side: str = "src") -> None:
        client = self.source() if side == "src" else self.dest()
        name = self.folder(side, *logical)
        for n, raw in enumerate(messages):
            client.append(name, raw, flags=tuple(flags), msg_time=BASE_DATE + timedelta(minutes=n))

    def uids(self, *logical: str, side: str = "src") -> list[int]:
        client = self.source() if side == "src" else self.dest()
        client.select_folder(self.folder(side, *logical))
        return sorted(client.search("ALL"))

    # -- passes ---------------------------------------------------------------------
    def store(self, server: DovecotServer, user: str, pw: str) -> ImapStore:
        return ImapStore.connect(host=server.host, port=server.port, security="none",
                                 credentials=Credentials(user, pw))

    def run(self, hooks: Hooks | None = None, **settings: object) -> PassResult:
        assert self.db is not None
        settings.setdefault("batch_messages", 2)  # several batches even in small scenarios
        return MailboxPass(self.db, self.mailbox_id,
                           source=lambda: self.store(self.src_server, self.su, self.sp),
                           destination=lambda: self.store(self.dst_server, self.du, self.dp),
                           settings=PassSettings(**settings),  # type: ignore[arg-type]
                           hooks=hooks).run()

    def lose_state(self) -> None:
        assert self.db is not None
        self.db.dispose()
        for p in self.directory.glob("mxshift.db*"):
            p.unlink()
        self._open_state()

    # -- checks ---------------------------------------------------------------------
    def differences(self) -> list[str]:
        return diff(snapshot(self.source()), snapshot(self.dest()))

    def findings(self, kind: str | None = None) -> list[Finding]:
        assert self.db is not None
        with self.db.session() as s:
            q = select(Finding).where(Finding.mailbox_id == self.mailbox_id)
            if kind:
                q = q.where(Finding.kind == kind)
            return list(s.scalars(q))

    def journal_states(self) -> dict[str, int]:
        assert self.db is not None
        with self.db.session() as s:
            out: dict[str, int] = {}
            for m in s.scalars(select(Message)):
                out[m.state] = out.get(m.state, 0) + 1
            return out

    def close(self) -> None:
        for c in self._clients.values():
            try:
                c.logout()
            except Exception:
                pass
        self._clients.clear()
        if self.db is not None:
            self.db.dispose()
