"""FAKE Gmail: an IMAP proxy in front of a real Dovecot that speaks the bit of Gmail's IMAP
extensions (X-GM-EXT-1) mxshift uses to apply labels. For tests only.

Why a fake: Google's servers cannot be reached from here, and what a "labels" migration
must prove is a property of the destination's *folders*: a message given label L shows in
folder L. The proxy passes IMAP through to Dovecot untouched (so APPEND, SELECT, FETCH,
SEARCH, STORE of flags, EXPUNGE, UIDPLUS, QRESYNC... are Dovecot's, byte for byte), except:

Reproduced from Gmail (https://developers.google.com/gmail/imap/imap-extensions):
- ``X-GM-EXT-1`` is added to every CAPABILITY list the server sends (greeting, the
  CAPABILITY response, the ``[CAPABILITY ...]`` code after login).
- ``UID STORE <uids> +X-GM-LABELS[.SILENT] (<label> ...)`` adds labels to messages of the
  selected folder: each label's folder then shows the message, under a new UID above that
  folder's UIDNEXT, with the message's flags and INTERNALDATE. Implemented as a ``UID COPY``
  to the folder per label (created first if missing, as Gmail creates unknown labels).
  The system label ``\\Inbox`` is INBOX; other labels are folder names as sent (modified
  UTF-7, "/" nests). The tagged answer is OK, with no FETCH data (as with .SILENT).

Not reproduced (differences a test must not rely on):
- One message in several labels is *one* message on Gmail, several copies here: flags,
  deletion and size are per folder in the fake, per message on Gmail.
- Adding a label a message already has is a no-op on Gmail, a second copy here.
- ``-X-GM-LABELS``, ``X-GM-LABELS`` without a sign, system labels other than ``\\Inbox``
  (``\\Sent``, ``\\Starred``, ``\\Important``...): refused with NO.
- ``X-GM-MSGID``, ``X-GM-THRID``, ``X-GM-LABELS`` in FETCH and ``X-GM-RAW`` in SEARCH:
  not implemented (Dovecot answers BAD); Gmail's LIST of "[Gmail]/..." folders: only what
  the backing Dovecot has; labels given as literals: not parsed.
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, field
from queue import Queue
from typing import BinaryIO

from mxshift.testbed.tcp_proxy import TcpProxy

CAPABILITY = b"X-GM-EXT-1"
_LITERAL = re.compile(rb"\{(\d+)(\+?)\}\r\n$")
_CAPS = re.compile(rb"(\[CAPABILITY |^\* CAPABILITY )", re.I)
_STORE = re.compile(rb"^(\S+) UID STORE (\S+) ([+-]?)X-GM-LABELS(\.SILENT)? \((.*)\)\r\n$",
                    re.I)
_TOKEN = re.compile(rb'"((?:[^"\\]|\\.)*)"|([^\s()"]+)')
_PRIVATE = b"GMX"  # tags of the commands the proxy sends itself


def parse_labels(text: bytes) -> list[str]:
    """The labels of a parenthesised X-GM-LABELS list: quoted strings or atoms."""
    out = []
    for m in _TOKEN.finditer(text):
        if m.group(1) is not None:
            out.append(re.sub(rb"\\(.)", rb"\1", m.group(1)).decode("ascii", "replace"))
        else:
            out.append(m.group(2).decode("ascii", "replace"))
    return out


def _quoted(name: str) -> bytes:
    return b'"' + name.replace("\\", "\\\\").replace('"', '\\"').encode("ascii") + b'"'


@dataclass
class _Conn:
    client: socket.socket
    upstream: socket.socket
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    answers: "Queue[bytes]" = field(default_factory=Queue)
    counter: int = 0

    def to_client(self, data: bytes) -> None:
        with self.send_lock:
            self.client.sendall(data)


@dataclass
class FakeGmail(TcpProxy):
    # what clients sent: ("APPEND", folder) per APPEND, ("LABEL", label) per label added
    log: list[tuple[str, str]] = field(default_factory=list)

    thread_name = "fake-gmail"

    def appends(self) -> int:
        return sum(1 for kind, _ in self.log if kind == "APPEND")

    def labels_added(self) -> list[str]:
        return [what for kind, what in self.log if kind == "LABEL"]

    # -- running --------------------------------------------------------------------
    def _connected(self, client: socket.socket, upstream: socket.socket) -> None:
        conn = _Conn(client, upstream)
        threading.Thread(target=self._downstream, args=(conn,), daemon=True).start()
        threading.Thread(target=self._upstream, args=(conn,), daemon=True).start()

    def _downstream(self, conn: _Conn) -> None:
        """Server -> client: add X-GM-EXT-1 to capabilities, keep our own answers."""
        reader = conn.upstream.makefile("rb")
        continued = False  # the line goes on after a literal: not a response start
        try:
            while True:
                line = reader.readline()
                if not line:
                    break
                literal = _LITERAL.search(line)
                if not continued and line.startswith(_PRIVATE):
                    conn.answers.put(line)
                    continue
                if not continued and b"CAPABILITY" in line.upper():
                    line = _CAPS.sub(lambda m: m.group(1) + CAPABILITY + b" ", line, count=1)
                conn.to_client(line)
                if literal:
                    conn.to_client(reader.read(int(literal.group(1))))
                continued = literal is not None
        except OSError:
            pass
        finally:
            reader.close()
        self._hang_up(conn.client, conn.upstream)

    def _upstream(self, conn: _Conn) -> None:
        """Client -> server: commands pass through, but STORE X-GM-LABELS is ours."""
        reader = conn.client.makefile("rb")
        try:
            while True:
                line = reader.readline()
                if not line:
                    break
                words = line.split(b" ", 3)
                verb = words[1].upper() if len(words) > 1 else b""
                store = _STORE.match(line) if b"X-GM-LABELS" in line.upper() else None
                if store is None:
                    literals = self._forward(line, reader, conn.upstream)
                    if verb == b"APPEND" and len(words) > 2:  # MULTIAPPEND: one per literal
                        with self._lock:
                            self.log += [("APPEND", words[2].decode("ascii", "replace"))
                                         ] * literals
                    continue
                tag, uids, sign, _, labels = store.groups()
                conn.to_client(tag + b" " + self._add_labels(conn, uids, sign,
                                                             parse_labels(labels)) + b"\r\n")
        except OSError:
            pass
        finally:
            reader.close()
        self._hang_up(conn.client, conn.upstream)

    def _add_labels(self, conn: _Conn, uids: bytes, sign: bytes, labels: list[str]) -> bytes:
        if sign != b"+":
            return b"NO [fake Gmail] only +X-GM-LABELS is implemented"
        for label in labels:
            if label.startswith("\\") and label.lower() != "\\inbox":
                return b"NO [fake Gmail] system label " + label.encode() + b" not implemented"
        for label in labels:
            folder = "INBOX" if label.lower() == "\\inbox" else label
            answer = self._command(conn, b"UID COPY " + uids + b" " + _quoted(folder))
            if b"TRYCREATE" in answer.upper():
                self._command(conn, b"CREATE " + _quoted(folder))
                answer = self._command(conn, b"UID COPY " + uids + b" " + _quoted(folder))
            if not answer.split(b" ", 2)[1:2] == [b"OK"]:
                return b"NO [fake Gmail] label " + label.encode() + b": " + answer.strip()
            with self._lock:
                self.log.append(("LABEL", label))
        return b"OK Success (fake Gmail: labels added)"

    @staticmethod
    def _command(conn: _Conn, command: bytes) -> bytes:
        """Send one command of our own and wait for its tagged answer (the downstream
        thread routes it here; untagged data it causes goes to the client)."""
        conn.counter += 1
        tag = _PRIVATE + str(conn.counter).encode()
        conn.upstream.sendall(tag + b" " + command + b"\r\n")
        return conn.answers.get(timeout=30)

    @staticmethod
    def _forward(line: bytes, reader: BinaryIO, upstream: socket.socket) -> int:
        """Forward one command, literal by literal (the server answers "+" itself);
        returns how many literals it carried."""
        count = 0
        while True:
            upstream.sendall(line)
            m = _LITERAL.search(line)
            if not m:
                return count
            count += 1
            upstream.sendall(reader.read(int(m.group(1))))
            line = reader.readline()
            if not line:
                return count
