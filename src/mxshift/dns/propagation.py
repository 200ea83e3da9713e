"""Has the change reached every authoritative nameserver, and every resolver?

The zone's nameservers are found through a recursive resolver (NS records), then each one is
asked *directly and non-recursively* for SOA, MX and TXT, so a stale secondary or a lame
delegation shows up by name: "new MX served by 2 of 3 nameservers". A nameserver's name is
mapped to the address to query by ``--ns-address NAME=IP[:PORT]`` (split horizon, tests);
otherwise its A record is looked up and port 53 used.

Once the new MX is on every nameserver, a well-behaved resolver can hold the old answer for
at most the old MX TTL: :func:`old_answer_gone_after` gives that moment.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from mxshift.dns.addresses import Address
from mxshift.dns.model import Check
from mxshift.dns.records import Answer, Resolver

MakeServer = Callable[[Address], Resolver]  # an authoritative server asked non-recursively


@dataclass(frozen=True)
class NsResult:
    """What one authoritative nameserver said. ``soa`` failing means nothing else was asked."""

    name: str
    address: Address | None
    soa: Answer
    mx: Answer | None = None
    txt: Answer | None = None

    @property
    def answering(self) -> bool:
        return self.soa.ok

    @property
    def serial(self) -> int | None:
        return self.soa.values[0] if self.soa.ok and self.soa.values else None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.address})" if self.address else self.name


def discover(domain: str, resolver: Resolver) -> tuple[list[str], Answer]:
    """The zone's nameserver names (sorted), and the NS answer they came from."""
    answer = resolver.query(domain, "NS")
    return sorted(answer.values) if answer.ok else [], answer


def _address(name: str, mapping: dict[str, Address], resolver: Resolver) -> Address | Answer:
    if name in mapping:
        return mapping[name]
    answer = resolver.query(name, "A")
    return Address(answer.values[0]) if answer.ok and answer.values else answer


def poll(domain: str, names: list[str], *, mapping: dict[str, Address], resolver: Resolver,
         make_server: MakeServer) -> list[NsResult]:
    """Ask every nameserver, in parallel (a dead one costs one timeout, not one each)."""

    def one(name: str) -> NsResult:
        where = _address(name, mapping, resolver)
        if isinstance(where, Answer):
            return NsResult(name, None, Answer(where.status if where.failed else "error",
                                               detail=f"its address: {where.describe()}"))
        server = make_server(where)
        soa = server.query(domain, "SOA")
        if not soa.ok:
            return NsResult(name, where, soa)
        return NsResult(name, where, soa, server.query(domain, "MX"),
                        server.query(domain, "TXT"))

    if not names:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
        return list(pool.map(one, names))


def newest(results: list[NsResult]) -> NsResult | None:
    """The answering nameserver with the highest SOA serial: the zone as last published."""
    answering = [r for r in results if r.answering]
    return max(answering, key=lambda r: r.serial or 0, default=None)


def evaluate(domain: str, results: list[NsResult], *, mx_is_new: Callable[[Answer], bool],
             spf_of: Callable[[Answer], list[str]]) -> list[Check]:
    checks: list[Check] = []
    for r in results:
        if not r.answering:
            what = ("is not authoritative for " + domain + " (lame delegation): fix the "
                    "delegation or load the zone there") if r.soa.status in ("lame", "refused") \
                else f"did not answer for {domain}: {r.soa.describe()}"
            checks.append(Check("nameservers", "error", r.soa.status, "an authoritative answer",
                                f"nameserver {r.label} {what}"))
    answering = [r for r in results if r.answering]
    if not answering:
        return checks
    serials = {r.serial for r in answering}
    found = ", ".join(f"{r.name} {r.serial}" for r in answering)
    if len(serials) > 1:
        top = max(s or 0 for s in serials)
        behind = [r.name for r in answering if r.serial != top]
        checks.append(Check("SOA serial", "warning", found, f"{top} everywhere",
                            f"SOA serials differ: {', '.join(behind)} has not loaded the "
                            f"latest zone (serial {top})"))
    else:
        checks.append(Check("SOA serial", "ok", found, None,
                            f"all {len(answering)} answering nameservers have serial "
                            f"{serials.pop()}"))
    new = [r for r in answering if r.mx is not None and mx_is_new(r.mx)]
    old = [r for r in answering if r not in new]
    total = len(results)
    summary = f"new MX served by {len(new)} of {total} nameservers"
    if old or len(answering) < total:
        stale = "; ".join(f"{r.name}: {_mx_text(r.mx)}" for r in old)
        checks.append(Check("MX propagation", "error", stale or None, f"all {total}",
                            summary + (f"; {stale}" if stale else "")))
    else:
        checks.append(Check("MX propagation", "ok", None, f"all {total}", summary))
    spf_sets = {r.name: tuple(spf_of(r.txt)) for r in answering if r.txt is not None}
    if len(set(spf_sets.values())) > 1:
        top = newest(answering)
        want = spf_sets.get(top.name) if top else None
        differ = [n for n, v in spf_sets.items() if v != want]
        checks.append(Check("SPF propagation", "warning", ", ".join(differ),
                            " | ".join(want or ()),
                            f"SPF differs on {', '.join(differ)} from the latest zone"))
    return checks


def _mx_text(answer: Answer | None) -> str:
    if answer is None or not answer.ok:
        return answer.describe() if answer else "not asked"
    return ", ".join(str(m) for m in answer.values) or "no MX"


def evaluate_resolvers(domain: str, answers: list[tuple[str, Answer]], *,
                       mx_is_new: Callable[[Answer], bool]) -> list[Check]:
    """What each recursive resolver returns for the MX right now (TTL counts down)."""
    checks = []
    for label, answer in answers:
        record = f"resolver {label}"
        if answer.failed:
            checks.append(Check(record, "warning", None, "the new MX",
                                f"resolver {label} gave no MX for {domain}: "
                                f"{answer.describe()}"))
        elif mx_is_new(answer):
            checks.append(Check(record, "ok", _mx_text(answer), "the new MX",
                                f"resolver {label} returns the new MX"))
        else:
            checks.append(Check(record, "warning", _mx_text(answer), "the new MX",
                                f"resolver {label} still returns the old MX "
                                f"({_mx_text(answer)}) for up to {answer.ttl} s more"))
    return checks


def old_answer_gone_after(first_everywhere: datetime, old_ttl: int) -> datetime:
    """After this moment no well-behaved resolver can still hold the old MX answer."""
    return first_everywhere + timedelta(seconds=old_ttl)
