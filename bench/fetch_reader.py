"""CPU per message of reading a batch FETCH answer: imaplib + mxshift's parser, or a bare reader.

Why: imaplib's response reading is ~14% of a full copy's GIL time (py-spy). Before
replacing it with a reader of our own (protocol risk: untagged answers in the middle of
a FETCH, BYE, literals elsewhere), this measures what that could save at most. A socket
server in this process replays one recorded-shape answer (200 corpus messages under
256 KiB, the batch path) to a real ``imaplib.IMAP4``; "bare" reads the same bytes with
one regex per message and parses nothing (no flags, no dates), so it is a lower bound.
Usage: ``bench/fetch_reader.py``.
"""

from __future__ import annotations

import imaplib
import re
import socket
import sys
import threading
import time

from mxshift.store.fetch_parse import parse_fetch_fast
from mxshift.testbed.corpus import CorpusSpec, generate

BATCH = 200
MESSAGES = [m.raw for m in generate(CorpusSpec(messages=400, seed=1))
            if len(m.raw) < 256 * 1024][:BATCH]
_HEAD = re.compile(rb"\* \d+ FETCH \((.*) \{(\d+)\}\r\n$")


def _answer(tag: bytes) -> bytes:
    parts = []
    for i, raw in enumerate(MESSAGES, 1):
        parts += [b'* %d FETCH (UID %d FLAGS (\\Seen $Label1) INTERNALDATE '
                  b'"02-Aug-2016 05:48:46 +0000" BODY[] {%d}\r\n' % (i, i, len(raw)),
                  raw, b")\r\n"]
    return b"".join(parts + [tag + b" OK Fetch completed.\r\n"])


def _serve(listener: socket.socket) -> None:
    conn, _ = listener.accept()
    conn.sendall(b"* OK [CAPABILITY IMAP4rev1] ready\r\n")
    lines = conn.makefile("rb")
    while line := lines.readline():
        tag = line.split()[0]
        if b"LOGOUT" in line:
            conn.sendall(b"* BYE\r\n" + tag + b" OK bye\r\n")
            return
        conn.sendall(_answer(tag) if b"FETCH" in line else tag + b" OK done\r\n")


def main() -> int:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    threading.Thread(target=_serve, args=(listener,), daemon=True).start()
    imap = imaplib.IMAP4("127.0.0.1", listener.getsockname()[1])
    imap.debug = 0  # as ImapStore runs it
    imap.state = "SELECTED"

    def with_imaplib() -> None:
        _typ, data = imap.uid("FETCH", f"1:{BATCH}", "(BODY.PEEK[] FLAGS INTERNALDATE)")
        assert len(parse_fetch_fast(data) or {}) == BATCH

    def bare() -> None:
        tag = imap._new_tag()  # type: ignore[attr-defined]
        imap.send(tag + f" UID FETCH 1:{BATCH} (BODY.PEEK[] FLAGS INTERNALDATE)\r\n".encode())
        got = 0
        while not (line := imap.file.readline()).startswith(tag):  # type: ignore[attr-defined]
            head = _HEAD.match(line)
            assert head is not None, line
            imap.file.read(int(head.group(2)))  # type: ignore[attr-defined]
            imap.file.readline()  # type: ignore[attr-defined]
            got += 1
        assert got == BATCH

    print(f"{len(MESSAGES)} messages, {sum(map(len, MESSAGES)) / 1e6:.1f} MB per answer")
    for reader in (with_imaplib, bare, with_imaplib, bare):
        best = min(_cpu(reader) for _ in range(15))
        print(f"{reader.__name__:13} {best * 1e6 / BATCH:5.1f} us CPU per message (best of 15)")
    imap.logout()
    return 0


def _cpu(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.thread_time()
    fn()
    return time.thread_time() - start


if __name__ == "__main__":
    sys.exit(main())
