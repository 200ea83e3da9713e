"""``mxshift dns check`` against real DNS servers: two knotd serving the same test zones (the
second one can be left stale), an Unbound caching resolver in front of them, and fake
``outlook.com`` / ``google.com`` zones standing in for Microsoft's and Google's DNS so SPF
includes resolve offline (see :mod:`mxshift.testbed.unbound`). Each test takes a fresh zone
and writes its content."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mxshift.cli import app
from mxshift.dns import check as check_mod
from mxshift.dns.check import DomainReport
from mxshift.project import open_project
from mxshift.state.db import DB_FILE
from mxshift.testbed.unbound import LAME_ZONE, DnsTestbed

OLD_MX = "mail.oldhost.example"
SPF_M365 = "v=spf1 include:spf.protection.outlook.com -all"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MXSHIFT_DATABASE_URL", raising=False)


def tenant(domain: str) -> str:
    return domain.replace(".", "-") + ".mail.protection.outlook.com"


def zone(domain: str, serial: int, *, mx: tuple[str, ...] | None = None,
         txt: tuple[str, ...] = (SPF_M365,), autodiscover: bool = True, mx_ttl: int = 300,
         ns: tuple[str, ...] = ("ns1", "ns2"), extra: str = "") -> str:
    """An M365-ready zone unless told otherwise."""
    mx = mx if mx is not None else (f"0 {tenant(domain)}.",)
    lines = [f"$ORIGIN {domain}.", "$TTL 300",
             f"@ SOA ns1.dns.test. hostmaster.{domain}. {serial} 60 60 600 60"]
    lines += [f"@ NS {n}.dns.test." for n in ns]
    lines += [f"@ {mx_ttl} MX {m}" for m in mx]
    lines += [f'@ TXT "{t}"' for t in txt]
    if autodiscover:
        lines.append("autodiscover CNAME autodiscover.outlook.com.")
    lines += [f"selector{i}._domainkey CNAME selector{i}-x._domainkey.acme.onmicrosoft.com."
              for i in (1, 2)]
    lines.append('_dmarc TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.org"')
    return "\n".join(lines) + "\n" + extra


def project(directory: Path, testbed: DnsTestbed, *domains: str, provider: str = "m365",
            resolver: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    listed = ", ".join(f'"{d}"' for d in domains)
    ns = ", ".join(f'"{m}"' for m in testbed.ns_addresses)
    tenants = "".join(f'"{d}" = "{tenant(d)}"\n' for d in domains)
    (directory / "mxshift.toml").write_text(f"""[project]
