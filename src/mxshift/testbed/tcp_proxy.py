"""A threaded TCP proxy in front of a real server: the part every test proxy shares.

Why: the throttling proxy (Microsoft-style back-pressure) and the fake Gmail (labels on
top of Dovecot) both sit between mxshift and a real Dovecot; they differ only in what they
do with a connection's bytes. Accepting, dialling upstream, tracking sockets so ``stop``
can cut every connection, and closing quietly live here once.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field


@dataclass
class TcpProxy:
    upstream: tuple[str, int]
    host: str = "127.0.0.1"
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listener: socket.socket | None = None
    _open: set[socket.socket] = field(default_factory=set)
    _stopped: bool = False

    thread_name = "tcp-proxy"

    def start(self) -> "TcpProxy":
        lst = socket.create_server((self.host, self.port))
        self._listener = lst
        self.port = lst.getsockname()[1]
        threading.Thread(target=self._accept, name=self.thread_name, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped = True
        if self._listener is not None:
            close_quietly(self._listener)
        with self._lock:
            socks = list(self._open)
            self._open.clear()
        for s in socks:
            close_quietly(s)

    def __enter__(self):  # type: ignore[no-untyped-def]  # the subclass's own type
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=10)
                upstream.settimeout(None)
            except OSError:
                close_quietly(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            self._connected(client, upstream)

    def _connected(self, client: socket.socket, upstream: socket.socket) -> None:
        """Serve one proxied connection (start its threads); the subclass's job."""
        raise NotImplementedError

    def _hang_up(self, *socks: socket.socket) -> None:
        with self._lock:
            for s in socks:
                self._open.discard(s)
        for s in socks:
            close_quietly(s)


def close_quietly(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
