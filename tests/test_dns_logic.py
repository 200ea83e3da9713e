"""DNS cutover check, the pure parts: SPF parsing and look-up counting, profile evaluation,
address parsing and the ``[dns]`` table of mxshift.toml. No server involved."""

from __future__ import annotations

from pathlib import Path

import pytest

from mxshift.config import DnsSettings, parse_project
from mxshift.dns import spf
from mxshift.dns.addresses import Address, parse_mapping
from mxshift.dns.filters import find_filter, parse_filter
from mxshift.dns.model import worst
from mxshift.dns.profiles import (
    ProfileError,
    evaluate_autodiscover,
    evaluate_dmarc,
    evaluate_mx,
    evaluate_spf,
    make_profile,
    mx_is_new,
    parse_dmarc,
)
from mxshift.dns.records import Answer, Mx
from mxshift.errors import ConfigError

TENANT = "acme-example.mail.protection.outlook.com"
M365 = make_profile("m365", "acme.example", m365_mx={"acme.example": TENANT})


def mx(*pairs: tuple[int, str], ttl: int = 300) -> Answer:
    return Answer("ok", tuple(sorted(Mx(p, h) for p, h in pairs)), ttl=ttl)


def txt(*records: str) -> Answer:
    return Answer("ok", tuple(records), ttl=300)


# -- SPF -------------------------------------------------------------------------------------


def fetcher(records: dict[str, list[str]]) -> spf.Fetch:
    def fetch(name: str) -> list[str]:
        if name not in records:
            raise spf.LookupFailed("the name does not exist (NXDOMAIN)")
        return records[name]
    return fetch


def test_spf_parse_and_includes() -> None:
    record = "v=spf1 ip4:192.0.2.0/24 include:spf.protection.outlook.com ~all"
    assert spf.is_spf(record) and not spf.is_spf("v=spf10") and not spf.is_spf("google-site")
    assert spf.includes(record) == ["spf.protection.outlook.com"]
    with pytest.raises(spf.SpfSyntaxError):
        spf.parse("v=spf1 incldue:x.example -all")


def test_spf_lookups_counted_recursively() -> None:
    world = {"a.example": ["v=spf1 include:b.example mx -all"],
             "b.example": ["v=spf1 a ptr exists:%{i}.x.example ip4:192.0.2.1 -all"]}
    # include a (1) + [include b (1) + mx (1)] + [a, ptr, exists (3)] + a (1) = 7
    count = spf.count_lookups("v=spf1 include:a.example a -all", fetcher(world))
    assert (count.lookups, count.problems, count.over_limit) == (7, [], False)


def test_spf_redirect_counts_and_is_ignored_with_all() -> None:
    world = {"r.example": ["v=spf1 mx -all"]}
    assert spf.count_lookups("v=spf1 redirect=r.example", fetcher(world)).lookups == 2
    assert spf.count_lookups("v=spf1 -all redirect=r.example", fetcher(world)).lookups == 0


def test_spf_over_the_limit_and_problems() -> None:
    world = {f"i{n}.example": ["v=spf1 a mx ~all"] for n in range(4)}
    world["loop.example"] = ["v=spf1 include:loop.example -all"]
    record = " ".join(["v=spf1"] + [f"include:i{n}.example" for n in range(4)]
                      + ["include:gone.example", "include:loop.example", "-all"])
    count = spf.count_lookups(record, fetcher(world), domain="acme.example")
    assert count.lookups == 4 * 3 + 1 + 1 + 1  # the loop is followed once
    assert count.over_limit
    assert any("gone.example" in p and "NXDOMAIN" in p for p in count.problems)
    assert any("loop" in p for p in count.problems)


# -- profiles --------------------------------------------------------------------------------


def test_m365_mx_exact_tenant_host() -> None:
    [check] = evaluate_mx(M365, "acme.example", mx((0, TENANT)))
    assert check.verdict == "ok"
    checks = evaluate_mx(M365, "acme.example", mx((0, TENANT), (10, "mail.oldhost.example")))
    assert [c.message for c in checks] == [
        "MX still lists mail.oldhost.example (priority 10): remove it"]
    assert checks[0].verdict == "error" and checks[0].expected == TENANT
    assert not mx_is_new(M365, "acme.example", mx((0, TENANT), (10, "mail.oldhost.example")))


def test_m365_without_tenant_host_accepts_lookalikes_with_a_warning() -> None:
    profile = make_profile("m365", "acme.example")
    [check] = evaluate_mx(profile, "acme.example", mx((0, "acme-example.mx.microsoft")))
    assert check.verdict == "warning" and "looks like Microsoft 365" in check.message
    checks = evaluate_mx(profile, "acme.example", mx((10, "mail.oldhost.example")))
    assert worst(checks) == "error"
    assert "MX does not point at Microsoft 365" in checks[-1].message


def test_filtering_service_is_a_reminder_not_an_error() -> None:
    [check] = evaluate_mx(M365, "acme.example", mx((10, "eu-smtp-inbound-1.mimecast.com")))
    assert check.verdict == "warning"
    assert "Mimecast" in check.message and f"repoint its delivery to {TENANT}" in check.message
    extra = (parse_filter("Acme Filter=*.filter.acme.example"),)
    custom = make_profile("m365", "acme.example", m365_mx={"acme.example": TENANT},
                          filters=extra)
    [check] = evaluate_mx(custom, "acme.example", mx((5, "in.filter.acme.example")))
    assert "Acme Filter" in check.message
    assert find_filter("mx1.example.com") is None


