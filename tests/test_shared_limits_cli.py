"""Admin commands count their connections with the workers' (issue #9: shared limits).

Why: with Redis configured, twenty workers share each server's cap; an admin's
``mxshift preflight``/``verify``/``sync`` on another machine must take its slots from the
same count, or it pushes the tenant over the cap. The slot here is held by a second
RedisLimiter in the test process, exactly as a worker process would hold it; the
commands run as the admin runs them (a subprocess of ``python -m mxshift``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mxshift.engine import limits
from mxshift.runners import RunnerSettings, _safe_url, install_shared_limits
from mxshift.runners.redis_limits import RedisLimiter
from mxshift.runners.redis_rates import RedisRateLimits
from mxshift.store import throttle
from mxshift.testbed.dovecot import DovecotServer, free_port
from mxshift.testbed.redis import RedisServer

HEADER = "source_user,source_password,destination_user,destination_password\n"


def _project(tmp_path: Path, src: DovecotServer, dst: DovecotServer) -> tuple[Path, str]:
    """A one-mailbox project whose source allows ONE connection; returns dir, source user."""
    directory = tmp_path / "proj"
    directory.mkdir()
    (directory / "mxshift.toml").write_text(
        f'[source]\nhost = "127.0.0.1"\nport = {src.port}\nsecurity = "none"\n'
        f"max_connections = 1\n"
        f'[destination]\nhost = "127.0.0.1"\nport = {dst.port}\nsecurity = "none"\n')
    s, sp = src.new_user("sl")
    d, dp = dst.new_user("sl")
    (directory / "mailboxes.csv").write_text(HEADER + f"{s},{sp},{d},{dp}\n")
    proc = _mxshift(directory, {}, "mailboxes", "import", str(directory / "mailboxes.csv"))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return directory, s


def _mxshift(directory: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """``mxshift -q -C DIR ARGS`` as an admin runs it (no MXSHIFT_* from the caller)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MXSHIFT_")}
    return subprocess.Popen([sys.executable, "-m", "mxshift", "-q", "-C", str(directory),
                             *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**base, **env})


@pytest.mark.parametrize("command,exit_code", [
    ("preflight", 0),
    ("verify", 0),  # both sides empty: verified, read from the servers
])
def test_admin_commands_wait_for_the_slot_a_worker_holds(
        command: str, exit_code: int, tmp_path: Path, redis_server: RedisServer,
        dovecot_src: DovecotServer, dovecot_dst: DovecotServer) -> None:
    directory, user = _project(tmp_path, dovecot_src, dovecot_dst)
    server = limits.server_key("127.0.0.1", dovecot_src.port)
    worker = RedisLimiter(redis_server.url())  # another process's limiter, as a worker's
    worker.reset(server)
    worker.set_cap(server, 1)
    try:
        with worker.slot(server):
            proc = _mxshift(directory, {"MXSHIFT_REDIS_URL": redis_server.url()},
                            command, "--json")
            deadline = time.monotonic() + 4.0  # start-up, then it must still be waiting
            while time.monotonic() < deadline:
                assert proc.poll() is None, proc.communicate()
                assert dovecot_src.connection_count(user) == 0  # never past the cap
                time.sleep(0.2)
            assert worker.in_use(server) == 1
        out, err = proc.communicate(timeout=30)  # the slot is free: it goes on
        assert proc.returncode == exit_code, err
        assert user in out  # it did reach the servers for the mailbox
        assert worker.peak(server) == 1  # the worker's slot, then the command's: never 2
        assert worker.in_use(server) == 0  # the command gave its slot back
    finally:
        worker.reset(server)
        worker.close()


def test_preflight_without_a_competing_holder_uses_the_shared_count(
        tmp_path: Path, redis_server: RedisServer, dovecot_src: DovecotServer,
        dovecot_dst: DovecotServer) -> None:
    """The other side of the test above: the waiting was the shared count's doing (with
    the slot free the command takes it in Redis, where the peak records it)."""
    directory, _ = _project(tmp_path, dovecot_src, dovecot_dst)
    server = limits.server_key("127.0.0.1", dovecot_src.port)
    observer = RedisLimiter(redis_server.url())
    observer.reset(server)
    try:
        proc = _mxshift(directory, {"MXSHIFT_REDIS_URL": redis_server.url()}, "preflight")
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert observer.peak(server) == 1
    finally:
        observer.reset(server)
        observer.close()


