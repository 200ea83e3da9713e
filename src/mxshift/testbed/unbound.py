"""A real Unbound caching resolver on loopback, and :class:`DnsTestbed`: two Knot DNS
authoritative servers for the same test zones plus an Unbound in front of them.

Unbound facts from ``/work/shared/notes/dns-testbed.md``: it needs
``do-not-query-localhost: no``, ``module-config: "iterator"`` and ``local-zone: "test."
nodefault`` here; it caches answers and counts their TTL down (it may serve an answer with
TTL 0 for a second or two after expiry); ``unbound-control flush_zone`` empties the cache.

The testbed's ``outlook.com`` and ``google.com`` zones are **fakes** standing in for
Microsoft's and Google's DNS (just the names the SPF includes and the M365 profile touch), so
tests resolve provider includes offline. Test domains are ``z01.test`` .. ``zNN.test``
(handed out by :meth:`DnsTestbed.new_zone`, content written by the tests with
:meth:`DnsTestbed.publish`), delegated to ``ns1.dns.test`` (the first knotd, 127.0.0.11) and
``ns2.dns.test`` (the second, 127.0.0.12); ``ns3.dns.test`` maps to 127.0.0.14, where nothing
listens. ``lame.test`` is served only by the first knotd, so the second one is lame for it.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.query
import dns.rdataclass

from mxshift.testbed.dovecot import free_port
from mxshift.testbed.knot import (
    START_TIMEOUT,
    DnsStartError,
    KnotServer,
    start_knot,
    stop_process,
    wait_tcp,
)


@dataclass(eq=False)
class UnboundServer:
    name: str
    host: str
    port: int
    base_dir: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def flush_zone(self, zone: str) -> None:
        """Forget everything cached at or below ``zone``."""
        subprocess.run(["unbound-control", "-c", str(self.base_dir / "unbound.conf"),
                        "flush_zone", zone], stdin=subprocess.DEVNULL, capture_output=True,
                       check=True, timeout=10)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


def render_unbound(base_dir: Path, host: str, port: int, stubs: dict[str, list[str]]) -> str:
    stub_lines = "".join(
        f"stub-zone:\n  name: \"{zone}\"\n" + "".join(f"  stub-addr: {a}\n" for a in addrs)
        for zone, addrs in stubs.items())
    return f"""server:
  interface: {host}@{port}
  port: {port}
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{base_dir}"
  pidfile: "{base_dir}/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 1
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  module-config: "iterator"
  local-zone: "test." nodefault
  qname-minimisation: no
  num-threads: 1
