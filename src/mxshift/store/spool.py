"""A large message's bytes in an unnamed temporary file instead of in memory.

Why: the byte budget (``batch_bytes``, one for the whole process) bounds what is held in
memory. A message larger than the budget used to be held whole, alone: a 10 MB message
took the whole 8 MB budget, every other copier of the process waited for it, and peak RSS
followed the largest message. A message above :data:`SPOOL_ABOVE` now travels in
:data:`CHUNK`-sized pieces: its FETCH literal is written into a :class:`Spool` as it is
read from the connection (:func:`spooling`; one round trip, as for a message in memory),
then sent to the destination's APPEND literal from the file (sendfile on a plain socket).
It holds one chunk of the budget, not its whole size.

Why a file and not a pipe from source to destination: before an APPEND the journal
records the message's fingerprint, size (and SHA-256 when it has no Message-ID), and
the line-end check decides whether the bytes must be repaired (which changes the
literal's length) - all of that needs every byte first. The spool checks the line ends
while it is written and hashes on demand (:meth:`Spool.sha256`), so what is
journalled and when is exactly what it was for a message held in memory; only where the
bytes wait changed. The file has no name (``tempfile.TemporaryFile``): a killed process
leaves nothing on disk, and the page cache, not the process, holds the bytes.
"""

from __future__ import annotations

import hashlib
import imaplib
import socket
import tempfile
from contextlib import contextmanager
from typing import BinaryIO, Iterator

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
    """One message's bytes in a temporary file, with its line-end check (and SHA-256).

    Sized (``len``) like the bytes it stands for, so the copy's byte counts and the APPEND
    literal's length need no special case. Not thread-safe: one copier owns it.
    """

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="mxshift-spool-")
        self._size = 0
        self._digest: str | None = None
        self._lines = LineEnds()
        self._head = b""  # the header block (or the first piece, if it has no end)

    def copy_from(self, file: BinaryIO, size: int) -> None:
        """``size`` bytes from ``file`` (a connection's literal), a chunk at a time, read
        into one buffer reused for every chunk of this message: a fresh chunk-sized
        ``bytes`` per read was a fresh memory mapping each time (above malloc_tuning's mmap
        threshold), its pages faulted in and unmapped again for every MiB copied. The
        buffer is the chunk this message holds of the byte budget (:func:`held_bytes`),
        and goes with it: kept by the thread, it outlived the budget's reservation (four
        idle copy threads held 4 MiB: tests/test_memory_budget.py)."""
        buf = bytearray(min(CHUNK, size))
        view = memoryview(buf)
        left = size
        try:
            while left:
                got = file.readinto(view[:min(CHUNK, left)])  # type: ignore[attr-defined]
                if not got:
                    raise imaplib.IMAP4.abort(f"connection closed {left} bytes into a "
                                              f"{size}-byte literal")
                self._take(buf, view, got)
                left -= got
        finally:
            view.release()

    def write(self, piece: bytes) -> None:
        self._take(piece, memoryview(piece), len(piece))

    def _take(self, buf: bytes | bytearray, view: memoryview, n: int) -> None:
        """The first ``n`` bytes of ``buf`` (``view`` is a view of it) into the file, the
        hash and the line-end check."""
        if not self._size:  # keep the header block only, not the whole first piece
            end = buf.find(b"\r\n\r\n", 0, n)  # in place: no copy of the chunk
            self._head = bytes(view[:end + 4] if end >= 0 else view[:n])
        self._file.write(view[:n])
        self._lines.feed(buf, n)
        self._size += n

    def __len__(self) -> int:
        return self._size

    @property
    def head(self) -> bytes:
        """The header block with its blank line (the first piece if the headers are
        longer than a chunk): enough for the message's fingerprint."""
        return self._head

    def sha256(self) -> str:
        """The SHA-256 of the bytes, read back from the file when first asked. Why not
        while they are written: only a message without a Message-ID needs it (the
        copier's weak identity), and hashing every spooled byte cost 0.5 ms per MB."""
        if self._digest is None:
            h = hashlib.sha256()
            for piece in self.chunks():
                h.update(piece)
            self._digest = h.hexdigest()
        return self._digest

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


@contextmanager
def spooling(imap: imaplib.IMAP4, spool: Spool) -> Iterator[None]:
    """While inside, the first FETCH literal of ``BODY[]`` that ``imap`` reads goes into
    ``spool``, a chunk at a time, and imaplib gets an empty literal in its place.

    Why imaplib's ``read``: it reads a literal whole, with one ``read(size)`` call; an
    instance attribute of that name is what ``_get_response`` calls for every literal.
    Any other literal (one that is not our BODY[], or a second one) is read as usual.
    """
    def read(size: int) -> bytes:
        line = imap.mo.string if imap.mo is not None else b""  # type: ignore[attr-defined]
        if len(spool) or b"BODY[]" not in line:
            return real(size)
        spool.copy_from(imap.file, size)  # type: ignore[attr-defined]
        return b""

    real = imap.read
    imap.read = read  # type: ignore[method-assign]
    try:
        yield
    finally:
        del imap.read  # the class's own again
