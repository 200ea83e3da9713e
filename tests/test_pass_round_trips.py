"""What a pass sends, command by command, on real Dovecots (QRESYNC source): a no-change
pass and a flags-and-deletions delta must not grow back into a command per folder or a
round trip per flag group (issue 3). Commands are counted, not timed.

Counted from login on (CAPABILITY, LOGIN and ENABLE are the connection's, not the pass's):
"round trips" are sends after the last answer was read, so pipelined commands share one.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from harness import Bed, make_message

from mxshift.engine.journal import CrashAt, SimulatedCrash
from mxshift.engine.mailbox_pass import MailboxPass, PassResult
from mxshift.engine.settings import PassSettings
from mxshift.store.imap import ImapStore


class Counted:
    """The commands one side's connections sent after login, and the round trips."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.round_trips = 0
        self.logins = 0

    def verbs(self) -> Counter[str]:
        return Counter(self.commands)

    def watch(self, store: ImapStore) -> ImapStore:
        self.logins += 1
        imap = store._c._imap
        send, readline = imap.send, imap.readline
        state = {"read": True}

        def counting_send(data: bytes) -> None:
            if data.startswith(imap.tagpre):
                words = data.split(b"\r\n", 1)[0].split(b" ")[1:3]
                verb = words[0].decode()
                if verb == "UID":
                    verb += " " + words[1].decode()
                self.commands.append(verb)
                if state["read"]:
                    self.round_trips += 1
                state["read"] = False
            send(data)

        def counting_readline() -> bytes:
            state["read"] = True
            return readline()

        imap.send = counting_send  # type: ignore[method-assign]
        imap.readline = counting_readline  # type: ignore[method-assign]
        return store


def run(bed: Bed, **settings: object) -> tuple[PassResult, Counted, Counted]:
    src, dst = Counted(), Counted()
    assert bed.db is not None
    result = MailboxPass(
        bed.db, bed.mailbox_id,
        source=lambda: src.watch(bed.store(bed.src_server, bed.su, bed.sp)),
        destination=lambda: dst.watch(bed.store(bed.dst_server, bed.du, bed.dp)),
        settings=PassSettings(**settings)).run()  # type: ignore[arg-type]
    return result, src, dst


FOLDERS = [("INBOX",), ("Archive",), ("Work",), ("Work", "2024"), ("Lists",)]


def _mailbox(bed: Bed) -> None:
    for n, folder in enumerate(FOLDERS):
        if folder != ("INBOX",):
            bed.create(*folder)
        bed.put(folder, [make_message(n * 100 + i) for i in range(30)])


@pytest.fixture()
def bed(dovecot_src, dovecot_dst, tmp_path: Path):  # type: ignore[no-untyped-def]
    b = Bed.make(dovecot_src, dovecot_dst, tmp_path / "rt")
    _mailbox(b)
    first, _s, _d = run(b)
    assert first.status == "ok" and first.copied == 150
    yield b
    b.close()


def test_no_change_pass_is_one_listing_of_the_source(bed: Bed) -> None:
    """No STATUS per folder (LIST-STATUS answers them all), no SELECT, no write, and no
    login to the destination at all: the folder map is known and nothing changed."""
    result, src, dst = run(bed)
    assert result.status == "ok" and result.unchanged_folders == len(FOLDERS)
    assert src.commands == ["NAMESPACE", "LIST", "LOGOUT"], src.commands
    assert (dst.logins, dst.commands) == (0, []), dst.commands
    assert bed.differences() == []


def test_a_new_source_folder_maps_folders_with_the_destination(bed: Bed) -> None:
    """The listing differs from the recorded map: the destination is listed (and the new
    folder created there), as every pass did before."""
    bed.create("Brand new")
    bed.put(("Brand new",), [make_message(999)])
    result, src, dst = run(bed)
    assert (result.status, result.copied) == ("ok", 1)
    assert dst.logins == 1 and dst.commands[:2] == ["NAMESPACE", "LIST"], dst.commands
    assert bed.differences() == []
    quiet, _s, dst2 = run(bed)
    assert quiet.copied == 0 and dst2.logins == 0


