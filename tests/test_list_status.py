"""LIST-STATUS (RFC 5819): the parser on recorded responses, and the store against Dovecot.

The recorded responses are what Dovecot 2.3 sent for ``LIST "" "*" RETURN (SPECIAL-USE
CHILDREN STATUS (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ))``, as imaplib filed them;
the literal case is the shape imaplib gives a name sent as ``{n}``.
"""

from __future__ import annotations

import pytest
from harness import Bed, make_message

from mxshift.mapping import RemoteFolder
from mxshift.store import list_status
from mxshift.store.base import FolderStatus

# Recorded from the testbed's Dovecot (folder names as the server sent them).
RECORDED = {
    "LIST": [b'(\\HasNoChildren \\Archive) "/" Archive',
             b'(\\Noselect \\HasChildren) "/" P',
             b'(\\HasNoChildren) "/" P/Q',
             b'(\\HasNoChildren) "/" "Say \\"hi\\""',
             b'(\\HasNoChildren) "/" R&AOk-',
             b'(\\HasNoChildren \\Sent) "/" Sent',
             b'(\\HasNoChildren) "/" 2023',
             b'(\\HasNoChildren) "/" INBOX'],
    "STATUS": [b'Archive (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 1795546529 HIGHESTMODSEQ 1)',
               b'P/Q (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 1795546528 HIGHESTMODSEQ 1)',
               b'"Say \\"hi\\"" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 1795546527 HIGHESTMODSEQ 1)',
               b'R&AOk- (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 1795546526 HIGHESTMODSEQ 1)',
               b'Sent (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 1795546524 HIGHESTMODSEQ 1)',
               b'2023 (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 1795546523 HIGHESTMODSEQ 1)',
               b'INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 1795546525 HIGHESTMODSEQ 2)'],
}


def test_recorded_dovecot_answer_gives_every_folder_and_status() -> None:
    folders, statuses = list_status.parse_list_status(RECORDED)
    by_name = {f.name: f.flags for f in folders}
    assert by_name == {
        "Archive": {"\\HasNoChildren", "\\Archive"}, "P": {"\\Noselect", "\\HasChildren"},
        "P/Q": {"\\HasNoChildren"}, 'Say "hi"': {"\\HasNoChildren"},
        "R&AOk-": {"\\HasNoChildren"}, "Sent": {"\\HasNoChildren", "\\Sent"},
        "2023": {"\\HasNoChildren"}, "INBOX": {"\\HasNoChildren"}}
    assert "P" not in statuses  # \Noselect: no STATUS, asked alone if ever needed
    assert statuses["INBOX"] == FolderStatus(uidvalidity=1795546525, uidnext=2, messages=1,
                                             highestmodseq=2)
    assert statuses['Say "hi"'].uidvalidity == 1795546527
    assert statuses["2023"].uidvalidity == 1795546523  # a numeric name stays a name


def test_literal_names_and_missing_items() -> None:
    untagged = {
        "LIST": [(b'() "/" {5}', b"ab cd"), b"", b'() "/" Plain'],
        "STATUS": [(b"{5}", b"ab cd"), b" (MESSAGES 3 UIDNEXT 9 UIDVALIDITY 7)",
                   b"Plain (MESSAGES 3 UIDNEXT 9)"],  # no UIDVALIDITY: left out
    }
    folders, statuses = list_status.parse_list_status(untagged)
    assert folders == [RemoteFolder("ab cd", frozenset()), RemoteFolder("Plain", frozenset())]
    assert statuses == {"ab cd": FolderStatus(uidvalidity=7, uidnext=9, messages=3)}


def test_status_for_a_folder_not_listed_is_dropped_and_garbage_is_refused() -> None:
    folders, statuses = list_status.parse_list_status(
        {"LIST": [b'() "/" A'], "STATUS": [b"B (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 3)"]})
    assert [f.name for f in folders] == ["A"] and statuses == {}
    with pytest.raises(list_status.ListStatusError):
        list_status.parse_list_status({"LIST": [b'NIL "/" A'], "STATUS": []})
    with pytest.raises(list_status.ListStatusError):
        list_status.parse_statuses([b"A (MESSAGES 1 UIDNEXT)"])


def test_command_asks_for_what_a_plain_list_gives() -> None:
    full = frozenset({"CONDSTORE", "SPECIAL-USE", "CHILDREN", "LIST-EXTENDED", "LIST-STATUS"})
    assert list_status.list_command_args(full) == (
        '""', '"*"', "RETURN",
        "(SPECIAL-USE CHILDREN STATUS (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ))")
    assert list_status.list_command_args(frozenset({"LIST-STATUS"}))[-1] == \
        "(STATUS (MESSAGES UIDNEXT UIDVALIDITY))"


def test_store_answers_like_list_and_status_on_dovecot(dovecot_src, dovecot_dst,
                                                       tmp_path) -> None:
    """One command, the same folders (flags incl. special-use) and statuses as a plain
    LIST plus one STATUS per folder; disabled, it is the plain LIST and no statuses."""
    bed = Bed.make(dovecot_src, dovecot_dst, tmp_path / "ls")
    try:
        for name in ("2023", "Sent", "Archive", 'Say "hi"', "P/Q", "R&AOk-"):
            bed.source().create_folder(name)
        bed.put(("INBOX",), [make_message(i) for i in range(3)])
        store = bed.store(bed.src_server, bed.su, bed.sp)
        try:
            assert "LIST-STATUS" in store.capabilities
            folders, statuses = store.list_folders_status()
            assert sorted(folders, key=lambda f: f.name) == sorted(
                store.list_folders(), key=lambda f: f.name)
            selectable = {f.name for f in folders if "\\Noselect" not in f.flags}
            assert set(statuses) == selectable and "P" not in statuses
            for name, st in statuses.items():
                alone = store.status(name)
                assert (st.uidvalidity, st.uidnext, st.messages, st.highestmodseq) == (
                    alone.uidvalidity, alone.uidnext, alone.messages, alone.highestmodseq)
            assert statuses["INBOX"].messages == 3
            assert "\\Sent" in {f.name: f.flags for f in folders}["Sent"]
        finally:
            store.close()
        plain = bed.store(bed.src_server, bed.su, bed.sp)
        try:
            plain.capabilities = plain.capabilities - {"LIST-STATUS"}  # disable_capabilities
            folders, statuses = plain.list_folders_status()
            assert statuses == {} and len(folders) == 8
        finally:
            plain.close()
    finally:
        bed.close()
