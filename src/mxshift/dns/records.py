"""DNS look-ups behind a one-method seam.

Everything that asks DNS goes through :class:`Resolver` (``query(name, rdtype) -> Answer``),
so the checks can be handed a recursive resolver, one authoritative nameserver asked
non-recursively, or a test double. Failures are values, never exceptions: a timeout,
SERVFAIL, NXDOMAIN or a lame server becomes an :class:`Answer` whose ``status`` says so and
whose ``describe()`` is a phrase for the operator.

Values are plain Python: MX -> :class:`Mx`, TXT -> ``str`` (strings joined), CNAME/NS ->
host name (lower case, no final dot), SOA -> serial ``int``, A/AAAA -> address text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver

from mxshift.dns.addresses import Address

Status = Literal["ok", "nodata", "nxdomain", "servfail", "refused", "lame", "timeout", "error"]


@dataclass(frozen=True, order=True)
class Mx:
    priority: int
    host: str

    def __str__(self) -> str:
        return f"{self.priority} {self.host}"


@dataclass(frozen=True)
class Answer:
    """The outcome of one query. ``values`` is empty unless ``status == "ok"``."""

    status: Status
    values: tuple[Any, ...] = ()
    ttl: int | None = None
    server: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def missing(self) -> bool:
        """The server answered, and the record does not exist."""
        return self.status in ("nodata", "nxdomain")

    @property
    def failed(self) -> bool:
        """No usable answer: the server did not answer or could not."""
        return not self.ok and not self.missing

    def describe(self) -> str:
        at = f" from {self.server}" if self.server else ""
        return {
            "ok": f"answer{at}",
            "nodata": "no such record",
            "nxdomain": "the name does not exist (NXDOMAIN)",
            "servfail": f"server failure (SERVFAIL){at}",
            "refused": f"query refused{at}",
            "lame": f"not authoritative{at} (lame delegation)",
            "timeout": f"no answer{at}",
            "error": f"error{at}",
        }[self.status] + (f": {self.detail}" if self.detail else "")


class Resolver(Protocol):
    def query(self, name: str, rdtype: str) -> Answer:
        """Ask for ``rdtype`` records of ``name``; never raises for DNS or network trouble."""
        ...


def host(name: dns.name.Name | str) -> str:
    text = name.to_text(omit_final_dot=True) if isinstance(name, dns.name.Name) else name
    return text.rstrip(".").lower()


def _value(rdata: Any, rdtype: str) -> Any:
    if rdtype == "MX":
        return Mx(rdata.preference, host(rdata.exchange))
    if rdtype == "TXT":
        return b"".join(rdata.strings).decode("utf-8", "replace")
    if rdtype in ("CNAME", "NS", "PTR"):
        return host(rdata.target)
    if rdtype == "SOA":
        return int(rdata.serial)
    if rdtype in ("A", "AAAA"):
        return rdata.address
    return rdata.to_text()


class Server:
    """One DNS server at ``address``. ``recursive=False`` clears RD and insists on an
    authoritative answer (AA), which is how nameservers are compared during propagation."""

    def __init__(self, address: Address, *, recursive: bool = True,
                 timeout: float = 2.0) -> None:
        self.address = address
        self.recursive = recursive
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Server({self.address}, recursive={self.recursive})"

    def query(self, name: str, rdtype: str) -> Answer:
        where = str(self.address)
        try:
            qname = dns.name.from_text(name)
            q = dns.message.make_query(qname, rdtype)
            if not self.recursive:
                q.flags &= ~dns.flags.RD
            r = dns.query.udp(q, self.address.host, port=self.address.port,
                              timeout=self.timeout, ignore_unexpected=True)
            if r.flags & dns.flags.TC:
                r = dns.query.tcp(q, self.address.host, port=self.address.port,
                                  timeout=self.timeout)
        except dns.exception.Timeout:
            return Answer("timeout", server=where, detail=f"nothing within {self.timeout:g} s")
        except (OSError, dns.exception.DNSException, ValueError) as exc:
            return Answer("error", server=where, detail=str(exc) or type(exc).__name__)
        rcode = r.rcode()
        if rcode in (dns.rcode.REFUSED, dns.rcode.NOTAUTH):
            return Answer("refused", server=where)
        if rcode == dns.rcode.SERVFAIL:
            return Answer("servfail", server=where)
        if not self.recursive and not r.flags & dns.flags.AA:
            return Answer("lame", server=where)
        if rcode == dns.rcode.NXDOMAIN:
            return Answer("nxdomain", server=where)
        if rcode != dns.rcode.NOERROR:
            return Answer("error", server=where, detail=dns.rcode.to_text(rcode))
        wanted = dns.rdatatype.from_text(rdtype)
        for rrset in r.answer:  # a resolver may put a CNAME chain first
            if rrset.rdtype == wanted:
                values = tuple(sorted(_value(rd, rdtype) for rd in rrset))
                return Answer("ok", values, ttl=rrset.ttl, server=where)
        return Answer("nodata", server=where)


class FirstAnswer:
    """Several resolvers; the first that gives a usable answer (or says "no such record")
    wins. Used for the recursive look-ups (NS discovery, SPF includes)."""

    def __init__(self, resolvers: list[Resolver]) -> None:
        if not resolvers:
            raise ValueError("no resolver")
        self.resolvers = resolvers

    def query(self, name: str, rdtype: str) -> Answer:
        answer = Answer("error", detail="no resolver")
        for resolver in self.resolvers:
            answer = resolver.query(name, rdtype)
            if not answer.failed:
                return answer
        return answer


def system_resolvers() -> list[Address]:
    """The machine's recursive resolvers (``/etc/resolv.conf``), when none is configured."""
    try:
        found = dns.resolver.Resolver().nameservers
    except dns.exception.DNSException:
        return []
    return [Address(str(ns)) for ns in found]