def test_flags_and_deletions_cost_one_store_round_trip_per_folder(bed: Bed) -> None:
    """Mixed flag changes in two folders (four (added, removed) groups in INBOX) and two
    deletions: per changed folder one EXAMINE on the source, one SELECT, one round trip
    for every STORE and one UID EXPUNGE on the destination; untouched folders are not
    selected at all."""
    c = bed.source()
    c.select_folder("INBOX")
    uids = sorted(c.search("ALL"))
    c.add_flags(uids[0:3], ["\\Seen"])
    c.add_flags(uids[3:5], ["\\Seen", "\\Flagged"])
    c.add_flags(uids[5:6], ["$Later"])
    c.add_flags(uids[6:8], ["\\Answered"])
    c.add_flags(uids[8:10], ["\\Deleted"])
    c.expunge()
    c.select_folder(bed.folder("src", "Work", "2024"))
    work = sorted(c.search("ALL"))
    c.add_flags(work[:4], ["\\Flagged"])

    result, src, dst = run(bed)
    assert (result.status, result.flags_updated, result.deleted) == ("ok", 12, 2), result
    assert result.unchanged_folders == len(FOLDERS) - 2
    assert src.verbs() == Counter({"NAMESPACE": 1, "LIST": 1, "EXAMINE": 2, "LOGOUT": 1}), \
        src.commands
    dst_verbs = dst.verbs()
    assert dst_verbs["SELECT"] == 2 and dst_verbs["UID EXPUNGE"] == 1, dst.commands
    # INBOX: +\Seen, +\Flagged, +$Later, +\Answered, +\Deleted; Work/2024: +\Flagged
    assert dst_verbs["UID STORE"] == 6, dst.commands
    # NAMESPACE, LIST, then per folder SELECT + STOREs (one trip) (+ EXPUNGE), LOGOUT
    assert dst.round_trips == 2 + (2 + 1) + 2 + 1, (dst.round_trips, dst.commands)
    assert "STATUS" not in src.verbs() and "UID FETCH" not in src.verbs()
    assert bed.differences() == []

    again, src2, dst2 = run(bed)  # and the next pass is back to a listing
    assert again.flags_updated == 0 and again.unchanged_folders == len(FOLDERS)
    assert src2.commands == ["NAMESPACE", "LIST", "LOGOUT"]
    assert dst2.logins == 0


def test_pipelined_stores_resume_exact_after_a_crash_at_every_step(
        dovecot_src, dovecot_dst, tmp_path: Path) -> None:
    """Killed at each checkpoint of a flags-and-deletions pass (intents journalled, STOREs
    sent, EXPUNGE sent, settled), the next pass ends exact and a third changes nothing."""
    def prepare(n: int) -> tuple[Bed, list[int]]:
        b = Bed.make(dovecot_src, dovecot_dst, tmp_path / f"crash-{n}")
        b.put(("INBOX",), [make_message(i) for i in range(12)])
        b.run()
        c = b.source()
        c.select_folder("INBOX")
        uids = sorted(c.search("ALL"))
        c.add_flags(uids[:3], ["\\Seen"])
        c.add_flags(uids[3:5], ["\\Flagged", "$X"])
        c.add_flags(uids[10:], ["\\Deleted"])
        c.expunge()
        return b, uids

    probe, _ = prepare(0)
    counter = CrashAt(None)
    probe.run(hooks=counter)
    labels = counter.labels
    probe.close()
    assert "store flags" in labels and "expunge" in labels, labels
    assert labels.index("journal pending flags and deletions") < labels.index("store flags") \
        < labels.index("expunge") < labels.index("journal folder synced")
    for step in range(len(labels)):
        b, _uids = prepare(step + 1)
        try:
            with pytest.raises(SimulatedCrash):
                b.run(hooks=CrashAt(step))
            resumed = b.run()
            assert resumed.status == "ok", (labels[step], resumed)
            assert b.differences() == [], labels[step]
            quiet = b.run()
            assert (quiet.flags_updated, quiet.deleted, quiet.copied) == (0, 0, 0), labels[step]
        finally:
            b.close()
