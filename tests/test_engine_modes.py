"""The scenario table's delta scenarios against a source offering exactly QRESYNC
(+CONDSTORE, ``dovecot_src``), exactly CONDSTORE (``dovecot_condstore``) and neither
(``dovecot_nocaps``), asserting the mode each folder was read in; plus what the modes are
for: a QRESYNC delta reads only what changed, expunges arrive as VANISHED (EARLIER), a
disabled capability really falls back, and an interrupted pass still ends exact.

Runtime: normal + re-run for every delta scenario in every mode; crash-at-every-step
runs in full for QRESYNC in test_engine_scenarios.py (its default pair), and here for a
subset (deletions, move, everything at once) with a stride of 3 steps in the other
modes; the interrupted QRESYNC pass below crashes at every step.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path

import pytest
from harness import Bed, make_message
from sqlalchemy import select
from test_engine_scenarios import (SCENARIOS, Scenario, _expect, _no_change, _prepare,
                                   crash_at_every_step)
from test_qresync import count_reads

from mxshift.engine.journal import CrashAt, Hooks, SimulatedCrash
from mxshift.engine.mailbox_pass import MailboxPass, PassResult
from mxshift.engine.settings import PassSettings
from mxshift.state.models import FolderPair
from mxshift.store.auth import Credentials
from mxshift.store.imap import ImapStore

SOURCES = {"qresync": "dovecot_src", "condstore": "dovecot_condstore",
           "full-scan": "dovecot_nocaps"}
DELTA = [sc for sc in SCENARIOS if sc.change is not None]
CRASH = [sc for sc in DELTA if sc.name in ("deletions", "move", "everything at once")]
# Scenarios whose only changed folders are new to the pass (renamed) or have a new
# UIDVALIDITY: nothing to read incrementally, so every synced folder is a full scan.
NO_COMPARABLE_CHANGE = {"source UIDVALIDITY changed", "folder renamed"}
CRASH_STRIDE = 3
_counter = itertools.count()


def _bed(request: pytest.FixtureRequest, mode: str, tmp_path: Path, name: str) -> Bed:
    src = request.getfixturevalue(SOURCES[mode])
    dst = request.getfixturevalue("dovecot_dst")
    return Bed.make(src, dst, tmp_path / f"{name}-{next(_counter)}")


PairState = tuple[datetime | None, int | None, int | None, str | None, str]


def _pairs(bed: Bed) -> dict[int, PairState]:
    assert bed.db is not None
    with bed.db.session() as s:
        return {p.id: (p.last_synced_at, p.source_highestmodseq, p.source_uidvalidity,
                       p.sync_mode, p.display_name or p.source_name)
                for p in s.scalars(select(FolderPair))}


def _check_modes(before: dict[int, PairState], after: dict[int, PairState],
                 mode: str) -> list[str]:
    """Every folder the pass synced was read in ``mode``, unless it had nothing to compare
    with (new folder, UIDVALIDITY changed, not in step): then in "full-scan". Returns the
    names of the folders read in ``mode``."""
    in_mode = []
    for pid, (synced, _ms, uv, got, name) in after.items():
        old = before.get(pid)
        if old is not None and old[0] == synced:
            continue  # not synced by this pass (unchanged, skipped on STATUS)
        comparable = old is not None and old[1] is not None and old[2] == uv
        want = mode if comparable else "full-scan"
        assert got == want, f"{name}: read in {got}, expected {want}"
        if got == mode:
            in_mode.append(name)
    return in_mode


@pytest.mark.parametrize("mode", list(SOURCES))
@pytest.mark.parametrize("sc", DELTA, ids=str)
def test_delta_scenarios_per_mode(sc: Scenario, mode: str, request, tmp_path) -> None:
    bed = _bed(request, mode, tmp_path, "mode")
    try:
        _prepare(bed, sc)
        before = _pairs(bed)
        result = bed.run(**sc.settings)
        assert result.status in ("ok", "partial"), result
        _expect(bed, sc)
        if sc.check_result:
            sc.check_result(result)
        in_mode = _check_modes(before, _pairs(bed), mode)
        if sc.name not in NO_COMPARABLE_CHANGE:
            assert in_mode, f"no folder was read in {mode}"
        again = bed.run(**sc.settings)
        _no_change(again)
        _expect(bed, sc)
    finally:
        bed.close()


@pytest.mark.parametrize("mode", ["condstore", "full-scan"])
@pytest.mark.parametrize("sc", CRASH, ids=str)
def test_crash_at_every_step_per_mode(sc: Scenario, mode: str, request, tmp_path) -> None:
    crash_at_every_step(lambda name: _bed(request, mode, tmp_path, name), sc, CRASH_STRIDE)


# -- what QRESYNC is for ---------------------------------------------------------------
def _run_counted(bed: Bed, disabled: frozenset[str] = frozenset(),
                 hooks: Hooks | None = None) -> tuple[PassResult, dict[str, int]]:
    """One pass whose source connection counts what it reads, with ``disabled`` as a
    project's ``disable_capabilities`` would pass it."""
    reads: list[dict[str, int]] = []

    def source() -> ImapStore:
        store = ImapStore.connect(host=bed.src_server.host, port=bed.src_server.port,
                                  security="none", credentials=Credentials(bed.su, bed.sp),
                                  disabled=disabled)
        reads.append(count_reads(store))  # from after login on
        return store

    assert bed.db is not None
    result = MailboxPass(bed.db, bed.mailbox_id, source=source,
                         destination=lambda: bed.store(bed.dst_server, bed.du, bed.dp),
                         settings=PassSettings(), hooks=hooks).run()
    total: dict[str, int] = {}
    for c in reads:
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    return result, total