def test_google_profile_accepts_new_and_legacy_mx() -> None:
    google = make_profile("google", "acme.example")
    assert worst(evaluate_mx(google, "acme.example", mx((1, "smtp.google.com")))) == "ok"
    legacy = mx((1, "aspmx.l.google.com"), (5, "alt1.aspmx.l.google.com"),
                (10, "aspmx2.googlemail.com"))
    assert worst(evaluate_mx(google, "acme.example", legacy)) == "ok"


def test_custom_profile_needs_mx_hosts() -> None:
    with pytest.raises(ProfileError, match=r"\[dns\] mx"):
        make_profile("custom", "acme.example")
    with pytest.raises(ProfileError, match="unknown provider"):
        make_profile("exchange", "acme.example")


def test_spf_evaluation() -> None:
    good = "v=spf1 include:spf.protection.outlook.com -all"
    [check] = evaluate_spf(M365, "acme.example", txt(good, "MS=ms123"),
                           spf.LookupCount(lookups=1))
    assert check.verdict == "ok" and check.found == good and "1 of 10" in check.message
    [check] = evaluate_spf(M365, "acme.example", txt(good, "v=spf1 mx -all"), None)
    assert check.verdict == "error" and check.message.startswith("2 SPF records: merge them")
    [check] = evaluate_spf(M365, "acme.example", txt("v=spf1 mx -all"), spf.LookupCount(1))
    assert check.message == "SPF lacks include:spf.protection.outlook.com: add it"
    [check] = evaluate_spf(M365, "acme.example", txt(good), spf.LookupCount(lookups=11))
    assert "SPF needs 11 DNS lookups, more than the limit of 10" in check.message
    [check] = evaluate_spf(M365, "acme.example", Answer("nxdomain"), None)
    assert check.verdict == "error" and "no SPF record" in check.message
    [check] = evaluate_spf(M365, "acme.example", Answer("timeout", detail="nothing"), None)
    assert check.verdict == "error" and "could not look up" in check.message


def test_autodiscover_and_dmarc() -> None:
    [c] = evaluate_autodiscover(M365, "acme.example", Answer("ok", ("autodiscover.outlook.com",)))
    assert c.verdict == "ok"
    [c] = evaluate_autodiscover(M365, "acme.example", Answer("nxdomain"))
    assert c.message == ("no autodiscover CNAME: add autodiscover.acme.example CNAME "
                         "autodiscover.outlook.com")
    assert parse_dmarc("v=DMARC1; p=reject; rua=mailto:d@acme.example")["p"] == "reject"
    [c] = evaluate_dmarc(M365, "acme.example", txt("v=DMARC1; rua=mailto:d@acme.example"))
    assert c.verdict == "error" and "p=" in c.message
    [c] = evaluate_dmarc(M365, "acme.example", Answer("nodata"))
    assert c.verdict == "error" and "no DMARC record" in c.message


# -- addresses and the project file ----------------------------------------------------------


def test_addresses() -> None:
    assert Address.parse("127.0.0.1:5353") == Address("127.0.0.1", 5353)
    assert Address.parse("192.0.2.53") == Address("192.0.2.53", 53)
    assert Address.parse("[::1]:5353") == Address("::1", 5353)
    assert str(Address("::1", 5353)) == "[::1]:5353"
    assert parse_mapping("NS1.Example.com.=192.0.2.1:5300") == ("ns1.example.com",
                                                                Address("192.0.2.1", 5300))
    for bad in ("ns1.example.com", "resolver.example", "127.0.0.1:x", "127.0.0.1:70000"):
        with pytest.raises(ValueError):
            Address.parse(bad) if "=" not in bad and "ns1" not in bad else parse_mapping(bad)


BASE = """[project]
name = "acme"
domains = ["acme.example"]
[source]
host = "imap.old.example"
[destination]
host = "outlook.office365.com"
"""


def test_config_dns_table() -> None:
    config = parse_project(BASE, path="mxshift.toml", directory=Path("/p"))
    assert config.dns == DnsSettings()
    config = parse_project(BASE + """[dns]
provider = "m365"
resolvers = ["127.0.0.1:5353"]
ns_addresses = ["ns1.acme.example=192.0.2.1"]
filters = ["Acme=*.filter.example"]
timeout = 1.5
[dns.m365_mx]
"acme.example" = "acme-example.mail.protection.outlook.com"
""", path="mxshift.toml", directory=Path("/p"))
    assert config.dns == DnsSettings(
        provider="m365", m365_mx=(("acme.example", "acme-example.mail.protection.outlook.com"),),
        resolvers=("127.0.0.1:5353",), ns_addresses=("ns1.acme.example=192.0.2.1",),
        filters=("Acme=*.filter.example",), timeout=1.5)


@pytest.mark.parametrize("table, error", [
    ('provider = "exchange"', "dns.provider must be one of"),
    ('resolvers = ["dns.example"]', "mxshift.toml:9: dns.resolvers entry 'dns.example' is not"),
    ('ns_addresses = ["192.0.2.1"]', "dns.ns_addresses entry"),
    ('resolver = ["192.0.2.1"]', "did you mean resolvers?"),
])
def test_config_dns_errors(table: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error.replace("?", r"\?").replace(".", r"\.")):
        parse_project(BASE + "[dns]\n" + table + "\n", path="mxshift.toml", directory=Path("/p"))
