"""The least any client can spend: a copier and a status checker with no tool around them.

    python bench/floor.py copy JOBFILE      # one mailbox, source to destination
    python bench/floor.py status JOBFILE    # a no-change check of many mailboxes

Why: issue #3 sets speed targets relative to interimap and "the ceiling any tool can
reach here". Whether a target can be met at all depends on where that ceiling is on the
machine of the run, and on this VM it moves from run to run (the same interimap copy
ran at 128 and at 246 MB/s on two days). ``bench/run`` runs this file as one more tool,
in the same run and the same state as the peers, so each run says how far the servers
and the machine let a client go at that moment. It is not a migration tool: no journal, no resume, no line-end
check, no identity, no parsing library; a regex per answer line on raw sockets, one
process per mailbox and one connection per side, stdlib only. It prints the span of
its work (first connection to last answer), which ``bench/run`` reports as its pass, as
it reports mxshift's pass without the process's start-up.

* **copy**: LIST the source, CREATE the destination's folders, then per folder (over
  one connection per side, or ``connections`` pairs taking folders largest first)
  ``EXAMINE`` + ``UID FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[])``, each literal sent on
  as it is read, as a MULTIAPPEND part (8 MB batches of messages up to 256 KB, each
  larger one alone, LITERAL+), the answers read at the folder's end.
* **status**: per mailbox, LOGIN to the source, ``LIST "" "*" RETURN (STATUS (MESSAGES
  UIDNEXT UIDVALIDITY HIGHESTMODSEQ))``, LOGOUT: the least a pass that finds nothing
  changed must ask (mxshift's own no-change pass asks the same and does not log in to
  the destination); ``parallel`` mailboxes at a time, as mxshift's
  ``mailbox_parallelism``.

The job file is JSON, mode 0600 (it holds the test accounts' passwords):
``{"src": [port, user, password], "dst": [...], "connections": 1}`` for copy, ``{"accounts": [[port,
user, password], ...], "parallel": 4}`` for status.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

BATCH_BYTES = 8 << 20
ALONE_ABOVE = 256 << 10

_FETCH = re.compile(rb"\* \d+ FETCH \((.*)BODY\[\] \{(\d+)\}\r\n$")
_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")
_DATE = re.compile(rb'INTERNALDATE ("[^"]*")')
_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")
# * LIST (\HasNoChildren) "/" "Archive/2023"  ->  flags, the name as sent (quoted or atom)
_LIST = re.compile(rb'\* LIST \(([^)]*)\) (?:"(?:[^"\\]|\\.)*"|NIL) (.+)\r\n$')


class Conn:
    """A raw IMAP connection: a socket, a buffered reader and a tag counter."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb", buffering=1 << 20)
        self.n = 0
        self.file.readline()
        self.command(f'LOGIN "{user}" "{password}"'.encode())

    def send(self, line: bytes) -> bytes:
        self.n += 1
        tag = b"c%d" % self.n
        self.sock.sendall(tag + b" " + line + b"\r\n")
        return tag

    def wait(self, tag: bytes, *, may_refuse: bool = False) -> list[bytes]:
        """The untagged lines before ``tag``'s answer (literals skipped)."""
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise SystemExit("connection closed")
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK") and not may_refuse:
                    raise SystemExit(f"refused: {line[:200]!r}")
                return lines
            lines.append(line)
            m = _LITERAL.search(line)
            if m:  # skip a literal we did not ask to read
                self.file.read(int(m.group(1)))

    def command(self, line: bytes, *, may_refuse: bool = False) -> list[bytes]:
        return self.wait(self.send(line), may_refuse=may_refuse)

    def close(self) -> None:
        try:
            self.command(b"LOGOUT", may_refuse=True)
        except SystemExit:
            pass
        self.sock.close()


def folders(conn: Conn) -> list[bytes]:
    """Every selectable folder's name as the server sent it (ready to send back)."""
    out = []
    for line in conn.command(b'LIST "" "*"'):
        m = _LIST.match(line)
        if m and b"\\noselect" not in m.group(1).lower() \
                and b"\\nonexistent" not in m.group(1).lower():
            out.append(m.group(2))
    return out


