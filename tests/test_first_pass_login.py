"""A mailbox's first pass: the destination's login and folders cost no round trip each.

Why it matters: a first pass creates the destination's folders before its scan, so it
always needs the destination; on a hosted server each login is a TLS handshake and an
authentication, hundreds of milliseconds per mailbox, which used to start only once the
source's listing was read, and each CREATE was a round trip of its own. Now the login
runs while the source is listed and the CREATEs go in one burst. A no-change pass still
never logs in there.

Real Dovecots; the source sits behind a proxy that holds back its answer to NAMESPACE
(the first thing a pass asks after the login), so the order of the two logins does not
depend on this machine's speed.
"""

from __future__ import annotations

import imaplib
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from harness import Bed, make_message
from mxshift.engine.mailbox_pass import MailboxPass
from mxshift.engine.settings import PassSettings
from mxshift.mapping import MappingRules, RenameRule
from mxshift.store.auth import Credentials
from mxshift.store.imap import ImapStore
from mxshift.testbed.tcp_proxy import TcpProxy, close_quietly

HOLD = 0.5  # seconds the source's NAMESPACE answer is held back


class SlowNamespace(TcpProxy):
    """Forwards both ways; a server chunk answering NAMESPACE waits ``HOLD`` seconds."""

    def _connected(self, client: socket.socket, upstream: socket.socket) -> None:
        threading.Thread(target=self._pump, daemon=True, args=(upstream, client, True)).start()
        threading.Thread(target=self._pump, daemon=True, args=(client, upstream, False)).start()

    def _pump(self, a: socket.socket, b: socket.socket, hold: bool) -> None:
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                if hold and b"* NAMESPACE" in data:
                    time.sleep(HOLD)
                b.sendall(data)
        except OSError:
            pass
        self._hang_up(a, b)
        close_quietly(a)


@pytest.fixture
def bed(dovecot_src, dovecot_dst, tmp_path: Path) -> Iterator[Bed]:  # type: ignore[no-untyped-def]
    b = Bed.make(dovecot_src, dovecot_dst, tmp_path / "state")
    yield b
    b.close()


@pytest.fixture()
def sent() -> Iterator[list[tuple[float, int, str]]]:
    """(time, server port, command) of every command any connection sends. The real
    send follows: this only records."""
    log: list[tuple[float, int, str]] = []
    real = imaplib.IMAP4.send

    def send(self: imaplib.IMAP4, data: bytes) -> None:
        if data.startswith(self.tagpre):  # type: ignore[attr-defined]
            words = data.split(b"\r\n", 1)[0].split(b" ")
            log.append((time.monotonic(), self.port,  # type: ignore[attr-defined]
                        words[1].decode("ascii", "replace") if len(words) > 1 else ""))
        real(self, data)

    imaplib.IMAP4.send = send  # type: ignore[method-assign]
    try:
        yield log
    finally:
        imaplib.IMAP4.send = real  # type: ignore[method-assign]


def _when(log: list[tuple[float, int, str]], port: int, command: str) -> float:
    return next(t for t, p, c in log if p == port and c == command)


def test_the_first_pass_logs_in_to_the_destination_while_the_source_is_listed(
        bed: Bed, sent: list[tuple[float, int, str]]) -> None:
    bed.put(("INBOX",), [make_message(i) for i in range(3)], flags=("\\Seen",))
    bed.create("Archive")
    bed.put(("Archive",), [make_message(10)])
    dst = bed.dst_server
    with SlowNamespace((bed.src_server.host, bed.src_server.port)) as proxy:
        def source() -> ImapStore:
            return ImapStore.connect(host="127.0.0.1", port=proxy.port, security="none",
                                     credentials=Credentials(bed.su, bed.sp))

        assert bed.db is not None
        first = MailboxPass(bed.db, bed.mailbox_id, source=source,
                            destination=lambda: bed.store(dst, bed.du, bed.dp),
                            settings=PassSettings(folder_parallelism=1)).run()
        assert first.status == "ok", first.error
        assert first.copied == 4
        assert bed.differences() == []
        # The source's NAMESPACE answer took HOLD seconds; the destination's login was
        # sent before the source could even ask for its folder list.
        assert _when(sent, dst.port, "LOGIN") < _when(sent, proxy.port, "LIST")
        assert _when(sent, proxy.port, "LIST") - _when(sent, proxy.port, "NAMESPACE") >= HOLD

        sent.clear()
        again = MailboxPass(bed.db, bed.mailbox_id, source=source,
                            destination=lambda: bed.store(dst, bed.du, bed.dp),
                            settings=PassSettings(folder_parallelism=1)).run()
    assert again.status == "ok", again.error
    assert (again.copied, again.adopted) == (0, 0)
    # A pass with nothing to do (the folders are known) does not log in there at all.
    assert [c for _t, p, c in sent if p == dst.port] == []


def test_the_first_pass_creates_the_destination_folders_in_one_burst(
        bed: Bed, sent: list[tuple[float, int, str]]) -> None:
    """Every CREATE goes out before the first answer is read; a refused name in the middle
    of the burst is reported, the folders after it are created, nothing is lost."""
    names = ["Archive", "Archive/2023", "Old", "Projets/Été", "R&D", "Zeta"]
    for i, name in enumerate(names):
        bed.create(*name.split("/"))
        bed.put(tuple(name.split("/")), [make_message(100 + i)])
    reads: list[tuple[float, int]] = []
    real_readline = imaplib.IMAP4.readline

    def readline(self: imaplib.IMAP4) -> bytes:
        reads.append((time.monotonic(), self.port))  # type: ignore[attr-defined]
        return real_readline(self)

    imaplib.IMAP4.readline = readline  # type: ignore[method-assign]
    try:
        # "~Old" is refused by Dovecot (no leading "~"): the third of the burst.
        result = bed.run(rules=MappingRules(renames=(RenameRule("Old", "~Old"),)))
    finally:
        imaplib.IMAP4.readline = real_readline  # type: ignore[method-assign]
    assert result.status == "partial", result
    [finding] = bed.findings("folder_error")
    assert "~Old" in finding.reason and "1 message(s) were not copied" in finding.reason
    port = bed.dst_server.port
    creates = [t for t, p, c in sent if p == port and c == "CREATE"]
    assert len(creates) >= len(names)  # the parent "Projets" too, where it is implied
    assert not [t for t, p in reads if p == port and creates[0] < t < creates[-1]]
    for name in [n for n in names if n != "Old"]:
        assert len(bed.uids(*name.split("/"), side="dst")) == 1, name
    # The operator renames it; the next pass creates it and copies its message once.
    again = bed.run(rules=MappingRules(renames=(RenameRule("Old", "Tilde Old"),)))
    assert again.status == "ok" and again.copied == 1, again
    assert len(bed.uids("Tilde Old", side="dst")) == 1
