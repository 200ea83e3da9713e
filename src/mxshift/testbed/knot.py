"""Start and stop real, throwaway Knot DNS (``knotd``) authoritative servers on loopback.

For the DNS cutover tests (issue 5); facts from ``/work/shared/notes/dns-testbed.md``:
knotd runs in the foreground as root without privileges to drop, binds any 127.0.0.x (two
instances can share a port on .11 and .12), answers ~13 ms after launch, and reloads a zone
asynchronously (``knotc zone-reload``), so :meth:`KnotServer.publish` polls the SOA serial.

Layout of ``base_dir``: ``knot.conf  knot.log  knot.sock  db/  <zone>.zone``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.query

START_TIMEOUT = 10.0
RELOAD_TIMEOUT = 5.0


class DnsStartError(RuntimeError):
    pass


@dataclass(eq=False)
class KnotServer:
    """A running knotd; ``stop()`` is idempotent."""

    name: str
    host: str
    port: int
    base_dir: Path
    zones: tuple[str, ...]
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def zone_file(self, zone: str) -> Path:
        return self.base_dir / f"{zone}.zone"

    def serial(self, zone: str, timeout: float = 1.0) -> int | None:
        """The SOA serial this server answers with now (None if it does not)."""
        return soa_serial(self.host, self.port, zone, timeout)

    def publish(self, zone: str, text: str) -> None:
        """Replace the zone's content and wait until it is served. Bump the serial."""
        if zone not in self.zones:
            raise ValueError(f"{self.name} does not serve {zone} (serves {self.zones})")
        before = self.serial(zone)
        self.zone_file(zone).write_text(text)
        subprocess.run(["knotc", "-s", str(self.base_dir / "knot.sock"), "zone-reload", zone],
                       stdin=subprocess.DEVNULL, capture_output=True, check=True, timeout=10)
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while self.serial(zone) == before:
            if time.monotonic() > deadline:
                raise DnsStartError(f"{self.name}: {zone} still has serial {before} after "
                                    f"reload (did the serial change?)\n{self.log_tail()}")
            time.sleep(0.01)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.base_dir / "knot.log").read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    """SIGTERM a server we started (by its PID), wait, SIGKILL if needed. Safe twice."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def soa_serial(host: str, port: int, zone: str, timeout: float = 1.0) -> int | None:
    q = dns.message.make_query(zone, "SOA")
    q.flags &= ~dns.flags.RD
    try:
        r = dns.query.udp(q, host, port=port, timeout=timeout)
    except Exception:  # noqa: BLE001 - "not answering" is all the caller needs
        return None
    for rrset in r.answer:
        return int(rrset[0].serial)
    return None


def wait_tcp(host: str, port: int, deadline: float, alive: subprocess.Popen[bytes],
             what: str, log: Path) -> None:
    """Until ``host:port`` accepts TCP (UDP probes to a closed port just time out)."""
    while True:
        if alive.poll() is not None:
            raise DnsStartError(f"{what} exited with {alive.returncode}:\n{_tail(log)}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise DnsStartError(f"{what} not listening on {host}:{port}:\n{_tail(log)}")
            time.sleep(0.01)


def _tail(log: Path) -> str:
    try:
        return "\n".join(log.read_text().splitlines()[-30:])
    except OSError:
        return "(no log)"


def render_config(base_dir: Path, host: str, port: int, zones: tuple[str, ...]) -> str:
    zone_lines = "\n".join(f"  - domain: {z}" for z in zones)
    return f"""server:
  rundir: "{base_dir}"
  listen: {host}@{port}
  background-workers: 1
  udp-workers: 1
  tcp-workers: 1
control:
  listen: "{base_dir}/knot.sock"
database:
  storage: "{base_dir}/db"
log:
  - target: stderr
    any: info
template:
  - id: default
    storage: "{base_dir}"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
{zone_lines}
"""


def start_knot(base_dir: Path, *, name: str, host: str, port: int,
               zones: dict[str, str]) -> KnotServer:
    """Write ``zones`` (name -> zone file text), start knotd, wait until every zone
    answers its SOA."""
    if shutil.which("knotd") is None:
        raise DnsStartError("knotd not found: apt-get install knot knot-dnsutils")
    base_dir = Path(base_dir).absolute()
    base_dir.mkdir(parents=True, exist_ok=True)
    for zone, text in zones.items():
        (base_dir / f"{zone}.zone").write_text(text)
    conf = base_dir / "knot.conf"
    conf.write_text(render_config(base_dir, host, port, tuple(zones)))
    log = base_dir / "knot.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen(["knotd", "-c", str(conf)], stdin=subprocess.DEVNULL,
                                stdout=fh, stderr=fh)
    server = KnotServer(name, host, port, base_dir, tuple(zones), proc)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        wait_tcp(host, port, deadline, proc, f"knotd {name}", log)
        for zone in zones:
            while server.serial(zone, timeout=0.5) is None:
                if time.monotonic() > deadline:
                    raise DnsStartError(f"knotd {name} does not serve {zone}:\n"
                                        f"{server.log_tail()}")
                time.sleep(0.01)
    except BaseException:
        server.stop()
        raise
    return server