def _change(bed: Bed, round_: int) -> None:
    """2 flag changes, 1 deletion, 1 new message in a 300-message INBOX."""
    c = bed.source()
    c.select_folder("INBOX")
    uids = sorted(c.search("ALL"))
    c.add_flags(uids[10 * round_:10 * round_ + 2], ["$Forwarded"])
    c.delete_messages(uids[-1:])
    c.expunge()
    bed.put(("INBOX",), [make_message(1000 + round_)])


def _modes(bed: Bed) -> dict[str, str | None]:
    return {name: mode for (_s, _m, _u, mode, name) in _pairs(bed).values()}


def test_qresync_delta_reads_only_what_changed(dovecot_src, dovecot_dst, tmp_path) -> None:
    bed = Bed.make(dovecot_src, dovecot_dst, tmp_path / "reads")
    try:
        bed.put(("INBOX",), [make_message(i, body="x" * 200) for i in range(300)],
                flags=["\\Seen"])
        bed.create("Other")
        bed.put(("Other",), [make_message(500)])
        first, _ = _run_counted(bed)
        assert first.copied == 301

        measured = {}
        for round_, (disabled, mode) in enumerate([
                (frozenset(), "qresync"), (frozenset({"QRESYNC"}), "condstore"),
                (frozenset({"CONDSTORE"}), "full-scan")]):
            _change(bed, round_)
            result, reads = _run_counted(bed, disabled)
            assert (result.copied, result.flags_updated, result.deleted) == (1, 2, 1), result
            assert _modes(bed)["INBOX"] == mode, (disabled, _modes(bed))
            assert bed.differences() == []
            measured[mode] = reads
        q, c, f = measured["qresync"], measured["condstore"], measured["full-scan"]
        # QRESYNC: 2 changed + 1 new (flags with its identity) + 1 new (body) FETCH
        # lines, and the expunge as VANISHED (EARLIER); never a FETCH or SEARCH of the
        # folder.
        assert q["FETCH"] == 4, measured
        assert q["VANISHED (EARLIER)"] == 1, measured
        assert c["VANISHED (EARLIER)"] == 0 and f["VANISHED (EARLIER)"] == 0
        assert f["FETCH"] >= 300, measured  # every message of the folder, every pass
        assert q["bytes"] < c["bytes"] < f["bytes"], measured
        assert q["bytes"] * 4 < f["bytes"], measured
        print(f"\nsource bytes read by a delta pass over 300 messages: {measured}")
    finally:
        bed.close()


def test_a_delta_flag_plan_reads_the_changed_messages_rows_not_the_folders(
        dovecot_src, dovecot_dst, tmp_path, monkeypatch) -> None:
    """The journal side of "cost follows the changes": with QRESYNC or CONDSTORE the
    flag plan reads the rows of the messages the source reported changed (2 flag
    changes, 1 new), not the folder's 300. Before, a delta read the folder's rows twice
    (for the scan, and again after the copy's writes voided them). With QRESYNC the scan
    too reads only the rows of the UIDs the answer names (the journalled UIDs come as
    runs, Journal.uid_runs); CONDSTORE's scan still reads every row once (its answer
    has no VANISHED: the folder's UIDs are compared with the journal's). A full scan has
    no such list and compares every row."""
    from mxshift.engine import journal as journal_module

    read: list[int] = []
    real = journal_module._known_rows

    def counting(rows: list[tuple]) -> dict:
        read.append(len(rows))
        return real(rows)

    monkeypatch.setattr(journal_module, "_known_rows", counting)
    bed = Bed.make(dovecot_src, dovecot_dst, tmp_path / "rows")
    try:
        bed.put(("INBOX",), [make_message(i, body="x" * 200) for i in range(300)],
                flags=["\\Seen"])
        _run_counted(bed)
        for round_, (disabled, mode) in enumerate([
                (frozenset(), "qresync"), (frozenset({"QRESYNC"}), "condstore"),
                (frozenset({"CONDSTORE"}), "full-scan")]):
            _change(bed, round_)
            read.clear()
            result, _reads = _run_counted(bed, disabled)
            assert (result.copied, result.flags_updated, result.deleted) == (1, 2, 1)
            assert _modes(bed)["INBOX"] == mode and bed.differences() == []
            if mode == "full-scan":
                assert sum(read) >= 2 * 299, (mode, read)  # every row, as before
            elif mode == "condstore":
                # one read of the folder's rows (the scan's), then the changed ones only
                assert sorted(read) == [3, 300], (mode, read)
            else:
                # QRESYNC: the journalled UIDs as runs (no rows), then only the rows of
                # the UIDs the answer names (2 changed, 1 vanished; 1 new has none)
                assert read and max(read) <= 3 and sum(read) < 20, (mode, read)
    finally:
        bed.close()


