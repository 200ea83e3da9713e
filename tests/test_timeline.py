"""The whole timeline against real Dovecot and real DNS servers, on an injectable clock.

Prestage, deltas, a DNS-gated cutover and 48 hourly sweeps run in seconds: the scheduler's
clock is a :class:`FakeClock` whose ``sleep`` jumps ahead and fires the events planned for
the time it passes (mail delivered to the old server, a user deleting on the new one).
Everything else is real: the IMAP servers, the DNS servers, the state database.
"""

from __future__ import annotations

import itertools
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from mxshift.cli import app
from mxshift.cutover import cutover
from mxshift.engine.journal import CrashAt, SimulatedCrash
from mxshift.project import OpenProject, import_mailboxes, open_project
from mxshift.report.data import collect
from mxshift.report.render import render_html
from mxshift.schedule import store as tl
from mxshift.schedule.scheduler import Scheduler
from mxshift.state.models import Mailbox, Pass
from mxshift.state.schedule_models import ScheduleRun, SourceChange, StrayMessage, Timeline
from mxshift.sync import sync
from mxshift.testbed.dovecot import DovecotServer
from mxshift.testbed.unbound import DnsTestbed
from mxshift.verify.gate import complete
from mxshift.verify.run import verify
from test_dns_check import OLD_MX, tenant, zone

H = timedelta(hours=1)
_ids = itertools.count()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MXSHIFT_DATABASE_URL", raising=False)


@dataclass
class FakeClock:
    """Time that only moves when the scheduler sleeps; events fire as their time passes."""

    t: datetime
    events: list[tuple[datetime, Callable[[], None]]] = field(default_factory=list)

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)
        due = [e for e in self.events if e[0] <= self.t]
        self.events = [e for e in self.events if e[0] > self.t]
        for _, action in sorted(due, key=lambda e: e[0]):
            action()

    def wake(self) -> None:
        pass

    def at(self, when: datetime, action: Callable[[], None]) -> None:
        self.events.append((when, action))


def message(tag: str, *, received: bool = False) -> bytes:
    n = next(_ids)
    hop = (b"Received: from mx.sender.example (mx.sender.example [192.0.2.7])\r\n"
           b"\tby mail.oldhost.example (Postfix) with ESMTPS id 4F;\r\n"
           b"\tTue, 1 Dec 2026 09:00:00 +0000\r\n") if received else b""
    return hop + (f"Message-ID: <{tag}.{n}@timeline.test>\r\nFrom: Carol <carol@example.test>\r\n"
                  f"Subject: {tag} {n}\r\nDate: Tue, 1 Dec 2026 09:00:00 +0000\r\n\r\n"
                  f"body {tag} {n}\r\n").encode()