def test_a_command_run_in_process_gives_the_limiters_back(
        tmp_path: Path, redis_server: RedisServer, dovecot_src: DovecotServer,
        dovecot_dst: DovecotServer) -> None:
    """Scoped to the command: a CliRunner caller (tests, an embedding tool) is not left
    counting its connections in a Redis that may be gone by its next command."""
    from typer.testing import CliRunner

    from mxshift.cli import app

    directory, _ = _project(tmp_path, dovecot_src, dovecot_dst)
    server = limits.server_key("127.0.0.1", dovecot_src.port)
    observer = RedisLimiter(redis_server.url())
    observer.reset(server)
    before, rates_before = limits.limiter(), throttle.rate_limits()
    try:
        res = CliRunner().invoke(app, ["-q", "-C", str(directory), "preflight"],
                                 env={"MXSHIFT_REDIS_URL": redis_server.url()})
        assert res.exit_code == 0, res.output
        assert observer.peak(server) == 1  # counted in Redis while it ran
        assert limits.limiter() is before and throttle.rate_limits() is rates_before
    finally:
        observer.reset(server)
        observer.close()


def test_sync_with_redis_on_a_dead_port_fails_with_one_line(
        tmp_path: Path, dovecot_src: DovecotServer, dovecot_dst: DovecotServer) -> None:
    directory, user = _project(tmp_path, dovecot_src, dovecot_dst)
    dead = f"redis://127.0.0.1:{free_port()}/0"
    proc = _mxshift(directory, {"MXSHIFT_REDIS_URL": dead}, "sync")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: shared connection limiter unreachable: Redis at "
                               + dead), lines[0]
    assert "Traceback" not in err and out == ""
    assert dovecot_src.connection_count(user) == 0


def test_serve_with_redis_on_a_dead_port_warns_and_still_serves_pages(
        tmp_path: Path, dovecot_src: DovecotServer, dovecot_dst: DovecotServer) -> None:
    directory, _ = _project(tmp_path, dovecot_src, dovecot_dst)
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("MXSHIFT_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mxshift", "-C", str(directory), "serve", "--port", str(port)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**base, "MXSHIFT_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any(line.startswith("dashboard:") for line in lines):
            line = proc.stdout.readline()
            assert line, (lines, proc.stderr.read() if proc.stderr else "")  # it died
            lines.append(line)
        assert lines[0].startswith("warning: shared connection limiter unreachable"), lines
        status = None
        for _ in range(100):  # the port opens just after the announcement
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login",
                                            timeout=2) as resp:
                    status = resp.status
                break
            except OSError:
                time.sleep(0.1)
        assert status == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


def test_the_dashboard_path_reports_and_installs_anyway() -> None:
    """``serve`` keeps serving pages: the problem goes to its callback, and the shared
    limiter is installed so that actions fail ("limiter unreachable") instead of
    ignoring the caps."""
    dead = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    said: list[str] = []
    before, rates_before = limits.limiter(), throttle.rate_limits()
    try:
        assert install_shared_limits(RunnerSettings(None, None, dead),
                                     on_unreachable=said.append) is True
        assert isinstance(limits.limiter(), RedisLimiter)
        assert isinstance(throttle.rate_limits(), RedisRateLimits)
    finally:
        limits.set_limiter(before)
        throttle.set_rate_limits(rates_before)
    assert len(said) == 1 and "unreachable" in said[0]
    assert "hunter2" not in said[0]  # a password in the URL never reaches the screen


def test_without_redis_nothing_is_installed() -> None:
    before = limits.limiter()
    assert install_shared_limits(RunnerSettings(None, None, None)) is False
    assert limits.limiter() is before


@pytest.mark.parametrize("url,shown", [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("redis://:s3cret@10.0.0.5:6380/1", "redis://:***@10.0.0.5:6380/1"),
    ("rediss://admin:s3cret@redis.example/0", "rediss://admin:***@redis.example/0"),
])
def test_the_redis_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert _safe_url(url) == shown