@pytest.mark.parametrize("mode", ["qresync", "condstore"])
def test_a_destination_folder_recreated_without_flags_gets_them_back_in_a_delta(
        mode: str, request, tmp_path) -> None:
    """The destination's folder is deleted and re-created with the same messages but no
    flags (a restore that lost them), and the source gets one new message: the pass
    re-adopts the copies by fingerprint with the destination's (empty) flags, so its
    flag plan must compare every message, not only those the source reported changed
    (FolderScan.changed is dropped on a destination UIDVALIDITY change)."""
    bed = _bed(request, mode, tmp_path, "restored")
    try:
        bed.create("Work")
        bed.put(("Work",), [make_message(i) for i in range(6)], flags=["\\Seen", "$Done"])
        first, _ = _run_counted(bed)
        assert first.copied == 6
        c = bed.dest()
        name = bed.folder("dst", "Work")
        c.select_folder(name)
        data = c.fetch(c.search("ALL"), ["BODY.PEEK[]", "INTERNALDATE"])
        c.close_folder()
        c.delete_folder(name)
        c.create_folder(name)
        for item in data.values():
            c.append(name, item[b"BODY[]"], flags=[], msg_time=item[b"INTERNALDATE"])
        bed.put(("Work",), [make_message(50)])
        result, _ = _run_counted(bed)
        assert result.status == "ok", result.error
        assert _modes(bed)["Work"] == mode
        assert bed.differences() == []  # flags included
    finally:
        bed.close()


def test_disabled_qresync_falls_back_to_condstore_and_stays_exact(
        dovecot_src, dovecot_dst, tmp_path) -> None:
    bed = Bed.make(dovecot_src, dovecot_dst, tmp_path / "disabled")
    try:
        bed.put(("INBOX",), [make_message(i) for i in range(20)])
        _run_counted(bed, frozenset({"QRESYNC"}))
        _change(bed, 0)
        result, reads = _run_counted(bed, frozenset({"QRESYNC"}))
        assert _modes(bed)["INBOX"] == "condstore" and reads["VANISHED (EARLIER)"] == 0
        assert result.deleted == 1 and bed.differences() == []
        # and back on: the modseq saved by CONDSTORE is good for QRESYNC
        _change(bed, 1)
        result, reads = _run_counted(bed)
        assert _modes(bed)["INBOX"] == "qresync" and reads["VANISHED (EARLIER)"] == 1
        assert result.deleted == 1 and bed.differences() == []
    finally:
        bed.close()


def test_interrupted_qresync_pass_resumes_exact(dovecot_src, dovecot_dst, tmp_path) -> None:
    """Killed at every checkpoint of a QRESYNC delta: the resumed pass (QRESYNC again, from
    the last saved MODSEQ) ends exact, with no duplicate, and says it used QRESYNC."""
    def prepare() -> Bed:
        bed = Bed.make(dovecot_src, dovecot_dst, tmp_path / f"int-{next(_counter)}")
        bed.put(("INBOX",), [make_message(i) for i in range(12)])
        bed.create("Archive")
        bed.put(("Archive",), [make_message(i) for i in range(50, 53)])
        assert bed.run().status == "ok"
        _change(bed, 0)
        c = bed.source()
        c.select_folder("INBOX")
        c.move(sorted(c.search("ALL"))[:1], "Archive")
        return bed

    probe_bed = prepare()
    try:
        probe = CrashAt(None)
        probe_bed.run(hooks=probe)
        assert _modes(probe_bed)["INBOX"] == "qresync"
    finally:
        probe_bed.close()
    for n in range(probe.count):
        bed = prepare()
        try:
            with pytest.raises(SimulatedCrash):
                bed.run(hooks=CrashAt(n))
            bed.run()
            assert bed.differences() == [], f"crash at {n} ({probe.labels[n]})"
            assert set(bed.journal_states()) <= {"copied"}
            assert _modes(bed)["INBOX"] == "qresync", (n, _modes(bed))
            _no_change(bed.run())
        finally:
            bed.close()