@dataclass
class Migration:
    directory: Path
    src: DovecotServer
    dst: DovecotServer
    dns: DnsTestbed
    domain: str
    users: list[tuple[str, str, str, str]]   # (src user, src pw, dst user, dst pw)

    def open(self) -> OpenProject:
        return open_project(self.directory)

    def deliver(self, i: int, folder: str, raw: bytes, when: datetime | None = None) -> None:
        """Mail arriving on the old server (at ``when`` on the test's clock)."""
        c = self.src.connect(self.users[i][0], self.users[i][1])
        c.append(folder, raw, msg_time=when)
        c.logout()

    def dns_ready(self, ready: bool, serial: int) -> None:
        mx = None if ready else (f"10 {OLD_MX}.",)
        self.dns.publish(self.domain, zone(self.domain, serial, mx=mx))

    def subjects(self, side: str, i: int, folder: str = "INBOX") -> Counter[str]:
        server, user, pw = ((self.src, self.users[i][0], self.users[i][1]) if side == "src"
                            else (self.dst, self.users[i][2], self.users[i][3]))
        c = server.connect(user, pw)
        try:
            c.select_folder(folder, readonly=True)
            uids = c.search(["ALL"])
            data = c.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]) if uids else {}
            return Counter(v[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().strip()
                           .removeprefix("Subject: ") for v in data.values())
        finally:
            c.logout()

    def on_dest(self, i: int, action: Callable) -> None:  # type: ignore[type-arg]
        c = self.dst.connect(self.users[i][2], self.users[i][3])
        try:
            action(c)
        finally:
            c.logout()


def make_migration(directory: Path, src: DovecotServer, dst: DovecotServer, dns: DnsTestbed,
                   *, schedule: str = "", mailboxes: int = 2, ready: bool = True) -> Migration:
    directory.mkdir(parents=True)
    domain = dns.new_zone()
    users = []
    for _ in range(mailboxes):
        su, sp = src.new_user("t")
        du, dp = dst.new_user("t")
        users.append((su, sp, du, dp))
    m = Migration(directory, src, dst, dns, domain, users)
    m.dns_ready(ready, 10)
    ns = ", ".join(f'"{a}"' for a in dns.ns_addresses)
    (directory / "mxshift.toml").write_text(f"""[project]
name = "timeline"
domains = ["{domain}"]
[source]
host = "127.0.0.1"
port = {src.port}
security = "none"
[destination]
host = "127.0.0.1"
port = {dst.port}
security = "none"
[dns]
provider = "m365"
resolvers = ["{dns.resolver}"]
ns_addresses = [{ns}]
timeout = 0.5
[dns.m365_mx]
"{domain}" = "{tenant(domain)}"
[schedule]
{schedule}
""")
    (directory / "users.csv").write_text(
        "source_user,source_password,destination_user,destination_password\n"
        + "".join(f"{su},{sp},{du},{dp}\n" for su, sp, du, dp in users))
    import_mailboxes(directory, directory / "users.csv")
    for i, (su, sp, _, _) in enumerate(users):
        c = src.connect(su, sp)
        c.create_folder("Projects")
        for k in range(3):
            c.append("INBOX", message(f"before{i}"), flags=[b"\\Seen"])
        c.append("Projects", message(f"project{i}"))
        c.logout()
    return m


def runs(proj: OpenProject) -> list[ScheduleRun]:
    with proj.db.session() as s:
        return list(s.scalars(select(ScheduleRun).order_by(ScheduleRun.slot_at)))


def pass_kinds(proj: OpenProject) -> Counter[str]:
    with proj.db.session() as s:
        return Counter(s.scalars(select(Pass.kind)))


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


# ---------------------------------------------------------------------------------------
def test_the_whole_timeline_with_48_hourly_sweeps(dovecot_src, dovecot_dst, dns_testbed,
                                                  tmp_path) -> None:
    # In the past: Dovecot stores "now" for an APPEND dated in the future, and the stray
    # mail's arrival times must sit on the test's clock for the hourly trend.
    t0 = datetime.now(timezone.utc).replace(microsecond=0) - 110 * H
    m = make_migration(tmp_path / "p", dovecot_src, dovecot_dst, dns_testbed, schedule=(
        f'prestage_at = "{t0.isoformat()}"\ndelta_interval = "24h"\n'
        f'cutover_at = "{(t0 + 50 * H).isoformat()}"\nsweep_interval = "60m"\n'
        'sweep_window = "48h"\n'))
    clock = FakeClock(t0)
    cut = t0 + 50 * H
    # before the cutover: new mail, picked up by the delta at 48 h
    clock.at(t0 + 30 * H, lambda: m.deliver(0, "INBOX", message("delta-mail")))
    # after it: mail still routed to the old server, one message in hour 1 and 3
    first, late = cut + 10 * timedelta(minutes=1), cut + 150 * timedelta(minutes=1)
    clock.at(first, lambda: m.deliver(0, "INBOX", message("stray", received=True), first))
    clock.at(late, lambda: m.deliver(1, "Projects", message("stray-late", received=True),
                                     late))

    def users_act_after_cutover() -> None:
        # on the destination (live now): delete one message, move another to Projects
        def act(c):  # type: ignore[no-untyped-def]
            c.select_folder("INBOX")
            uids = sorted(c.search(["ALL"]))
            c.delete_messages(uids[:1])
            c.expunge()
            c.move(uids[1:2], "Projects")
        m.on_dest(0, act)

        # on the source: delete one message and move one (logged, not applied)
        def src_act(c):  # type: ignore[no-untyped-def]
            c.select_folder("INBOX")
            uids = sorted(c.search(["ALL"]))
            c.move(uids[-1:], "Projects")
            c.delete_messages(uids[:1])
            c.expunge()
        c = m.src.connect(m.users[1][0], m.users[1][1])
        src_act(c)
        c.logout()
    clock.at(cut + 4 * H + timedelta(minutes=30), users_act_after_cutover)

    proj = m.open()
    try:
        lines: list[str] = []
        ran = Scheduler(proj, clock=clock, say=lines.append).run()
        assert clock.now() >= cut + 48 * H, "the scheduler stops once the window is over"
        kinds = Counter(r.kind for r in ran)
        assert kinds == {"prestage": 1, "delta": 2, "final": 1, "sweep": 48}, (kinds, lines)
        rows = runs(proj)
        assert len({(r.kind, r.slot_at) for r in rows}) == len(rows) == 52
        assert all(r.status == "ok" for r in rows), [(r.kind, r.status, r.note) for r in rows]
        assert pass_kinds(proj) == {"prestage": 2, "delta": 4, "final": 2, "sweep": 96}
        assert any("stray mail: 1 stray message in hour 1, 1 in hour 3, 0 since hour 4" in x
                   for x in lines), lines[-5:]

        # the stray mail arrived exactly once; the delta mail too
        assert m.subjects("dst", 0)["delta-mail " + _n(m, "delta-mail")] == 1
        dst0 = m.subjects("dst", 0) + m.subjects("dst", 0, "Projects")
        strays = [s for s in dst0 if s.startswith("stray ")]
        assert len(strays) == 1 and dst0[strays[0]] == 1
        dst1 = m.subjects("dst", 1, "Projects")
        assert sum(v for s, v in dst1.items() if s.startswith("stray-late")) == 1
        # what the user deleted on the destination stays deleted; the move stays a move
        src0 = m.subjects("src", 0)
        assert sum(dst0.values()) == sum(src0.values()) + 1 - 1  # +1 Projects msg, -1 deleted
        # source deletions and moves after cutover are logged, not applied
        dst1_all = m.subjects("dst", 1) + m.subjects("dst", 1, "Projects")
        assert sum(1 for s in dst1_all if s.startswith("before1")) == 3
        assert all(v == 1 for v in dst1_all.values()), dst1_all
        with proj.db.session() as s:
            changes = Counter((c.kind, c.count) for c in s.scalars(select(SourceChange)))
            stray_rows = list(s.scalars(select(StrayMessage).order_by(StrayMessage.id)))
            cut_rows = list(s.scalars(select(Mailbox.cutover_at)))
        assert changes == {("moved_in", 1): 1, ("deleted", 2): 1}, changes
        assert [r.received_by for r in stray_rows] == [
            "by mail.oldhost.example from mx.sender.example"] * 2
        assert all(c is not None for c in cut_rows)
        view = tl.timeline_view(proj, clock.now())
        assert view.phase == "swept" and view.sweep_left == timedelta(0)
        data = collect(proj)
        assert data["cutover"]["cutover_done"] and len(data["cutover"]["messages"]) == 2
        assert [p["count"] for p in data["cutover"]["per_sweep"]] == [1, 1]
        page = render_html(data)
        assert "Cutover and stray mail" in page and "by mail.oldhost.example" in page
    finally:
        proj.close()


def _n(m: Migration, tag: str) -> str:
    subjects = m.subjects("src", 0)
    return next(s.split()[-1] for s in subjects if s.startswith(tag + " "))


def test_restart_runs_no_duplicate_and_one_catch_up(dovecot_src, dovecot_dst, dns_testbed,
                                                    tmp_path) -> None:
    t0 = datetime.now(timezone.utc).replace(microsecond=0)
    m = make_migration(tmp_path / "p", dovecot_src, dovecot_dst, dns_testbed, mailboxes=1,
                       schedule=f'prestage_at = "{t0.isoformat()}"\n'
                                f'cutover_at = "{(t0 + 2 * H).isoformat()}"\n')
    clock = FakeClock(t0)
    proj = m.open()
    try:
        Scheduler(proj, clock=clock, say=lambda _: None).run(until=t0 + 5 * H + H / 2)
        before = Counter((r.kind, r.status) for r in runs(proj))
        assert before == {("prestage", "ok"): 1, ("final", "ok"): 1, ("sweep", "ok"): 3}
        # the scheduler is killed in the middle of the next sweep's copy
        clock.t = t0 + 6 * H
        m.deliver(0, "INBOX", message("stray", received=True))
        crash = Scheduler(proj, clock=clock, hooks=CrashAt(1), say=lambda _: None)
        with pytest.raises(SimulatedCrash):
            crash.run()
        assert [r.status for r in runs(proj) if utc(r.slot_at) == t0 + 6 * H] == ["interrupted"]
        # a SIGKILL runs no handler: the row stays "running", owned by a dead process
        dead = _dead_pid()
        with proj.db.session() as s, s.begin():
            s.execute(update(ScheduleRun).where(ScheduleRun.status == "interrupted").values(
                status="running", owner=f"{socket.gethostname()}:{dead}"))
        # ... and comes back six hours later: resume the killed slot? No: a newer slot
        # is due, so one catch-up pass runs for it and the killed one shows "missed".
        clock.t = t0 + 12 * H + H / 4
        lines: list[str] = []
        ran = Scheduler(proj, clock=clock, say=lines.append).run(until=t0 + 14 * H + H / 2)
        assert any("left by a stopped scheduler" in x for x in lines)
        assert [(r.kind, r.slot_at, r.status) for r in ran] == [
            ("sweep", t0 + 12 * H, "ok"), ("sweep", t0 + 13 * H, "ok"),
            ("sweep", t0 + 14 * H, "ok")]
        by_slot = {utc(r.slot_at): r for r in runs(proj)}
        assert by_slot[t0 + 12 * H].trigger == "catch-up"
        assert by_slot[t0 + 6 * H].status == "interrupted"
        assert t0 + 9 * H not in by_slot
        # the stray message of the killed sweep arrived exactly once
        dst = m.subjects("dst", 0)
        assert sum(v for s, v in dst.items() if s.startswith("stray")) == 1, dst
        assert set(dst.values()) == {1}
        view = tl.timeline_view(proj, clock.now())
        statuses = {s.due_at: s.status for s in view.slots if s.kind == "sweep"}
        assert statuses[t0 + 6 * H] == "missed" and statuses[t0 + 9 * H] == "missed"
        assert statuses[t0 + 15 * H] == "upcoming"
    finally:
        proj.close()


def test_an_interrupted_slot_is_resumed_when_it_is_still_the_latest(
        dovecot_src, dovecot_dst, dns_testbed, tmp_path) -> None:
    t0 = datetime.now(timezone.utc).replace(microsecond=0)
    m = make_migration(tmp_path / "p", dovecot_src, dovecot_dst, dns_testbed, mailboxes=1,
                       schedule=f'prestage_at = "{t0.isoformat()}"\n')
    clock = FakeClock(t0)
    proj = m.open()
    try:
        with pytest.raises(SimulatedCrash):
            Scheduler(proj, clock=clock, hooks=CrashAt(3), say=lambda _: None).run()
        ran = Scheduler(proj, clock=clock, say=lambda _: None).run(until=t0 + H)
        assert [(r.kind, r.status) for r in ran] == [("prestage", "ok")]
        [row] = runs(proj)
        assert (row.trigger, row.status) == ("resume", "ok")
        assert m.subjects("dst", 0) == m.subjects("src", 0)
    finally:
        proj.close()


def test_cutover_refused_while_dns_is_not_ready_forced_is_recorded(
        dovecot_src, dovecot_dst, dns_testbed, tmp_path) -> None:
    m = make_migration(tmp_path / "p", dovecot_src, dovecot_dst, dns_testbed, mailboxes=1,
                       ready=False)
    cli = CliRunner()
    assert cli.invoke(app, ["-C", str(m.directory), "-q", "sync"]).exit_code == 0
    refused = cli.invoke(app, ["-C", str(m.directory), "-q", "cutover", "--now"])
    assert refused.exit_code == 1
    assert "cutover refused: DNS is not ready" in refused.stderr
    assert f"{m.domain} MX" in refused.stderr and "--force" in refused.stderr
    proj = m.open()
    try:
        assert pass_kinds(proj)["final"] == 0
        assert tl.load_plan(proj).cutover_done_at is None
    finally:
        proj.close()
    swept = cli.invoke(app, ["-C", str(m.directory), "-q", "sweep"])
    assert swept.exit_code == 1 and "no cutover yet" in swept.stderr
    forced = cli.invoke(app, ["-C", str(m.directory), "-q", "cutover", "--now", "--force"])
    assert forced.exit_code == 0, forced.output
    assert "DNS gate forced by" in forced.stderr
    proj = m.open()
    try:
        with proj.db.session() as s:
            t = s.get(Timeline, proj.project_id)
            assert t is not None and t.cutover_forced_by and t.cutover_done_at
            assert m.domain in (t.cutover_note or "")
        assert pass_kinds(proj)["final"] == 1
        # after the cutover `sync` is a sweep: the destination is live
        m.deliver(0, "INBOX", message("late", received=True))
        m.on_dest(0, lambda c: (c.select_folder("INBOX"),
                                c.delete_messages(sorted(c.search(["ALL"]))[:1]), c.expunge()))
        [r] = sync(proj)
        assert (r.kind, r.copied, r.deleted) == ("sweep", 1, 0)
        assert sum(1 for s in m.subjects("dst", 0) if s.startswith("before")) == 2
    finally:
        proj.close()
    shown = cli.invoke(app, ["-C", str(m.directory), "schedule", "--json"])
    assert '"cutover_forced_by"' in shown.stdout and '"phase": "sweeping"' in shown.stdout
    again = cli.invoke(app, ["-C", str(m.directory), "-q", "cutover", "--now"])
    assert again.exit_code == 1 and "already ran" in again.stderr


def test_scheduler_retries_a_refused_cutover_until_dns_is_ready(
        dovecot_src, dovecot_dst, dns_testbed, tmp_path) -> None:
    t0 = datetime.now(timezone.utc).replace(microsecond=0)
    m = make_migration(tmp_path / "p", dovecot_src, dovecot_dst, dns_testbed, mailboxes=1,
                       ready=False, schedule=(
                           f'prestage_at = "{t0.isoformat()}"\n'
                           f'cutover_at = "{(t0 + H).isoformat()}"\ncutover_retry = "15m"\n'))
    clock = FakeClock(t0)
    clock.at(t0 + H + 20 * timedelta(minutes=1), lambda: m.dns_ready(True, 11))
    proj = m.open()
    try:
        lines: list[str] = []
        ran = Scheduler(proj, clock=clock, say=lines.append).run(until=t0 + 2 * H)
        refusals = [x for x in lines if "cutover refused" in x]
        assert len(refusals) == 2 and "retrying in 15m" in refusals[0]
        final = [r for r in ran if r.kind == "final"]
        assert len(final) == 1
        assert tl.load_plan(proj).cutover_done_at == t0 + H + 30 * timedelta(minutes=1)
    finally:
        proj.close()


def test_an_interrupted_sweep_resumes_exact(dovecot_src, dovecot_dst, dns_testbed,
                                            tmp_path) -> None:
    """Kill the sweep at every checkpoint in turn; the re-run carries each stray once."""
    m = make_migration(tmp_path / "p", dovecot_src, dovecot_dst, dns_testbed, mailboxes=1)
    proj = m.open()
    try:
        sync(proj)
        cutover(proj)
        step = 1
        while True:
            m.deliver(0, "INBOX", message(f"crash{step}", received=True))
            try:
                sync(proj, kind="sweep", hooks=CrashAt(step))
                crashed = False
            except SimulatedCrash:
                crashed = True
            [r] = sync(proj, kind="sweep")
            assert r.status == "ok"
            dst = m.subjects("dst", 0)
            assert set(dst.values()) == {1}, (step, dst)
            assert dst == m.subjects("src", 0), step
            with proj.db.session() as s:
                rows = list(s.scalars(select(StrayMessage.source_uid)))
            assert len(rows) == len(set(rows)) == step
            if not crashed:
                break
            step += 1
        assert step > 3  # the sweep has several checkpoints, each was a crash point
    finally:
        proj.close()


def test_completion_waits_for_the_sweep_window(dovecot_src, dovecot_dst, dns_testbed,
                                               tmp_path) -> None:
    m = make_migration(tmp_path / "p", dovecot_src, dovecot_dst, dns_testbed, mailboxes=1)
    proj = m.open()
    try:
        sync(proj)
        cutover(proj)
        assert verify(proj)[0].verdict == "verified"
        blocked = complete(proj)
        assert not blocked.completed
        assert any("sweep window is open until" in x for x in blocked.open), blocked.open
        # sweeps add stray mail and the user works on the live destination: the
        # verification right after the final pass still stands
        m.deliver(0, "INBOX", message("stray", received=True))
        assert sync(proj, kind="sweep")[0].copied == 1
        m.on_dest(0, lambda c: (c.select_folder("INBOX"),
                                c.delete_messages(sorted(c.search(["ALL"]))[:2]), c.expunge()))
        assert sync(proj, kind="sweep")[0].status == "ok"
    finally:
        proj.close()
    cli = CliRunner()
    ended = cli.invoke(app, ["-C", str(m.directory), "schedule", "--end-sweeps"])
    assert ended.exit_code == 0 and "swept" in ended.stdout
    proj = m.open()
    try:
        assert complete(proj).completed
    finally:
        proj.close()


def test_mxshift_run_stops_cleanly_on_sigterm_and_restarts_without_repeating(
        dovecot_src, dovecot_dst, dns_testbed, tmp_path) -> None:
    """The real process with the real clock: prestage is due at once; SIGTERM while it
    waits for the next slot ends it cleanly; a restart finds nothing due to repeat."""
    m = make_migration(tmp_path / "p", dovecot_src, dovecot_dst, dns_testbed, mailboxes=2)
    cmd = [sys.executable, "-m", "mxshift", "-C", str(m.directory), "run", "--max-sleep", "0.5"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        proj = m.open()
        try:
            while time.monotonic() < deadline:
                if [r.status for r in runs(proj)] == ["ok"]:
                    break
                time.sleep(0.2)
        finally:
            proj.close()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "prestage pass (scheduler)" in output and "stopping after the running passes" \
        in output and "scheduler stopped after 1 slot(s)" in output, output
    again = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(3)
    again.send_signal(signal.SIGINT)
    output, _ = again.communicate(timeout=30)
    assert again.returncode == 0 and "scheduler stopped after 0 slot(s)" in output, output
    proj = m.open()
    try:
        assert [(r.kind, r.status) for r in runs(proj)] == [("prestage", "ok")]
        assert pass_kinds(proj) == {"prestage": 2}
        assert m.subjects("dst", 0) == m.subjects("src", 0)
    finally:
        proj.close()
