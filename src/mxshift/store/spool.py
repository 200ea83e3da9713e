"""A large message's bytes in an unnamed temporary file instead of in memory.

Why: the byte budget (``batch_bytes``, one for the whole process) bounds what is held in
memory. A message larger than the budget used to be held whole, alone: a 10 MB message
took the whole 8 MB budget, every other copier of the process waited for it, and peak RSS
followed the largest message. A message above :data:`SPOOL_ABOVE` now travels in
:data:`CHUNK`-sized pieces: fetched with partial FETCHes (``BODY.PEEK[]<offset.length>``,
RFC 3501 6.4.5) into a :class:`Spool`, then sent to the destination's APPEND literal from
the file, one piece at a time. It holds one piece of the budget, not its whole size.

Why a file and not a pipe from source to destination: before an APPEND the journal
records the message's fingerprint, size and SHA-256, and the line-end check decides
whether the bytes must be repaired (which changes the literal's length) - all of that
needs every byte first. The spool computes them while it is written, so what is
journalled and when is exactly what it was for a message held in memory; only where the
bytes wait changed. The file has no name (``tempfile.TemporaryFile``): a killed process
leaves nothing on disk, and the page cache, not the process, holds the bytes.
"""

from __future__ import annotations

import hashlib
import socket
import tempfile
from typing import Callable, Iterator

from mxshift.repair import LineEnds

#: Messages larger than this are spooled; smaller ones are held in memory as before.
SPOOL_ABOVE = 1024 * 1024
#: Bytes per partial FETCH and per write to the APPEND literal.
CHUNK = 1024 * 1024

def held_bytes(size: int) -> int:
    """What a message of ``size`` bytes holds in memory while it is copied: all of it, or
    one chunk when it is spooled."""
    return CHUNK if size > SPOOL_ABOVE else size


class Spool:
    """One message's bytes in a temporary file, with its SHA-256 and line-end check.

    Sized (``len``) like the bytes it stands for, so the copy's byte counts and the APPEND
    literal's length need no special case. Not thread-safe: one copier owns it.
    """

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="mxshift-spool-")
        self._size = 0
        self._sha = hashlib.sha256()
        self._lines = LineEnds()
        self._head = b""  # the header block (or the first piece, if it has no end)

    def write(self, piece: bytes) -> None:
        if not self._size:  # keep the header block only, not the whole first piece
            end = piece.find(b"\r\n\r\n")
            self._head = piece[:end + 4] if end >= 0 else piece
        self._file.write(piece)
        self._sha.update(piece)
        self._lines.feed(piece)
        self._size += len(piece)

    def __len__(self) -> int:
        return self._size

    @property
    def head(self) -> bytes:
        """The header block with its blank line (the first piece if the headers are
        longer than a chunk): enough for the message's fingerprint."""
        return self._head

    def sha256(self) -> str:
        return self._sha.hexdigest()

    def needs_line_fix(self) -> bool:
        return self._lines.needs_fix()

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """The bytes from the start, ``size`` at a time (again from the start on every
        call: a refused APPEND may be sent again)."""
        self._file.flush()
        self._file.seek(0)
        while True:
            piece = self._file.read(size)
            if not piece:
                return
            yield piece

    def send(self, sock: socket.socket) -> None:
        """All the bytes to ``sock``: sendfile(2) on a plain socket (the kernel copies
        from the page cache; the process touches nothing), read and send under TLS
        (Python's ``sendfile`` falls back by itself)."""
        self._file.flush()
        self._file.seek(0)  # the TLS fallback reads from the position (offset 0 = "here")
        sock.sendfile(self._file, 0)  # type: ignore[arg-type]

    def read_all(self) -> bytes:
        """The whole message in memory: only for the rare paths that need it (a line-end
        repair, the destination refusing the original)."""
        return b"".join(self.chunks())

    def close(self) -> None:
        self._file.close()

    def __del__(self) -> None:
        # A spool dropped without close() - a pass stopped by a failure or a kill
        # simulation, an unused prefetch - gives its file back then, quietly.
        file = getattr(self, "_file", None)
        if file is not None:
            file.close()


def spool_message(fetch_part: Callable[[int, int, bool], tuple[bytes, tuple | None] | None],
                  chunk: int = CHUNK) -> tuple[Spool, tuple | None] | None:
    """Read one message into a :class:`Spool` with partial fetches.

    ``fetch_part(offset, length, first)`` returns ``(piece, meta)`` - ``meta`` (the
    message's flags and INTERNALDATE, asked for with the first piece only) - or None when
    the message is gone. A piece shorter than ``length`` is the last one (the size the
    scan saw is not trusted to end the loop). Returns ``(spool, meta)`` or None.
    """
    spool = Spool()
    meta: tuple | None = None
    offset = 0
    try:
        while True:
            got = fetch_part(offset, chunk, offset == 0)
            if got is None:
                spool.close()
                return None
            piece, part_meta = got
            if offset == 0:
                meta = part_meta
            spool.write(piece)
            offset += len(piece)
            if len(piece) < chunk:
                return spool, meta
    except BaseException:
        spool.close()
        raise
