"""Large messages through a temporary file (store/spool.py), a chunk at a time.

The pure parts (the line-end check over pieces, the spool's bytes and hash) without
servers; the copy on real Dovecots: byte-exact, holding about one chunk of memory and not
the message, and "nothing lost, nothing duplicated" after a crash at every checkpoint
and after the destination's connection is cut in the middle of a spooled literal.
"""

from __future__ import annotations

import hashlib
import imaplib
import io
import random
import socket
import threading
import tracemalloc
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import select

from harness import Bed, make_message
from mxshift.engine.copier import needs_line_fix
from mxshift.engine.journal import CrashAt, SimulatedCrash
from mxshift.engine.mailbox_pass import MailboxPass
from mxshift.engine.settings import PassSettings
from mxshift.state.models import Message
from mxshift.store import spool as spool_mod
from mxshift.store.auth import Credentials
from mxshift.store.imap import ImapStore
from mxshift.repair import LineEnds
from mxshift.store.spool import CHUNK, SPOOL_ABOVE, Spool
from mxshift.testbed.tcp_proxy import TcpProxy, close_quietly


# -- pure ------------------------------------------------------------------------------
def _pieces(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 6))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


def test_line_ends_over_pieces_agree_with_the_whole_message() -> None:
    rng = random.Random(7)
    seen = {True: 0, False: 0}
    for _ in range(3000):
        n = rng.randint(1, 24)
        # mostly CRLF text, sometimes a bare CR or LF, often at a piece boundary
        data = b"".join(rng.choice([b"a", b"\r\n", b"\r\n", b"\r\n", b"\r", b"\n"])
                        for _ in range(n))
        for pieces in (_pieces(data, rng), [data], [bytes([b]) for b in data]):
            lines = LineEnds()
            for piece in pieces:
                lines.feed(piece)
            assert lines.needs_fix() == needs_line_fix(data), (data, pieces)
            # through one reused buffer (Spool.copy_from): the stale bytes after each
            # piece's end must not count
            lines, buf = LineEnds(), bytearray(b"\n\r" * 16)
            for piece in pieces:
                buf[:len(piece)] = piece
                lines.feed(buf, len(piece))
            assert lines.needs_fix() == needs_line_fix(data), (data, pieces)
        seen[needs_line_fix(data)] += 1
    assert seen[True] > 100 and seen[False] > 100  # both answers were exercised


def test_a_spooled_message_read_through_its_reused_buffer_keeps_its_own_bytes() -> None:
    """Spool.copy_from reads every chunk of a message into one buffer: a last chunk
    shorter than the buffer leaves the previous chunk's tail in it, which must not count
    (here it would start with the LF of a CRLF whose CR was overwritten: a bare LF)."""
    head = b"X: y\r\n\r\n"  # its CRLF sits at offsets 4-5 of the first chunk
    body_len = CHUNK + 5 - len(head)  # the last chunk: 5 bytes, the stale tail from 5 on
    lines, rest = divmod(body_len, 72)
    body = (b"a" * 70 + b"\r\n") * (lines - 1) + b"b" * (70 + rest) + b"\r\n"
    clean = head + body
    dirty = b"Subject: one\r\n\r\n" + b"bare LFs\n" * 300_000  # 2.7 MB, needs a fix
    assert len(clean) == CHUNK + 5 and not needs_line_fix(clean)
    for raw, fix in ((clean, False), (dirty, True), (dirty[:CHUNK + 3], True)):
        spool = Spool()
        try:
            spool.copy_from(io.BytesIO(raw + b"NEXT RESPONSE\r\n"), len(raw))
            assert len(spool) == len(raw) and spool.read_all() == raw
            assert spool.sha256() == hashlib.sha256(raw).hexdigest()
            assert spool.needs_line_fix() is fix
            assert spool.head == raw[:raw.index(b"\r\n\r\n") + 4]
        finally:
            spool.close()
    spool = Spool()
    try:
        with pytest.raises(imaplib.IMAP4.abort, match="connection closed"):
            spool.copy_from(io.BytesIO(clean[:100]), len(clean))
    finally:
        spool.close()


def test_a_spool_gives_back_its_bytes_hash_and_header_block() -> None:
    body = b"".join(f"line {i}\r\n".encode() for i in range(200_000))
    raw = b"Message-ID: <s@spool.test>\r\nSubject: big\r\n\r\n" + body
    spool = Spool()
    try:
        for i in range(0, len(raw), 65536):
            spool.write(raw[i:i + 65536])
        assert len(spool) == len(raw)
        assert spool.sha256() == hashlib.sha256(raw).hexdigest()
        assert spool.head == b"Message-ID: <s@spool.test>\r\nSubject: big\r\n\r\n"
        assert b"".join(spool.chunks()) == raw
        assert spool.read_all() == raw  # again from the start: an APPEND sent twice
        assert not spool.needs_line_fix()
    finally:
        spool.close()


