"""The benchmark's accounts: a Dovecot pair, seeded corpora, clones, and source changes.

Why clones on disk: every tool must start from the very same source mailbox, and loading
5,000 messages over IMAP takes longer than copying them; a Maildir copied with its index
files (``cp -a``) is the same mailbox for Dovecot, under another user name.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mxshift.testbed.corpus import CorpusSpec, folder_tree, generate
from mxshift.testbed.corpus_load import load
from mxshift.testbed.dovecot import DovecotServer, start_dovecot
from mxshift.testbed.dovecot_config import DovecotConfig
from mxshift.testbed.snapshot import diff, snapshot


@dataclass(frozen=True)
class Account:
    server: DovecotServer
    user: str
    password: str

    def connect(self):  # type: ignore[no-untyped-def]
        return self.server.connect(self.user, self.password)


def start_pair(work: Path) -> tuple[DovecotServer, DovecotServer]:
    """Source and destination Dovecot, ``mail_fsync = never``: the tools are measured,
    not the disk. Connection limits are raised so no tool is refused a connection."""
    cfg = DovecotConfig(fsync=False, max_userip_connections=1000)
    return (start_dovecot(work / "src", name="bench-src", config=cfg),
            start_dovecot(work / "dst", name="bench-dst", config=cfg))


def seeded(server: DovecotServer, name: str, spec: CorpusSpec) -> Account:
    user, pw = server.new_user(name)
    c = server.connect(user, pw)
    try:
        load(c, generate(spec), folders=folder_tree(spec))
    finally:
        c.logout()
    return Account(server, user, pw)


def clone(original: Account, name: str) -> Account:
    """Another user with a byte-identical copy of ``original``'s mailbox."""
    user, pw = original.server.new_user(name)
    src, dst = original.server.home(original.user), original.server.home(user)
    if dst.exists():
        shutil.rmtree(dst)
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    return Account(original.server, user, pw)


def empty(server: DovecotServer, name: str) -> Account:
    user, pw = server.new_user(name)
    return Account(server, user, pw)


def compare(a: Account, b: Account) -> list[str]:
    """Differences between two accounts: folders, counts, bytes, flags, INTERNALDATE."""
    ca, cb = a.connect(), b.connect()
    try:
        return diff(snapshot(ca), snapshot(cb))
    finally:
        ca.logout()
        cb.logout()


def change_source(acct: Account, *, seed: int, new: int = 100, flags: int = 200,
                  deletions: int = 50, moves: int = 20) -> dict[str, int]:
    """The issue's delta workload on a source account, the same on every clone:
    ``new`` messages appended, ``flags`` flag changes, ``deletions`` expunged and
    ``moves`` moved from INBOX to Archive (UID MOVE)."""
    rng = random.Random(seed)
    c = acct.connect()
    try:
        spec = CorpusSpec(seed=seed, messages=new)
        load(c, generate(spec), folders=())
        folders = sorted(name for fl, _d, name in c.list_folders()
                         if b"\\Noselect" not in fl and b"\\NonExistent" not in fl)
        picks: list[tuple[str, int]] = []
        for name in folders:
            c.select_folder(name, readonly=True)
            picks += [(name, u) for u in sorted(c.search("ALL"))]
        rng.shuffle(picks)
        moved = [p for p in picks if p[0] == "INBOX"][:moves]
        moving = set(moved)
        rest = [p for p in picks if p not in moving]
        flag_set, deleted = rest[:flags], rest[flags:flags + deletions]
        done = {"new": new, "flags": 0, "deleted": 0, "moved": 0}
        for name in folders:
            c.select_folder(name)
            toggles = [u for f, u in flag_set if f == name]
            for i, uid in enumerate(toggles):
                flag = (b"\\Flagged", b"\\Seen", b"$Bench")[i % 3]
                current = c.get_flags([uid]).get(uid, ())
                if flag in current:
                    c.remove_flags([uid], [flag])
                else:
                    c.add_flags([uid], [flag])
                done["flags"] += 1
            gone = [u for f, u in deleted if f == name]
            if gone:
                c.add_flags(gone, [b"\\Deleted"])
                c.uid_expunge(gone)
                done["deleted"] += len(gone)
            if name == "INBOX" and moved:
                c.move([u for _f, u in moved], "Archive")
                done["moved"] += len(moved)
        return done
    finally:
        c.logout()
