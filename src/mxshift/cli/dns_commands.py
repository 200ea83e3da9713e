"""``mxshift dns check``: DNS cutover readiness (issue 5). Thin: open the project, call
:func:`mxshift.dns.check.run`, print; domain errors become one line."""

from __future__ import annotations

import json

import typer

from mxshift.cli import app, escape, out
from mxshift.cli.commands import opened

# dnspython is imported by `dns check` only (through mxshift.dns.check), not by every
# mxshift process: see cli/commands.py.

dns_app = typer.Typer(help="Check DNS records and their propagation for the cutover.",
                      no_args_is_help=True)
app.add_typer(dns_app, name="dns")

_STYLE = {"ok": "green", "warning": "yellow", "error": "red"}


@dns_app.command("check")
def check(
    domains: list[str] | None = typer.Argument(None, help="Domains (default: the "
                                                  "domains listed in mxshift.toml)."),
    provider: str | None = typer.Option(None, "--provider",
                                           help="m365, google or custom (default: the dns "
                                                "provider in mxshift.toml)."),
    resolver: list[str] | None = typer.Option(None, "--resolver", metavar="IP[:PORT]",
                                                 help="Recursive resolver to ask; repeatable."),
    ns_address: list[str] | None = typer.Option(None, "--ns-address",
                                                   metavar="NAME=IP[:PORT]",
                                                   help="Where to query an authoritative "
                                                        "nameserver; repeatable."),
    timeout: float | None = typer.Option(None, "--timeout", min=0.1,
                                            help="Seconds to wait for each DNS answer."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Check MX, SPF, Autodiscover, DKIM and DMARC for the target provider and whether the
    change has reached every nameserver; exit 1 if anything is an error."""
    from rich.table import Table

    from mxshift.dns import check as check_mod

    with opened() as proj:
        reports = check_mod.run(proj, domains, provider=provider, resolvers=resolver,
                                ns_addresses=ns_address, timeout=timeout)
    if as_json:
        out.print_json(json.dumps([r.as_json() for r in reports]))
    else:
        for r in reports:
            t = Table(title=f"{r.domain}: {r.verdict} ({r.provider})")
            for col in ("record", "verdict", "found", "message"):
                t.add_column(col, overflow="fold")
            for c in r.checks:
                t.add_row(escape(c.record), f"[{_STYLE[c.verdict]}]{c.verdict}",
                          escape(c.found or ""), escape(c.message))
            out.print(t)
    if any(r.verdict == "error" for r in reports):
        raise typer.Exit(1)
