"""The README demo ends with the dashboard reachable, says its URL, and stops on Ctrl-C."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from mxshift.testbed.dovecot import free_port


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_demo_serves_the_dashboard_until_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mxshift.testbed.demo", "--dir",
                             str(tmp_path / "demo"), "--messages", "10", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 240
        password = None
        while password is None:
            line = proc.stdout.readline()
            assert line, "".join(lines)  # the demo ended before serving
            lines.append(line)
            m = re.match(r"admin password \(shown once, stored hashed\): (\S+)$", line)
            password = m.group(1) if m else None
            assert time.monotonic() < deadline, "".join(lines)
        out = "".join(lines)
        assert "demo succeeded" in out and f"dashboard: http://127.0.0.1:{port}/" in out
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx2.get(f"{url}/login", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        rows = httpx2.get(f"{url}/mailboxes.json", headers={
            "authorization": f"Bearer {password}"}).json()["mailboxes"]
        assert {r["source_user"] for r in rows} == {"alice", "bob", "carol"}
        assert all(r["status"] == "synced" and r["verification"] == "verified" for r in rows)
        assert sum(r["messages_on_destination"] for r in rows) > 30
        # --keep was not given: the demo stopped its Dovecots too (they served until then,
        # so passes can be started from the page)
        imap_ports = [int(x) for x in re.search(
            r"source Dovecot on 127.0.0.1:(\d+), destination on 127.0.0.1:(\d+)", out).groups()]
        assert all(_listening(p) for p in imap_ports)  # type: ignore[union-attr]
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(30) == 0
        assert not any(_listening(p) for p in imap_ports)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    with pytest.raises(httpx2.TransportError):
        httpx2.get(f"{url}/login", timeout=1)
