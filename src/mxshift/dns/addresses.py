"""Server addresses as the operator writes them: ``IP[:PORT]`` and ``NAME=IP[:PORT]``.

Pure and dependency-free, so :mod:`mxshift.config` can validate ``[dns]`` at load time.
IPv6 addresses with a port are written ``[2001:db8::1]:5353``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

DNS_PORT = 53


@dataclass(frozen=True)
class Address:
    """Where to send a DNS query."""

    host: str
    port: int = DNS_PORT

    @classmethod
    def parse(cls, text: str) -> Address:
        """``"127.0.0.1"``, ``"127.0.0.1:5353"``, ``"::1"``, ``"[::1]:5353"``.

        Raises ValueError with a sentence an operator can act on."""
        text = text.strip()
        host, port = text, DNS_PORT
        bracket = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", text)
        if bracket:
            host, port = bracket.group(1), int(bracket.group(2) or DNS_PORT)
        elif text.count(":") == 1:
            host, _, port_text = text.partition(":")
            if not port_text.isdigit():
                raise ValueError(f"{text!r}: the port must be a number, like 127.0.0.1:5353")
            port = int(port_text)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address with an optional port, like "
                             f"192.0.2.53 or 127.0.0.1:5353") from None
        if not 1 <= port <= 65535:
            raise ValueError(f"{text!r}: port must be between 1 and 65535")
        return cls(host, port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DNS_PORT else f"{host}:{self.port}"


def parse_mapping(text: str) -> tuple[str, Address]:
    """``"ns1.example.com=192.0.2.1:5353"`` -> ``("ns1.example.com", Address(...))``."""
    name, sep, addr = text.partition("=")
    name = name.strip().rstrip(".").lower()
    if not sep or not name or not re.fullmatch(r"[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9])?", name):
        raise ValueError(f"{text!r} is not NAME=IP[:PORT], like ns1.example.com=192.0.2.1:53")
    return name, Address.parse(addr)