def test_held_bytes_is_one_chunk_for_a_spooled_message() -> None:
    assert spool_mod.held_bytes(SPOOL_ABOVE) == SPOOL_ABOVE
    assert spool_mod.held_bytes(10 * SPOOL_ABOVE) == CHUNK


# -- on real Dovecots ------------------------------------------------------------------
SIZES = [SPOOL_ABOVE + 1, 2 * CHUNK, 2 * CHUNK + 17, 5_000_000]


def _large(i: int, size: int, *, message_id: bool = True) -> bytes:
    head = make_message(i, subject=f"large {i}", message_id=message_id, body="")
    line = (f"{i:06d} " + "z" * 70 + "\r\n").encode()
    body = line * ((size - len(head)) // len(line) + 1)
    return (head + body)[:size - 2] + b"\r\n"


@pytest.fixture
def bed(dovecot_src, dovecot_dst, tmp_path: Path) -> Iterator[Bed]:
    b = Bed.make(dovecot_src, dovecot_dst, tmp_path / "state")
    yield b
    b.close()


def _fill(bed: Bed) -> list[bytes]:
    large = [_large(i, size, message_id=i != 2) for i, size in enumerate(SIZES)]
    bed.put(("INBOX",), [large[0], make_message(10), large[1], make_message(11)],
            flags=("\\Seen", "$Label1"))
    bed.create("Archive")
    bed.put(("Archive",), [large[2], large[3], make_message(12, message_id=False)])
    return large


def test_large_messages_are_copied_exact_holding_a_chunk_not_the_message(bed: Bed) -> None:
    large = _fill(bed)
    assert all(len(m) in SIZES for m in large)
    tracemalloc.start()
    try:
        result = bed.run(batch_bytes=8 * 1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status == "ok", result.error
    assert result.copied == 7 and result.bytes_copied >= sum(SIZES)
    assert bed.differences() == []  # bytes, flags, keywords, INTERNALDATE
    # The 5 MB message held whole would be 5 MB at least; spooled, a chunk or two is
    # in memory at once (a fetched piece and the one being sent), plus the small ones.
    assert peak < 5_000_000 - 1_000_000, peak
    # What the journal records before an APPEND is what it is for a message in memory:
    # the SHA-256 of a message without Message-ID (large[2]), none for the others.
    assert bed.db is not None
    with bed.db.session() as s:
        hashes = dict(s.execute(select(Message.size, Message.content_hash)).all())
    assert hashes[len(large[2])] == hashlib.sha256(large[2]).hexdigest()
    assert all(hashes[len(m)] == "" for i, m in enumerate(large) if i != 2)
    again = bed.run()
    assert (again.copied, again.adopted) == (0, 0)


def test_a_crash_at_every_checkpoint_with_spooled_messages_then_rerun_is_exact(
        dovecot_src, dovecot_dst, tmp_path: Path) -> None:
    counting = Bed.make(dovecot_src, dovecot_dst, tmp_path / "count")
    try:
        _fill(counting)
        hooks = CrashAt(None)
        assert counting.run(hooks=hooks).status == "ok"
        labels = list(hooks.labels)
    finally:
        counting.close()
    assert labels.count("append") >= len(SIZES)  # each spooled message is one APPEND
    for n, label in enumerate(labels):
        bed = Bed.make(dovecot_src, dovecot_dst, tmp_path / f"crash{n}")
        try:
            _fill(bed)
            with pytest.raises(SimulatedCrash):
                bed.run(hooks=CrashAt(n))
            result = bed.run()
            assert result.status == "ok", (n, label, result.error)
            assert bed.differences() == [], (n, label)
            assert len(bed.uids("INBOX", side="dst")) == 4, (n, label)  # no duplicate
            assert len(bed.uids("Archive", side="dst")) == 3, (n, label)
            assert bed.journal_states() == {"copied": 7}, (n, label)
        finally:
            bed.close()


class CutOnce(TcpProxy):
    """Forwards both ways; the first connection is cut once its client has sent
    ``after`` bytes (in the middle of a spooled literal here). Later ones pass."""

    def __init__(self, upstream: tuple[str, int], after: int, *,
                 downstream: bool = False) -> None:
        super().__init__(upstream)
        self.after = after
        self.downstream = downstream  # count what the server sends, not the client
        self.cut = threading.Event()

    def _connected(self, client: socket.socket, upstream: socket.socket) -> None:
        first = not self.cut.is_set() and not getattr(self, "_seen", False)
        self._seen = True
        limit = self.after if first else None
        threading.Thread(target=self._pump, daemon=True, args=(
            upstream, client, limit if self.downstream else None)).start()
        threading.Thread(target=self._pump, daemon=True, args=(
            client, upstream, None if self.downstream else limit)).start()

    def _pump(self, a: socket.socket, b: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) > limit:
                    b.sendall(data[:limit - sent])
                    self.cut.set()
                    break
                b.sendall(data)
                sent += len(data)
        except OSError:
            pass
        self._hang_up(a, b)
        close_quietly(a)


def test_a_connection_cut_inside_a_spooled_literal_then_rerun_is_exact(bed: Bed) -> None:
    _fill(bed)
    dst = bed.dst_server
    with CutOnce((dst.host, dst.port), after=3_000_000) as proxy:
        def destination() -> ImapStore:
            return ImapStore.connect(host="127.0.0.1", port=proxy.port, security="none",
                                     credentials=Credentials(bed.du, bed.dp))

        assert bed.db is not None
        first = MailboxPass(bed.db, bed.mailbox_id,
                            source=lambda: bed.store(bed.src_server, bed.su, bed.sp),
                            destination=destination,
                            settings=PassSettings(folder_parallelism=1, batch_messages=2)).run()
    assert proxy.cut.is_set()
    assert first.status != "ok"  # the pass stopped at the lost connection
    assert bed.differences() != []
    result = bed.run()
    assert result.status == "ok", result.error
    assert bed.differences() == []
    assert len(bed.uids("INBOX", side="dst")) == 4
    assert len(bed.uids("Archive", side="dst")) == 3
    assert bed.journal_states() == {"copied": 7}


@pytest.mark.parametrize("fixture", ["dovecot_src", "dovecot_tls"])
def test_the_store_spools_a_fetch_and_appends_from_the_spool_plain_and_tls(
        fixture: str, request: pytest.FixtureRequest) -> None:
    """ImapStore.fetch_spooled / append of a Spool, over a plain socket (sendfile) and
    TLS (read and send): the bytes that land are the source's, with flags and date."""
    server = request.getfixturevalue(fixture)
    user = server.new_user("spool")[0]
    store = ImapStore.connect(host=server.host, port=server.port,
                              security=server.config.tls or "none",
                              ca_file=str(server.ca_file) if server.ca_file else None,
                              credentials=Credentials(user, server.password(user)))
    try:
        raw = _large(1, 3 * CHUNK + 5)
        from datetime import datetime, timezone
        when = datetime(2021, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
        store.create_folder("Copy")
        first = store.append("INBOX", raw, ["\\Flagged", "$Work"], when)
        store.select("INBOX", readonly=True)
        got = store.fetch_spooled(first or 1)
        assert got is not None and isinstance(got.raw, Spool)
        assert len(got.raw) == len(raw) and got.raw.read_all() == raw
        assert got.raw.sha256() == hashlib.sha256(raw).hexdigest()
        assert got.flags == {"\\Flagged", "$Work"} and got.internaldate == when
        uid = store.append("Copy", got.raw, got.flags, got.internaldate)
        got.raw.close()
        store.select("Copy", readonly=True)
        back = list(store.fetch_raw([uid or 1]))
        assert [m.raw for m in back] == [raw]
        assert store.fetch_spooled(999) is None  # gone: nothing spooled
    finally:
        store.close()


def test_a_source_connection_cut_inside_a_spooled_fetch_is_read_again_exact(
        dovecot_src) -> None:
    """The server's literal stops 1.5 MB into a 3 MB message: the store logs in again and
    reads it again into a fresh spool (nothing of the first attempt is kept)."""
    from mxshift.store.throttle import ThrottleSettings

    user, password = dovecot_src.new_user("cut")
    raw = _large(3, 3 * CHUNK + 11)
    c = dovecot_src.connect(user, password)
    c.append("INBOX", raw)
    c.logout()
    with CutOnce((dovecot_src.host, dovecot_src.port), 1_500_000, downstream=True) as proxy:
        store = ImapStore.connect(host="127.0.0.1", port=proxy.port, security="none",
                                  credentials=Credentials(user, password),
                                  throttle_settings=ThrottleSettings())
        try:
            store.select("INBOX", readonly=True)
            got = store.fetch_spooled(1)
            assert proxy.cut.is_set()
            assert got is not None and isinstance(got.raw, Spool)
            assert len(got.raw) == len(raw) and got.raw.read_all() == raw
            assert got.raw.sha256() == hashlib.sha256(raw).hexdigest()
            got.raw.close()
        finally:
            store.close()
