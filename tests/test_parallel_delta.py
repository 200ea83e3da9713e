# ruff: noqa: F811 - pytest fixtures are parameters named as the fixtures imported above
"""A delta pass over many changed folders runs them on several connection pairs
(folder_pool.worker_count): it stays exact, and a crash at any step then a re-run leaves
nothing lost and nothing duplicated. Real Dovecots, as in test_parallel_folders."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import Bed
from mxshift.engine.folder_pool import DELTA_FOLDERS_PER_PAIR, FOLDERS_PER_PAIR
from mxshift.engine.journal import Hooks, SimulatedCrash
from mxshift.engine.limits import LocalLimiter, server_key
from mxshift.testbed.corpus import CorpusSpec, folder_tree, generate
from mxshift.testbed.corpus_load import load
from mxshift.engine import limits
from mxshift.store.imap import ImapStore
from test_parallel_folders import CrashAfter, bed, run  # noqa: F401 - bed is a fixture


@pytest.fixture
def limiter() -> Iterator[LocalLimiter]:
    """Counts logins per server; unlike test_parallel_folders' fixture, it leaves the
    full-copy threshold (PARALLEL_MIN_BYTES) alone: only the delta rule can add pairs."""
    lim = LocalLimiter(default=50)
    old = limits.set_limiter(lim)
    yield lim
    limits.set_limiter(old)


class Count(Hooks):
    def __init__(self) -> None:
        self.labels: list[str] = []

    def checkpoint(self, label: str) -> None:
        self.labels.append(label)


def spy_logins(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The port of every LOGIN sent from now on (a spy: the real send follows)."""
    logins: list[int] = []
    real = imaplib.IMAP4.send

    def send(self: imaplib.IMAP4, data: bytes) -> None:
        if data.startswith(self.tagpre) and data.split(None, 2)[1].upper() == b"LOGIN":
            logins.append(self.port)
        real(self, data)

    monkeypatch.setattr(imaplib.IMAP4, "send", send)
    return logins


def resumed_exactly(bed: Bed, step: object) -> None:
    """After a crash at ``step``: a re-run is exact, every row settled, and a pass after
    it has nothing left to do."""
    resumed = run(bed, folder_parallelism=4)
    assert resumed.status == "ok", (step, resumed.error)
    assert bed.differences() == [], step
    assert set(bed.journal_states()) == {"copied"}, step
    quiet = run(bed, folder_parallelism=4)
    assert (quiet.copied, quiet.deleted, quiet.moved, quiet.flags_updated,
            quiet.adopted) == (0, 0, 0, 0, 0), step


def change_every_folder(bed: Bed) -> int:
    """In every folder: one flag toggled, one message deleted, one new; and one message
    moved from INBOX to another folder. Returns the number of changed folders."""
    c = bed.source()
    names = sorted(n for fl, _d, n in c.list_folders() if b"\\Noselect" not in fl)
    changed = 0
    for i, name in enumerate(names):
        c.select_folder(name)
        uids = sorted(c.search("ALL"))
        if len(uids) < 3:
            continue
        c.add_flags([uids[0]], [b"\\Flagged"]) if b"\\Flagged" not in c.get_flags(
            [uids[0]])[uids[0]] else c.remove_flags([uids[0]], [b"\\Flagged"])
        c.add_flags([uids[1]], [b"\\Deleted"])
        c.uid_expunge([uids[1]])
        c.append(name, (f"From: a@example.org\r\nTo: b@example.org\r\nSubject: delta {i}"
                        f"\r\nMessage-ID: <delta-{i}@example.org>\r\n\r\nnew in {name}\r\n"
                        ).encode())
        if name == "INBOX":
            target = next(n for n in names if n != "INBOX")
            c.move([uids[2]], target)
        changed += 1
    return changed


def test_a_delta_over_many_folders_uses_several_connections_and_is_exact(
        bed: Bed, limiter: LocalLimiter, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(bed, folder_parallelism=4).status == "ok"
    changed = change_every_folder(bed)
    assert changed >= 2 * FOLDERS_PER_PAIR  # enough for the pool to open a second pair
    limiter.peak.clear()
    logins = spy_logins(monkeypatch)
    answered: list[bool] = []  # per folder: read in the pipelined burst (qresync_batch)
    many = ImapStore.select_changes_many

    def read_many(self: ImapStore, requests):  # type: ignore[no-untyped-def]
        out = many(self, requests)
        answered.extend(a is not None for a in out)
        return out

    monkeypatch.setattr(ImapStore, "select_changes_many", read_many)
    result = run(bed, folder_parallelism=4)
    monkeypatch.undo()
    assert result.status == "ok", result.error
    # Every changed folder was read in one pipelined burst on the pass's connection, and
    # the new messages early on the same one (early_fetch.py): the copy workers never
    # logged in to the source. The destination: one pair per DELTA_FOLDERS_PER_PAIR.
    assert answered == [True] * changed, answered
    assert logins.count(bed.src_server.port) == 1, logins
    assert logins.count(bed.dst_server.port) == max(1, min(4, changed // DELTA_FOLDERS_PER_PAIR)), logins
    assert (result.copied, result.deleted, result.moved) == (changed, changed, 1)
    assert result.flags_updated >= changed - 1
    assert bed.differences() == []
    assert limiter.peak[server_key(bed.dst_server.host, bed.dst_server.port)] >= 2
    again = run(bed, folder_parallelism=4)
    assert (again.copied, again.deleted, again.moved, again.flags_updated) == (0, 0, 0, 0)


def _fresh(dovecot_src, dovecot_dst, tmp_path: Path, name: str) -> Bed:
    b = Bed.make(dovecot_src, dovecot_dst, tmp_path / name)
    spec = CorpusSpec(seed=11, messages=140, size_profile="small")
    load(b.source(), generate(spec), folders=folder_tree(spec))
    return b


def test_a_crash_at_every_step_of_a_parallel_delta_then_rerun_is_exact(
        dovecot_src, dovecot_dst, tmp_path: Path, limiter: LocalLimiter) -> None:
    """Count the delta's checkpoints once; then, on a fresh bed per sampled step (every
    journal write and protocol write kind is hit), crash there, resume, demand exact."""
    counter = _fresh(dovecot_src, dovecot_dst, tmp_path, "count")
    try:
        assert run(counter, folder_parallelism=4).status == "ok"
        change_every_folder(counter)
        count = Count()
        assert run(counter, hooks=count, folder_parallelism=4).status == "ok"
    finally:
        counter.close()
    steps = len(count.labels)
    assert steps > 4 * FOLDERS_PER_PAIR
    # Every 7th step, plus the first of each kind of step.
    picks = sorted(set(range(1, steps + 1, 7)) | {count.labels.index(label) + 1
                                                   for label in set(count.labels)})
    for n in picks:
        bed = _fresh(dovecot_src, dovecot_dst, tmp_path, f"crash{n}")
        try:
            assert run(bed, folder_parallelism=4).status == "ok"
            change_every_folder(bed)
            with pytest.raises(SimulatedCrash):
                run(bed, hooks=CrashAfter(n), folder_parallelism=4)
            resumed_exactly(bed, (n, count.labels[n - 1]))
        finally:
            bed.close()