remote-control:
  control-enable: yes
  control-interface: "{base_dir}/unbound.ctl"
{stub_lines}"""


def start_unbound(base_dir: Path, *, name: str, host: str, port: int,
                  stubs: dict[str, list[str]]) -> UnboundServer:
    """``stubs``: zone -> ``["IP@PORT", ...]`` of its authoritative servers."""
    if shutil.which("unbound") is None:
        raise DnsStartError("unbound not found: apt-get install unbound")
    base_dir = Path(base_dir).absolute()
    base_dir.mkdir(parents=True, exist_ok=True)
    conf = base_dir / "unbound.conf"
    conf.write_text(render_unbound(base_dir, host, port, stubs))
    log = base_dir / "unbound.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen(["unbound", "-d", "-c", str(conf)], stdin=subprocess.DEVNULL,
                                stdout=fh, stderr=fh)
    server = UnboundServer(name, host, port, base_dir, proc)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        wait_tcp(host, port, deadline, proc, f"unbound {name}", log)
        while True:  # then a real answer over UDP (version.server is answered locally)
            q = dns.message.make_query("version.server", "TXT", rdclass=dns.rdataclass.CH)
            try:
                dns.query.udp(q, host, port=port, timeout=0.5)
                break
            except Exception:  # noqa: BLE001 - not ready yet
                if time.monotonic() > deadline:
                    raise DnsStartError(f"unbound {name} does not answer on {host}:{port}")
    except BaseException:
        server.stop()
        raise
    return server


# ---------------------------------------------------------------------------------------
# The composite testbed

KNOT_A_HOST = "127.0.0.11"
KNOT_B_HOST = "127.0.0.12"
UNBOUND_HOST = "127.0.0.13"
DEAD_HOST = "127.0.0.14"  # nothing listens here
LAME_ZONE = "lame.test"

FAKE_OUTLOOK = """$ORIGIN outlook.com.
$TTL 300
@ SOA ns1.dns.test. hostmaster.outlook.com. 1 60 60 600 60
@ NS ns1.dns.test.
spf.protection TXT "v=spf1 ip4:40.92.0.0/15 ip4:40.107.0.0/16 ip6:2a01:111:f400::/48 -all"
autodiscover CNAME autod.ms-acdc.outlook.com.
"""
FAKE_GOOGLE = """$ORIGIN google.com.
$TTL 300
@ SOA ns1.dns.test. hostmaster.google.com. 1 60 60 600 60
@ NS ns1.dns.test.
_spf TXT "v=spf1 include:_netblocks.google.com include:_netblocks2.google.com ~all"
_netblocks TXT "v=spf1 ip4:35.190.247.0/24 ip4:64.233.160.0/19 ~all"
_netblocks2 TXT "v=spf1 ip6:2001:4860:4000::/36 ~all"
smtp A 192.0.2.25
"""


def placeholder_zone(zone: str) -> str:
    return (f"$ORIGIN {zone}.\n$TTL 300\n@ SOA ns1.dns.test. hostmaster.{zone}. 1 60 60 600 60"
            f"\n@ NS ns1.dns.test.\n@ NS ns2.dns.test.\n")


@dataclass(eq=False)
class DnsTestbed:
    knot_a: KnotServer
    knot_b: KnotServer
    unbound: UnboundServer
    zones: tuple[str, ...]
    _next: itertools.count = field(default_factory=itertools.count, repr=False)

    @property
    def resolver(self) -> str:
        return self.unbound.address

    @property
    def ns_addresses(self) -> list[str]:
        port = self.knot_a.port
        return [f"ns1.dns.test={KNOT_A_HOST}:{port}", f"ns2.dns.test={KNOT_B_HOST}:{port}",
                f"ns3.dns.test={DEAD_HOST}:{port}"]

    @property
    def dead_address(self) -> str:
        return f"{DEAD_HOST}:{self.knot_a.port}"

    def new_zone(self) -> str:
        """A test domain no other test has used in this session."""
        index = next(self._next)
        if index >= len(self.zones):
            raise RuntimeError(f"all {len(self.zones)} test zones used: raise zone_count")
        return self.zones[index]

    def publish(self, zone: str, text: str, stale_text: str | None = None) -> None:
        """Serve ``text`` on both knotds, or ``stale_text`` on the second one."""
        self.knot_a.publish(zone, text)
        if zone in self.knot_b.zones:
            self.knot_b.publish(zone, stale_text if stale_text is not None else text)

    def stop(self) -> None:
        for server in (self.unbound, self.knot_a, self.knot_b):
            server.stop()


def start_dns_testbed(base_dir: Path, *, zone_count: int = 40) -> DnsTestbed:
    base_dir = Path(base_dir)
    zones = tuple(f"z{i:02d}.test" for i in range(1, zone_count + 1))
    port = free_port(KNOT_A_HOST)
    scenario = {z: placeholder_zone(z) for z in zones}
    started: list[KnotServer | UnboundServer] = []
    try:
        a = start_knot(base_dir / "knot-a", name="knot-a", host=KNOT_A_HOST, port=port,
                       zones={"outlook.com": FAKE_OUTLOOK, "google.com": FAKE_GOOGLE,
                              LAME_ZONE: placeholder_zone(LAME_ZONE), **scenario})
        started.append(a)
        b = start_knot(base_dir / "knot-b", name="knot-b", host=KNOT_B_HOST, port=port,
                       zones=scenario)
        started.append(b)
        stub = [f"{KNOT_A_HOST}@{port}"]
        u = start_unbound(base_dir / "unbound", name="unbound", host=UNBOUND_HOST,
                          port=free_port(UNBOUND_HOST),
                          stubs={z: stub for z in ("outlook.com", "google.com", LAME_ZONE,
                                                   *zones)})
    except BaseException:
        for server in started:
            server.stop()
        raise
    return DnsTestbed(a, b, u, zones)
