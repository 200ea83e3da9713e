"""Delta passes cost what changed: CONDSTORE reads, STATUS-only skips, and the way back
to a full read whenever a folder was not left fully in step."""

from __future__ import annotations

from sqlalchemy import select

from harness import Bed, make_message
from mxshift.state.models import FolderPair


def _modes(bed: Bed) -> dict[str, str | None]:
    assert bed.db is not None
    with bed.db.session() as s:
        return {p.display_name: p.sync_mode for p in s.scalars(select(FolderPair))}


def _fill(bed: Bed) -> None:
    bed.create("Work")
    bed.create("Home")
    bed.put(("INBOX",), [make_message(i) for i in range(5)], flags=["\\Seen"])
    bed.put(("Work",), [make_message(i) for i in range(10, 14)])
    bed.put(("Home",), [make_message(20)])


def test_unchanged_folders_are_not_selected_and_changed_ones_read_incrementally(
        dovecot_src, dovecot_dst, tmp_path) -> None:
    bed = Bed.make(dovecot_src, dovecot_dst, tmp_path / "bed")
    try:
        _fill(bed)
        first = bed.run()
        assert first.copied == 10 and _modes(bed)["Work"] == "full-scan"
        idle = bed.run()
        assert idle.unchanged_folders == 3, idle  # STATUS alone said: nothing changed
        c = bed.source()
        c.select_folder("Work")
        c.add_flags(sorted(c.search("ALL"))[:2], ["\\Flagged"])
        bed.put(("Work",), [make_message(15)])
        delta = bed.run()
        assert (delta.copied, delta.flags_updated, delta.unchanged_folders) == (1, 2, 2), delta
        assert _modes(bed)["Work"] == "qresync"  # dovecot_src offers QRESYNC (issue 3)
        assert bed.differences() == []
    finally:
        bed.close()


def test_held_back_deletions_are_reconsidered_although_status_is_unchanged(
        dovecot_src, dovecot_dst, tmp_path) -> None:
    bed = Bed.make(dovecot_src, dovecot_dst, tmp_path / "bed")
    try:
        bed.put(("INBOX",), [make_message(i) for i in range(20)])
        bed.run()
        c = bed.source()
        c.select_folder("INBOX")
        c.delete_messages(c.search("ALL"))
        c.expunge()
        blocked = bed.run(deletion_floor=5)
        assert blocked.deleted == 0 and blocked.status == "partial"
        still = bed.run(deletion_floor=5)
        assert still.unchanged_folders == 0 and still.deleted == 0  # read again, still held
        allowed = bed.run(deletion_floor=5, allow_mass_delete=True)
        assert allowed.deleted == 20, allowed
        assert bed.differences() == []
        assert bed.run().unchanged_folders == 1
    finally:
        bed.close()


def test_condstore_can_be_switched_off_per_server(dovecot_src, dovecot_dst, tmp_path) -> None:
    bed = Bed.make(dovecot_src, dovecot_dst, tmp_path / "bed")
    original = bed.store
    try:
        _fill(bed)
        bed.store = lambda server, user, pw: _without_condstore(original, server, user, pw)  # type: ignore[method-assign]
        bed.run()
        idle = bed.run()
        assert idle.unchanged_folders == 0  # no CONDSTORE: every folder read in full
        assert set(_modes(bed).values()) == {"full-scan"}
        assert bed.differences() == []
    finally:
        bed.close()


def _without_condstore(original, server, user, pw):  # type: ignore[no-untyped-def]
    from mxshift.store.auth import Credentials
    from mxshift.store.imap import ImapStore

    return ImapStore.connect(host=server.host, port=server.port, security="none",
                             credentials=Credentials(user, pw),
                             disabled=frozenset({"CONDSTORE", "QRESYNC"}))
