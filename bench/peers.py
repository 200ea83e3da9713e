"""The tools compared: mxshift (its CLI) and, configured for a one-way IMAP->IMAP copy,
interimap and mbsync from Debian (``bench/install-peers``).

Each tool gets its own state directory per workload; a "pass" is one run of its command.
interimap and mbsync handle one account per process (mbsync: one channel per account in
one config), so several mailboxes are several processes started at once.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
from pathlib import Path

from accounts import Account

ROOT = Path(__file__).resolve().parent.parent
MXSHIFT = [sys.executable, "-m", "mxshift"]


def available() -> dict[str, bool]:
    return {"mxshift": True, "floor": True,
            "interimap": shutil.which("interimap") is not None,
            "mbsync": shutil.which("mbsync") is not None}


# -- the floor: bench/floor.py, no tool around a copy or a status check ---------------------
FLOOR = [sys.executable, str(Path(__file__).resolve().parent / "floor.py")]


def _job(path: Path, job: dict) -> Path:
    """A job file for floor.py: JSON, mode 0600 before the passwords go in."""
    import json
    import os
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(job, f)
    return path


def floor_commands(directory: Path, pairs: list[tuple[Account, Account]],
                   connections: int = 1) -> list[list[str]]:
    """One ``floor.py copy`` process per mailbox, ``connections`` pairs each."""
    return [FLOOR + ["copy", str(_job(directory / f"copy{i}.json", {
        "src": [s.server.port, s.user, s.password],
        "dst": [d.server.port, d.user, d.password], "connections": connections}))]
        for i, (s, d) in enumerate(pairs)]


def floor_pass_seconds(outputs: list[str]) -> float | None:
    """From the first start to the last end of the floor processes' printed spans."""
    spans = [line.split()[2:4] for out in outputs for line in out.splitlines()
             if line.startswith("floor span ")]
    if not spans:
        return None
    return max(float(e) for _s, e in spans) - min(float(s) for s, _e in spans)


def floor_status_command(directory: Path, pairs: list[tuple[Account, Account]],
                         parallel: int) -> list[list[str]]:
    """One ``floor.py status`` process for every mailbox, ``parallel`` at a time."""
    return [FLOOR + ["status", str(_job(directory / "status.json", {
        "accounts": [[s.server.port, s.user, s.password] for s, _d in pairs],
        "parallel": parallel}))]]


# -- mxshift ------------------------------------------------------------------------------
def mxshift_project(directory: Path, pairs: list[tuple[Account, Account]],
                    options: str = "") -> list[list[str]]:
    """A project for ``pairs`` (source, destination); returns the pass command(s)."""
    import subprocess
    directory.mkdir(parents=True, exist_ok=True)
    src, dst = pairs[0][0].server, pairs[0][1].server
    (directory / "mxshift.toml").write_text(
        f'[source]\nhost = "127.0.0.1"\nport = {src.port}\nsecurity = "none"\n\n'
        f'[destination]\nhost = "127.0.0.1"\nport = {dst.port}\nsecurity = "none"\n\n'
        f'[options]\n{options}')
    rows = "".join(f"{s.user},{s.password},{d.user},{d.password}\n" for s, d in pairs)
    (directory / "users.csv").write_text(
        "source_user,source_password,destination_user,destination_password\n" + rows)
    subprocess.run(MXSHIFT + ["-C", str(directory), "mailboxes", "import",
                              str(directory / "users.csv")], check=True, capture_output=True)
    return [MXSHIFT + ["-q", "-C", str(directory), "sync"]]


def mxshift_pass_seconds(directory: Path, after_id: int) -> tuple[float, float, int]:
    """(span of the passes after ``after_id`` from first start to last finish, sum of
    their own seconds, highest pass id): the pass time without process start-up."""
    db = next(directory.rglob("*.db"), None) or next(directory.rglob("*.sqlite*"))
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT id, started_at, finished_at, seconds FROM pass "
                           "WHERE id > ? ORDER BY id", (after_id,)).fetchall()
    finally:
        con.close()
    if not rows:
        return 0.0, 0.0, after_id
    from datetime import datetime
    starts = [datetime.fromisoformat(str(r[1])) for r in rows]
    ends = [datetime.fromisoformat(str(r[2])) for r in rows if r[2]]
    span = (max(ends) - min(starts)).total_seconds() if ends else 0.0
    return span, sum(r[3] or 0 for r in rows), max(r[0] for r in rows)


# -- interimap ----------------------------------------------------------------------------
def interimap_commands(directory: Path, pairs: list[tuple[Account, Account]]) -> list[list[str]]:
    """One config per account: [remote] = the source, [local] = the destination.

    interimap is bidirectional; with nothing changed on the destination it behaves as a
    one-way copy. It needs QRESYNC on both sides (Dovecot has it).
    """
    cmds = []
    for i, (s, d) in enumerate(pairs):
        home = directory / f"acct{i}"
        home.mkdir(parents=True, exist_ok=True)
        conf = home / "config"
        conf.write_text(
            f"database = {home / 'state.db'}\n\n"
            f"[remote]\ntype = imap\nhost = 127.0.0.1\nport = {s.server.port}\n"
            f"STARTTLS = NO\nusername = {s.user}\npassword = {s.password}\n\n"
            f"[local]\ntype = imap\nhost = 127.0.0.1\nport = {d.server.port}\n"
            f"STARTTLS = NO\nusername = {d.user}\npassword = {d.password}\n")
        conf.chmod(0o600)
        cmds.append(["interimap", "--quiet", f"--config={conf}"])
    return cmds


# -- mbsync -------------------------------------------------------------------------------
def mbsync_commands(directory: Path, pairs: list[tuple[Account, Account]],
                    one_process: bool = False) -> list[list[str]]:
    """Far = the source, Near = the destination; ``Sync Pull`` (new messages, flags and
    deletions go source -> destination only), ``Create Near``, ``Expunge Near``,
    ``CopyArrivalDate yes`` (keeps INTERNALDATE). ``one_process``: one config with a
    channel per account, run as ``mbsync -a`` (how one would run many mailboxes)."""
    confs: list[str] = []
    for i, (s, d) in enumerate(pairs):
        state = directory / f"state{i}"
        state.mkdir(parents=True, exist_ok=True)
        confs.append(
            f"IMAPAccount src{i}\nHost 127.0.0.1\nPort {s.server.port}\nUser {s.user}\n"
            f"Pass {s.password}\nSSLType None\nAuthMechs LOGIN\n\n"
            f"IMAPStore src{i}\nAccount src{i}\n\n"
            f"IMAPAccount dst{i}\nHost 127.0.0.1\nPort {d.server.port}\nUser {d.user}\n"
            f"Pass {d.password}\nSSLType None\nAuthMechs LOGIN\n\n"
            f"IMAPStore dst{i}\nAccount dst{i}\n\n"
            f"Channel c{i}\nFar :src{i}:\nNear :dst{i}:\nPatterns *\nCreate Near\n"
            f"Remove None\nExpunge Near\nSync Pull\nCopyArrivalDate yes\n"
            f"SyncState {state}/\n\n")
    directory.mkdir(parents=True, exist_ok=True)
    if one_process:
        rc = directory / "mbsyncrc"
        rc.write_text("".join(confs))
        rc.chmod(0o600)
        return [["mbsync", "-q", "-c", str(rc), "-a"]]
    cmds = []
    for i, text in enumerate(confs):
        rc = directory / f"mbsyncrc{i}"
        rc.write_text(text)
        rc.chmod(0o600)
        cmds.append(["mbsync", "-q", "-c", str(rc), "-a"])
    return cmds
