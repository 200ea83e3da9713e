"""A TCP proxy between mxshift and a test Dovecot that pushes back like Microsoft 365.

Why: throttling is what kills migrations to hosted services, and no local server
throttles on cue. This proxy passes IMAP through untouched, except for the commands a test
names, which it answers itself, *without forwarding them*: a tagged ``NO Request is
throttled. Suggested Backoff Time: N milliseconds`` (so nothing happened on the server and
a retry is safe), a ``* BYE`` with a reason followed by a closed connection, or a silent
drop. It records when every command arrived, so a test can check that mxshift waited as
long as it was told before trying again.

Commands are framed as the client sends them (literals ``{N}`` and ``{N+}`` included), so
an APPEND can be refused before its bytes go anywhere.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import BinaryIO, Callable

from mxshift.testbed.tcp_proxy import TcpProxy

MS_THROTTLED = "Request is throttled. Suggested Backoff Time: {ms} milliseconds"
MS_TOKEN_EXPIRED = "Session invalidated - AccessTokenExpired"
_LITERAL = re.compile(rb"\{(\d+)(\+?)\}\r\n$")


@dataclass
class Rule:
    """Answer the matching command ourselves, ``times`` times after letting ``skip`` pass.

    ``command``: "APPEND", "SELECT", "UID FETCH", "FETCH" (matches UID FETCH too)...
    ``action``: "no" (tagged NO ``text``), "bye" (``* BYE text``, then close), "drop".
    ``on_fire`` runs when it fires (e.g. the fake IdP expiring every token).
    """

    command: str
    action: str = "no"
    text: str = MS_THROTTLED.format(ms=1000)
    skip: int = 0
    times: int = 1
    on_fire: Callable[[], None] | None = None
    seen: int = 0
    fired: int = 0

    def matches(self, verb: str) -> bool:
        want = self.command.upper()
        return want == verb or want == verb.removeprefix("UID ")


@dataclass(frozen=True)
class Event:
    at: float          # time.monotonic()
    connection: int
    verb: str
    action: str        # "pass" or the rule's action


@dataclass
class ThrottleProxy(TcpProxy):
    rules: list[Rule] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    connections: int = 0

    thread_name = "throttle-proxy"

    def add(self, rule: Rule) -> Rule:
        self.rules.append(rule)
        return rule

    def injected(self) -> list[Event]:
        return [e for e in self.events if e.action != "pass"]

    def gap_after(self, event: Event) -> float | None:
        """Seconds from ``event`` to the next command from the client (any connection)."""
        later = [e.at for e in self.events if e.at > event.at]
        return min(later) - event.at if later else None

    # -- running --------------------------------------------------------------------
    def _connected(self, client: socket.socket, upstream: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            conn = self.connections
        send_lock = threading.Lock()
        threading.Thread(target=self._downstream, args=(upstream, client, send_lock),
                         daemon=True).start()
        threading.Thread(target=self._upstream, args=(conn, client, upstream, send_lock),
                         daemon=True).start()

    def _downstream(self, upstream: socket.socket, client: socket.socket,
                    send_lock: threading.Lock) -> None:
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                with send_lock:
                    client.sendall(data)
        except OSError:
            pass
        self._hang_up(client, upstream)

    def _upstream(self, conn: int, client: socket.socket, upstream: socket.socket,
                  send_lock: threading.Lock) -> None:
        reader = client.makefile("rb")
        try:
            while True:
                line = reader.readline()
                if not line:
                    break
                words = line.split(b" ", 3)
                verb = words[1].decode("ascii", "replace").upper() if len(words) > 1 else ""
                if verb == "UID" and len(words) > 2:
                    verb = "UID " + words[2].decode("ascii", "replace").upper().strip()
                verb = verb.strip()
                rule = self._rule_for(verb)
                if rule is None:
                    self._record(conn, verb, "pass")
                    self._forward(line, reader, upstream)
                    continue
                self._record(conn, verb, rule.action)
                if rule.on_fire is not None:
                    rule.on_fire()
                if rule.action == "no":
                    self._swallow(line, reader)
                    with send_lock:
                        client.sendall(words[0] + b" NO " + rule.text.encode() + b"\r\n")
                    continue
                if rule.action == "bye":
                    with send_lock:
                        client.sendall(b"* BYE " + rule.text.encode() + b"\r\n")
                    time.sleep(0.05)
                break  # "bye" and "drop": the connection ends here
        except OSError:
            pass
        finally:
            reader.close()
        self._hang_up(client, upstream)

    def _rule_for(self, verb: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(verb):
                    rule.seen += 1
                    if rule.seen > rule.skip and rule.fired < rule.times:
                        rule.fired += 1
                        return rule
        return None

    def _record(self, conn: int, verb: str, action: str) -> None:
        with self._lock:
            self.events.append(Event(time.monotonic(), conn, verb, action))

    @staticmethod
    def _forward(line: bytes, reader: BinaryIO, upstream: socket.socket) -> None:
        """Forward one command, literal by literal (the server answers "+" itself)."""
        while True:
            upstream.sendall(line)
            m = _LITERAL.search(line)
            if not m:
                return
            upstream.sendall(reader.read(int(m.group(1))))
            line = reader.readline()
            if not line:
                return

    @staticmethod
    def _swallow(line: bytes, reader: BinaryIO) -> None:
        """Read the rest of a command we answer ourselves. A synchronising literal ends
        it: the client waits for "+", gets our NO instead, and sends nothing more."""
        while True:
            m = _LITERAL.search(line)
            if not m or not m.group(2):
                return
            reader.read(int(m.group(1)))
            line = reader.readline()
            if not line:
                return