def messages(src: Conn, name: bytes) -> Iterator[tuple[bytes, bytes, bytes]]:
    """(flags, date, bytes) of every message of folder ``name``, in UID order, streamed."""
    src.command(b"EXAMINE " + name)
    tag = src.send(b"UID FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[])")
    while True:
        line = src.file.readline()
        if not line:
            raise SystemExit("connection closed")
        if line.startswith(tag + b" "):
            return
        m = _FETCH.match(line)
        if m is None:
            continue
        head, size = m.group(1), int(m.group(2))
        flags = b" ".join(f for f in _FLAGS.search(head).group(1).split()
                          if f != rb"\Recent")
        body = src.file.read(size)
        src.file.readline()  # the closing ")" of the FETCH
        yield flags, _DATE.search(head).group(1), body


def append_batches(items: Iterable[tuple[bytes, bytes, bytes]], name: bytes
                   ) -> Iterator[list[bytes]]:
    """MULTIAPPEND commands (without tag) for ``items``: 8 MB batches of messages up to
    256 KB, each larger message alone, LITERAL+."""
    batch: list[bytes] = []
    size = 0
    for flags, date, body in items:
        part = b" (" + flags + b") " + date + b" {%d+}\r\n" % len(body)
        if len(body) > ALONE_ABOVE:
            yield [b"APPEND " + name + part, body]
            continue
        if batch and size + len(body) > BATCH_BYTES:
            yield [b"APPEND " + name] + batch
            batch, size = [], 0
        batch += [part, body]
        size += len(body)
    if batch:
        yield [b"APPEND " + name] + batch


def send_appends(dst: Conn, commands: Iterable[list[bytes]]) -> None:
    """Every command back to back; the answers are read at the end."""
    tags = []
    for parts in commands:
        dst.n += 1
        tag = b"c%d" % dst.n
        tags.append(tag)
        dst.sock.sendall(tag + b" " + b"".join(parts) + b"\r\n")
    for tag in tags:
        dst.wait(tag)


class WorkQueue:
    """Items handed to several threads one at a time; what failed is kept, not lost."""

    def __init__(self, items: Iterable) -> None:
        self.items = list(items)
        self.lock = threading.Lock()
        self.failed: list[str] = []

    def take(self) -> Any:
        """The next item, or None when none is left."""
        with self.lock:
            return self.items.pop(0) if self.items else None

    def run(self, threads: int, worker: Callable[[], None], what: str) -> None:
        def guarded() -> None:
            try:
                worker()
            except (OSError, SystemExit) as e:
                self.failed.append(str(e))

        pool = [threading.Thread(target=guarded) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        if self.failed:
            raise SystemExit(f"{len(self.failed)} {what} failed, e.g. {self.failed[0]}")


def copy(job: dict) -> None:
    """One mailbox over ``connections`` pairs (default 1), each taking the next folder,
    largest first."""
    src, dst = Conn(*job["src"]), Conn(*job["dst"])
    names = folders(src)
    for name in sorted(names, key=len):  # parents first
        if name.strip(b'"').upper() != b"INBOX":
            dst.command(b"CREATE " + name, may_refuse=True)  # NO [ALREADYEXISTS]: fine
    n = int(job.get("connections", 1))
    if n == 1:
        for name in names:
            send_appends(dst, append_batches(messages(src, name), name))
        src.close()
        dst.close()
        return
    sizes = {}
    for name in names:
        line = src.command(b"STATUS " + name + b" (SIZE)")[0]
        sizes[name] = int(re.search(rb"SIZE (\d+)", line).group(1))
    src.close()
    dst.close()
    queue = WorkQueue(sorted(names, key=lambda x: -sizes[x]))

    def worker() -> None:
        s, d = Conn(*job["src"]), Conn(*job["dst"])
        while (name := queue.take()) is not None:
            send_appends(d, append_batches(messages(s, name), name))
        s.close()
        d.close()

    queue.run(n, worker, "connection pair(s)")


def status(job: dict) -> None:
    queue = WorkQueue(job["accounts"])

    def worker() -> None:
        while (account := queue.take()) is not None:
            try:
                c = Conn(*account)
                c.command(b'LIST "" "*" RETURN (STATUS (MESSAGES UIDNEXT UIDVALIDITY '
                          b'HIGHESTMODSEQ))')
                c.close()
            except (OSError, SystemExit) as e:
                queue.failed.append(f"{account[1]}: {e}")

    queue.run(int(job.get("parallel", 4)), worker, "mailbox(es)")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("copy", "status"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        job = json.load(f)
    start = time.time()
    (copy if argv[0] == "copy" else status)(job)
    # the work's own span, without Python's start-up: bench/run reports it as "pass s",
    # as it reports mxshift's pass from its state database
    print(f"floor span {start:.6f} {time.time():.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
