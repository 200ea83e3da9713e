"""``mxshift dns check``: one :class:`DomainReport` per domain, stored in the state database.

For each domain: find the authoritative nameservers (through the recursive resolvers), ask
each one directly (:mod:`~mxshift.dns.propagation`), evaluate the records of the newest zone
against the provider profile (:mod:`~mxshift.dns.profiles`), count SPF look-ups through the
recursive resolvers, and show what each recursive resolver returns for the MX now.

:func:`check_domain` does no database work (``prior`` is the previous row's summary);
:func:`run` merges the project file with command-line overrides, runs and stores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from mxshift.config import DnsSettings
from mxshift.dns import propagation, spf
from mxshift.dns.addresses import Address, parse_mapping
from mxshift.dns.filters import parse_filter
from mxshift.dns.model import Check, Verdict, worst
from mxshift.dns.profiles import (
    Profile,
    ProfileError,
    evaluate_autodiscover,
    evaluate_dkim,
    evaluate_dmarc,
    evaluate_mx,
    evaluate_spf,
    make_profile,
    mx_is_new,
    spf_records,
)
from mxshift.dns.records import Answer, FirstAnswer, Resolver, Server, system_resolvers
from mxshift.errors import MxshiftError
from mxshift.project import OpenProject
from mxshift.state.dns_models import DnsCheck

MX_TTL_BEFORE_CUTOVER = 3600


@dataclass(frozen=True)
class CheckOptions:
    provider: str
    resolvers: tuple[Address, ...] = ()  # empty: the system's (/etc/resolv.conf)
    ns_addresses: dict[str, Address] = field(default_factory=dict)
    timeout: float = 2.0
    settings: DnsSettings = DnsSettings()

    def profile(self, domain: str) -> Profile:
        return make_profile(self.provider, domain, m365_mx=dict(self.settings.m365_mx),
                            mx=self.settings.mx, spf_includes=self.settings.spf_includes,
                            filters=tuple(parse_filter(f) for f in self.settings.filters))


@dataclass(frozen=True)
class PriorState:
    """The previous check of the same domain, as far as timing needs it."""

    mx_hosts: str
    mx_everywhere: bool
    mx_everywhere_since: datetime | None
    old_mx_ttl: int | None


@dataclass
class DomainReport:
    domain: str
    provider: str
    checked_at: datetime
    checks: list[Check]
    nameservers: list[propagation.NsResult] = field(default_factory=list)
    mx_hosts: str = ""
    mx_ttl: int | None = None
    mx_everywhere: bool = False
    mx_everywhere_since: datetime | None = None
    old_mx_ttl: int | None = None
    old_answer_gone_after: datetime | None = None

    @property
    def verdict(self) -> Verdict:
        return worst(self.checks)

    def as_json(self) -> dict[str, Any]:
        def when(d: datetime | None) -> str | None:
            return d.isoformat() if d else None
        return {
            "domain": self.domain,
            "provider": self.provider,
            "checked_at": when(self.checked_at),
            "verdict": self.verdict,
            "checks": [c.as_json() for c in self.checks],
            "nameservers": [{"name": r.name, "address": str(r.address) if r.address else None,
                             "status": r.soa.status, "serial": r.serial,
                             "mx": [str(m) for m in r.mx.values] if r.mx and r.mx.ok else None}
                            for r in self.nameservers],
            "propagation": {"mx_everywhere": self.mx_everywhere,
                            "mx_everywhere_since": when(self.mx_everywhere_since),
                            "old_mx_ttl": self.old_mx_ttl,
                            "old_answer_gone_after": when(self.old_answer_gone_after)},
        }


def _fetcher(resolver: Resolver) -> spf.Fetch:
    def fetch(name: str) -> list[str]:
        answer = resolver.query(name, "TXT")
        if not answer.ok:
            raise spf.LookupFailed(answer.describe())
        return list(answer.values)
    return fetch


def check_domain(domain: str, opts: CheckOptions, *, prior: PriorState | None = None,
                 now: datetime | None = None) -> DomainReport:
    """Check one domain. Network trouble becomes verdicts, never exceptions."""
    now = now or datetime.now(UTC)
    profile = opts.profile(domain)
    addresses = list(opts.resolvers) or system_resolvers()
    if not addresses:
        raise MxshiftError("no recursive resolver: pass --resolver IP[:PORT] or set "
                           "[dns] resolvers in mxshift.toml")
    recursive = [Server(a, timeout=opts.timeout) for a in addresses]
    look = FirstAnswer(list(recursive))

    def authoritative(address: Address) -> Resolver:
        return Server(address, recursive=False, timeout=opts.timeout)

    checks: list[Check] = []
    names, ns_answer = propagation.discover(domain, look)
    if not names:
        why = ns_answer.describe() if not ns_answer.ok else "no NS records"
        checks.append(Check("nameservers", "error", None, "NS records",
                            f"cannot find the nameservers of {domain}: {why}"))
    results = propagation.poll(domain, names, mapping=opts.ns_addresses, resolver=look,
                               make_server=authoritative)
    top = propagation.newest(results)
    # The records are judged as the newest zone has them; with no nameserver answering,
    # as the resolvers see them.
    zone: Resolver = authoritative(top.address) if top and top.address else look
    mx = top.mx if top and top.mx else zone.query(domain, "MX")
    txt = top.txt if top and top.txt else zone.query(domain, "TXT")

    def is_new(answer: Answer) -> bool:
        return mx_is_new(profile, domain, answer)

    checks += evaluate_mx(profile, domain, mx)
    if mx.ok and not is_new(mx):
        if mx.ttl is not None and mx.ttl > MX_TTL_BEFORE_CUTOVER:
            checks.append(Check("MX TTL", "warning", f"{mx.ttl} s",
                                f"{MX_TTL_BEFORE_CUTOVER} s or less",
                                f"MX TTL is {mx.ttl} s: lower it to {MX_TTL_BEFORE_CUTOVER} s "
                                f"or less a day before the cutover"))
        else:
            checks.append(Check("MX TTL", "ok", f"{mx.ttl} s", f"{MX_TTL_BEFORE_CUTOVER} s "
                                "or less", f"MX TTL is {mx.ttl} s: short enough for the cutover"))
    records = spf_records(txt)
    count = (spf.count_lookups(records[0], _fetcher(look), domain=domain)
             if len(records) == 1 else None)
    checks += evaluate_spf(profile, domain, txt, count)
    if profile.autodiscover:
        checks += evaluate_autodiscover(profile, domain,
                                        zone.query(f"autodiscover.{domain}", "CNAME"))
    for selector in profile.dkim_cnames:
        checks += evaluate_dkim(profile, domain, selector,
                                zone.query(f"{selector}._domainkey.{domain}", "CNAME"), "CNAME")
    for selector in profile.dkim_txt:
        checks += evaluate_dkim(profile, domain, selector,
                                zone.query(f"{selector}._domainkey.{domain}", "TXT"), "TXT")
    checks += evaluate_dmarc(profile, domain, zone.query(f"_dmarc.{domain}", "TXT"))
    checks += propagation.evaluate(domain, results, mx_is_new=is_new, spf_of=spf_records)
    checks += propagation.evaluate_resolvers(
        domain, [(str(r.address), r.query(domain, "MX")) for r in recursive], mx_is_new=is_new)

    report = DomainReport(domain, profile.name, now, checks, results,
                          mx_hosts=", ".join(str(m) for m in mx.values) if mx.ok else "",
                          mx_ttl=mx.ttl if mx.ok else None)
    _timing(report, results, is_new, prior, now)
    return report


def _timing(report: DomainReport, results: list[propagation.NsResult], is_new: Any,
            prior: PriorState | None, now: datetime) -> None:
    """When the new MX was first seen everywhere, and when the old answer is gone."""
    old_ttls = [r.mx.ttl for r in results if r.answering and r.mx and r.mx.ok
                and not is_new(r.mx) and r.mx.ttl is not None]
    everywhere = bool(results) and all(r.answering and r.mx is not None and is_new(r.mx)
                                       for r in results)
    report.mx_everywhere = everywhere
    if not everywhere:
        report.old_mx_ttl = max(old_ttls, default=None) or (prior.old_mx_ttl if prior else None)
        return
    assumed = False
    if prior and prior.mx_everywhere and prior.mx_hosts == report.mx_hosts \
            and prior.mx_everywhere_since:
        report.mx_everywhere_since = prior.mx_everywhere_since
        report.old_mx_ttl = prior.old_mx_ttl
    else:
        report.mx_everywhere_since = now
        report.old_mx_ttl = prior.old_mx_ttl if prior else None
    if report.old_mx_ttl is None:  # never saw the old MX: assume its TTL was today's
        report.old_mx_ttl, assumed = report.mx_ttl or 0, True
    since = report.mx_everywhere_since
    gone = propagation.old_answer_gone_after(since, report.old_mx_ttl)
    report.old_answer_gone_after = gone
    text = (f"new MX on every nameserver since {since:%Y-%m-%d %H:%M:%S} UTC; with the old "
            f"MX TTL of {report.old_mx_ttl} s" + (" (assumed: the old MX was never seen)"
                                                   if assumed else ""))
    if now < gone:
        report.checks.append(Check("old MX expiry", "warning", since.isoformat(), gone.isoformat(),
                                   f"{text}, resolvers may serve the old MX until "
                                   f"{gone:%Y-%m-%d %H:%M:%S} UTC"))
    else:
        report.checks.append(Check("old MX expiry", "ok", since.isoformat(), gone.isoformat(),
                                   f"{text}, no well-behaved resolver holds the old MX since "
                                   f"{gone:%Y-%m-%d %H:%M:%S} UTC"))


# -- with the project: settings, history, storage ------------------------------------------


def options_for(settings: DnsSettings, *, provider: str | None = None,
                resolvers: list[str] | None = None, ns_addresses: list[str] | None = None,
                timeout: float | None = None) -> CheckOptions:
    """Project settings with command-line overrides (resolvers replace, mappings add)."""
    chosen = provider or settings.provider
    if chosen is None:
        raise ProfileError("which provider? pass --provider m365|google|custom or set "
                           "[dns] provider in mxshift.toml")
    try:
        addrs = tuple(Address.parse(a) for a in (resolvers or settings.resolvers))
        mapping = dict(parse_mapping(m) for m in (*settings.ns_addresses, *(ns_addresses or ())))
    except ValueError as exc:
        raise MxshiftError(str(exc)) from None
    return CheckOptions(chosen, addrs, mapping, timeout or settings.timeout, settings)


def _aware(d: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; they were stored in UTC
    return d.replace(tzinfo=UTC) if d is not None and d.tzinfo is None else d


def latest(proj: OpenProject, domain: str) -> DnsCheck | None:
    with proj.db.session() as s:
        row = s.scalar(select(DnsCheck).where(DnsCheck.project_id == proj.project_id,
                                              DnsCheck.domain == domain)
                       .order_by(DnsCheck.checked_at.desc(), DnsCheck.id.desc()).limit(1))
    if row is not None:
        for name in ("checked_at", "mx_everywhere_since", "old_answer_gone_after"):
            setattr(row, name, _aware(getattr(row, name)))
    return row


def run(proj: OpenProject, domains: list[str] | None, *, provider: str | None = None,
        resolvers: list[str] | None = None, ns_addresses: list[str] | None = None,
        timeout: float | None = None) -> list[DomainReport]:
    """Check ``domains`` (default: the project's), store each result, return them."""
    domains = [d.strip().lower().rstrip(".") for d in domains or proj.config.domains]
    if not domains:
        raise MxshiftError("no domain to check: name one, or set [project] domains in "
                           "mxshift.toml")
    opts = options_for(proj.config.dns, provider=provider, resolvers=resolvers,
                       ns_addresses=ns_addresses, timeout=timeout)
    reports = []
    for domain in domains:
        row = latest(proj, domain)
        prior = PriorState(row.mx_hosts, row.mx_everywhere, row.mx_everywhere_since,
                           row.old_mx_ttl) if row else None
        report = check_domain(domain, opts, prior=prior)
        with proj.db.session() as s, s.begin():
            s.add(DnsCheck(project_id=proj.project_id, domain=domain,
                           checked_at=report.checked_at, provider=report.provider,
                           verdict=report.verdict, mx_hosts=report.mx_hosts,
                           mx_ttl=report.mx_ttl, mx_everywhere=report.mx_everywhere,
                           mx_everywhere_since=report.mx_everywhere_since,
                           old_mx_ttl=report.old_mx_ttl,
                           old_answer_gone_after=report.old_answer_gone_after,
                           details=json.dumps(report.as_json())))
        reports.append(report)
    return reports