name = "dns"
domains = [{listed}]
[source]
host = "imap.oldhost.example"
[destination]
host = "outlook.office365.com"
[dns]
provider = "{provider}"
resolvers = ["{resolver or testbed.resolver}"]
ns_addresses = [{ns}]
timeout = 0.5
[dns.m365_mx]
{tenants}""")
    return directory


def check(directory: Path, domain: str) -> DomainReport:
    proj = open_project(directory)
    try:
        [report] = check_mod.run(proj, [domain])
    finally:
        proj.close()
    return report


def by_record(report: DomainReport, record: str) -> list[tuple[str, str]]:
    return [(c.verdict, c.message) for c in report.checks if c.record == record]


def cli(directory: Path, *args: str) -> Result:
    result = CliRunner().invoke(app, ["-C", str(directory), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"unexpected {result.exception!r}\n{result.stdout}\n{result.stderr}")
    return result


# ---------------------------------------------------------------------------------------


def test_all_good(dns_testbed: DnsTestbed, tmp_path: Path) -> None:
    d = dns_testbed.new_zone()
    dns_testbed.publish(d, zone(d, 10))
    report = check(project(tmp_path, dns_testbed, d), d)
    verdicts = {c.record: c.verdict for c in report.checks}
    assert verdicts.pop("old MX expiry") == "warning"  # never saw the old MX: TTL assumed
    assert set(verdicts.values()) == {"ok"}, report.checks
    assert set(verdicts) >= {"MX", "SPF", "autodiscover", "DKIM selector1", "DKIM selector2",
                             "DMARC", "SOA serial", "MX propagation",
                             f"resolver {dns_testbed.resolver}"}
    assert by_record(report, "MX propagation") == [("ok", "new MX served by 2 of 2 nameservers")]
    assert report.mx_everywhere and report.old_answer_gone_after is not None


def test_stale_nameserver(dns_testbed: DnsTestbed, tmp_path: Path) -> None:
    d = dns_testbed.new_zone()
    dns_testbed.publish(d, zone(d, 20), stale_text=zone(d, 19, mx=(f"10 {OLD_MX}.",)))
    report = check(project(tmp_path, dns_testbed, d), d)
    assert report.verdict == "error"
    assert by_record(report, "MX") == [("ok", "MX points at Microsoft 365")]  # newest zone
    [(verdict, message)] = by_record(report, "MX propagation")
    assert verdict == "error"
    assert message == f"new MX served by 1 of 2 nameservers; ns2.dns.test: 10 {OLD_MX}"
    [(verdict, message)] = by_record(report, "SOA serial")
    assert verdict == "warning" and "ns2.dns.test has not loaded the latest zone" in message
    assert not report.mx_everywhere and report.old_mx_ttl == 300


def test_leftover_old_mx(dns_testbed: DnsTestbed, tmp_path: Path) -> None:
    d = dns_testbed.new_zone()
    dns_testbed.publish(d, zone(d, 10, mx=(f"0 {tenant(d)}.", f"10 {OLD_MX}.")))
    report = check(project(tmp_path, dns_testbed, d), d)
    assert by_record(report, "MX") == [
        ("error", f"MX still lists {OLD_MX} (priority 10): remove it")]
    assert report.verdict == "error"


def test_two_spf_records(dns_testbed: DnsTestbed, tmp_path: Path) -> None:
    d = dns_testbed.new_zone()
    dns_testbed.publish(d, zone(d, 10, txt=(SPF_M365, "v=spf1 mx a:mail.oldhost.example -all")))
    [(verdict, message)] = by_record(check(project(tmp_path, dns_testbed, d), d), "SPF")
    assert verdict == "error" and message.startswith("2 SPF records: merge them into one")


def test_spf_over_ten_lookups(dns_testbed: DnsTestbed, tmp_path: Path) -> None:
    d = dns_testbed.new_zone()
    parts = [f"include:p{i}.{d}" for i in range(4)]
    extra = "".join(f'p{i} TXT "v=spf1 a mx ~all"\n' for i in range(4))
    spf_text = f"v=spf1 include:spf.protection.outlook.com {' '.join(parts)} -all"
    dns_testbed.publish(d, zone(d, 10, txt=(spf_text,), extra=extra))
    [(verdict, message)] = by_record(check(project(tmp_path, dns_testbed, d), d), "SPF")
    assert verdict == "error"
    assert message == ("SPF needs 13 DNS lookups, more than the limit of 10: remove or "
                       "flatten includes")


def test_missing_autodiscover(dns_testbed: DnsTestbed, tmp_path: Path) -> None:
    d = dns_testbed.new_zone()
    dns_testbed.publish(d, zone(d, 10, autodiscover=False))
    report = check(project(tmp_path, dns_testbed, d), d)
    assert by_record(report, "autodiscover") == [
        ("error", f"no autodiscover CNAME: add autodiscover.{d} CNAME autodiscover.outlook.com")]


def test_mx_at_filtering_service(dns_testbed: DnsTestbed, tmp_path: Path) -> None:
    d = dns_testbed.new_zone()
    dns_testbed.publish(d, zone(d, 10, mx=("10 eu-smtp-inbound-1.mimecast.com.",)))
    report = check(project(tmp_path, dns_testbed, d), d)
    [(verdict, message)] = by_record(report, "MX")
    assert verdict == "warning"
    assert message == ("MX points at Mimecast (eu-smtp-inbound-1.mimecast.com), a filtering "
                       f"service: repoint its delivery to {tenant(d)} and keep its MX")
    assert report.verdict == "warning"


def test_high_mx_ttl_before_cutover(dns_testbed: DnsTestbed, tmp_path: Path) -> None:
    d = dns_testbed.new_zone()
    dns_testbed.publish(d, zone(d, 10, mx=(f"10 {OLD_MX}.",), mx_ttl=86400))
    report = check(project(tmp_path, dns_testbed, d), d)
    assert by_record(report, "MX TTL") == [
        ("warning", "MX TTL is 86400 s: lower it to 3600 s or less a day before the cutover")]


def test_resolver_caches_old_mx_until_its_ttl_runs_out(dns_testbed: DnsTestbed,
                                                       tmp_path: Path) -> None:
    d = dns_testbed.new_zone()
    directory = project(tmp_path, dns_testbed, d)
    dns_testbed.publish(d, zone(d, 10, mx=(f"10 {OLD_MX}.",), mx_ttl=2))
    before = check(directory, d)  # primes the resolver's cache and records the old TTL
    assert by_record(before, f"resolver {dns_testbed.resolver}")[0][0] == "warning"
    assert before.old_mx_ttl == 2 and not before.mx_everywhere

    dns_testbed.publish(d, zone(d, 11))
    first = check(directory, d)
    assert by_record(first, "MX propagation") == [("ok", "new MX served by 2 of 2 nameservers")]
    [(verdict, message)] = by_record(first, f"resolver {dns_testbed.resolver}")
    assert verdict == "warning" and f"still returns the old MX (10 {OLD_MX})" in message
    assert first.mx_everywhere_since is not None and first.old_mx_ttl == 2
    assert first.old_answer_gone_after is not None
    assert (first.old_answer_gone_after - first.mx_everywhere_since).total_seconds() == 2

    deadline = time.monotonic() + 8  # TTL 2 s; Unbound may serve it at TTL 0 a little longer
    while True:
        later = check(directory, d)
        if by_record(later, f"resolver {dns_testbed.resolver}")[0][0] == "ok":
            break
        assert time.monotonic() < deadline, later.checks
        time.sleep(0.3)
    assert later.mx_everywhere_since == first.mx_everywhere_since  # first seen, carried on
    assert by_record(later, "old MX expiry")[0][0] == "ok"


def test_nameserver_not_answering_and_lame(dns_testbed: DnsTestbed, tmp_path: Path) -> None:
    d = LAME_ZONE  # served by knot-a only: knot-b refuses it; ns3 maps to a silent address
    dns_testbed.publish(d, zone(d, 10, ns=("ns1", "ns2", "ns3")))
    report = check(project(tmp_path, dns_testbed, d), d)
    messages = {c.message.split()[1]: c for c in report.checks if c.record == "nameservers"}
    assert "lame delegation" in messages["ns2.dns.test"].message
    assert "did not answer" in messages["ns3.dns.test"].message
    assert dns_testbed.dead_address in messages["ns3.dns.test"].message
    assert by_record(report, "MX propagation")[0][1].startswith(
        "new MX served by 1 of 3 nameservers")
    assert report.verdict == "error"


def test_cli_json_exit_codes_and_stored_checks(dns_testbed: DnsTestbed, tmp_path: Path) -> None:
    good, bad = dns_testbed.new_zone(), dns_testbed.new_zone()
    dns_testbed.publish(good, zone(good, 10))
    dns_testbed.publish(bad, zone(bad, 10, autodiscover=False))
    directory = project(tmp_path, dns_testbed, good, bad)

    result = cli(directory, "dns", "check", good, "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    [obj] = json.loads(result.stdout)
    assert obj["domain"] == good and obj["verdict"] in ("ok", "warning")
    for c in obj["checks"]:
        assert set(c) == {"record", "verdict", "found", "expected", "message"}
        assert c["verdict"] in ("ok", "warning", "error")

    result = cli(directory, "dns", "check", "--json")  # the project's domains
    assert result.exit_code == 1
    assert [o["domain"] for o in json.loads(result.stdout)] == [good, bad]

    result = cli(directory, "dns", "check", bad)
    assert result.exit_code == 1 and f"{bad}: error (m365)" in result.stdout
    assert "autodiscover" in result.stdout  # the table wraps long messages

    with sqlite3.connect(directory / DB_FILE) as db:
        rows = db.execute("SELECT domain, verdict, checked_at, details FROM dns_check "
                          "ORDER BY id").fetchall()
    assert [(r[0], r[1]) for r in rows] == [(good, "warning"), (good, "warning"),
                                            (bad, "error"), (bad, "error")]
    assert all(r[2] for r in rows) and json.loads(rows[0][3])["domain"] == good


def test_cli_dead_resolver_and_bad_option(dns_testbed: DnsTestbed, tmp_path: Path) -> None:
    d = dns_testbed.new_zone()
    directory = project(tmp_path, dns_testbed, d, resolver=dns_testbed.dead_address)
    result = cli(directory, "dns", "check", "--json")
    assert result.exit_code == 1
    [obj] = json.loads(result.stdout)
    assert any(c["record"] == "nameservers" and "cannot find the nameservers" in c["message"]
               for c in obj["checks"])
    result = cli(directory, "dns", "check", "--ns-address", "ns1.dns.test")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "NAME=IP[:PORT]" in result.stderr


def test_google_profile(dns_testbed: DnsTestbed, tmp_path: Path) -> None:
    d = dns_testbed.new_zone()
    dns_testbed.publish(d, zone(d, 10, mx=("1 smtp.google.com.",), autodiscover=False,
                                txt=("v=spf1 include:_spf.google.com ~all",),
                                extra='google._domainkey TXT "v=DKIM1; k=rsa; p=MIIBIjAN"\n'))
    report = check(project(tmp_path, dns_testbed, d, provider="google"), d)
    bad = [c for c in report.checks if c.verdict == "error"]
    assert not bad
    assert by_record(report, "SPF") == [("ok", "one SPF record; 3 of 10 DNS lookups")]
    assert by_record(report, "DKIM google")[0][0] == "ok"
