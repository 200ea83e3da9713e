"""Real interruptions: a `mxshift sync` process killed with SIGKILL mid-pass, and the
lease that keeps two passes of one mailbox from running at once."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from harness import Bed
from mxshift.state.models import Pass
from mxshift.testbed.corpus import CorpusSpec, folder_tree, generate
from mxshift.testbed.corpus_load import load
from mxshift.testbed.snapshot import diff, snapshot


def _project(directory: Path, src, dst, su, sp, du, dp) -> None:
    directory.mkdir(parents=True)
    (directory / "mxshift.toml").write_text(
        f'[source]\nhost = "127.0.0.1"\nport = {src.port}\nsecurity = "none"\n\n'
        f'[destination]\nhost = "127.0.0.1"\nport = {dst.port}\nsecurity = "none"\n\n'
        "[options]\nbatch_messages = 5\n")
    (directory / "users.csv").write_text(
        "source_user,source_password,destination_user,destination_password\n"
        f"{su},{sp},{du},{dp}\n")
    subprocess.run([sys.executable, "-m", "mxshift", "-C", str(directory), "mailboxes",
                    "import", str(directory / "users.csv")], check=True, capture_output=True)


def _copied(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("select count(*) from message where state='copied'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_sigkill_mid_pass_then_resume_is_exact(dovecot_src, dovecot_dst, tmp_path) -> None:
    su, sp = dovecot_src.new_user()
    du, dp = dovecot_dst.new_user()
    spec = CorpusSpec(seed=21, messages=400, size_profile="small")
    c = dovecot_src.connect(su, sp)
    load(c, generate(spec), folders=folder_tree(spec))
    c.logout()
    project = tmp_path / "p"
    _project(project, dovecot_src, dovecot_dst, su, sp, du, dp)
    cmd = [sys.executable, "-m", "mxshift", "-q", "-C", str(project), "sync"]
    for threshold in (30, 200):  # killed twice, at different depths
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while _copied(project / "mxshift.db") < threshold and proc.poll() is None:
            assert time.monotonic() < deadline, "sync made no progress"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    a, b = dovecot_src.connect(su, sp), dovecot_dst.connect(du, dp)
    assert diff(snapshot(a), snapshot(b)) == []  # nothing missing, nothing duplicated
    a.logout()
    b.logout()
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert " 0 copied" in again.stdout, again.stdout


def _running_pass(bed: Bed, owner: str) -> None:
    assert bed.db is not None
    with bed.db.session() as s, s.begin():
        s.add(Pass(mailbox_id=bed.mailbox_id, kind="prestage", status="running", owner=owner))


def test_a_live_pass_holds_the_mailbox(dovecot_src, dovecot_dst, tmp_path) -> None:
    bed = Bed.make(dovecot_src, dovecot_dst, tmp_path / "bed")
    holder = subprocess.Popen(["sleep", "30"])
    try:
        _running_pass(bed, f"{socket.gethostname()}:{holder.pid}")
        result = bed.run()
        assert result.status == "failed" and "another pass" in (result.error or ""), result
    finally:
        holder.kill()
        holder.wait()
        bed.close()


def test_a_dead_pass_is_taken_over(dovecot_src, dovecot_dst, tmp_path) -> None:
    bed = Bed.make(dovecot_src, dovecot_dst, tmp_path / "bed")
    gone = subprocess.Popen(["true"])
    gone.wait()
    try:
        _running_pass(bed, f"{socket.gethostname()}:{gone.pid}")
        result = bed.run()
        assert result.status == "ok", result
        assert bed.db is not None
        with bed.db.session() as s:
            statuses = [p.status for p in s.scalars(select(Pass).order_by(Pass.id))]
        assert statuses == ["interrupted", "ok"]
    finally:
        bed.close()
