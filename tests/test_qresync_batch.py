"""QRESYNC reads of several folders in one round trip (store/qresync_batch.py), against a
real Dovecot: each folder's answer equals what ``select_changes`` reads for it alone; a
refused folder, or new mail the request did not ask for, leaves that folder to be read on
its own without disturbing the others; the connection stays in step (usable at once),
also across several bursts; and the pass's pipelined scan stays exact."""

from __future__ import annotations

import imaplib

import pytest

from mxshift.store import qresync_batch
from mxshift.store.auth import Credentials
from mxshift.store.imap import ImapStore
from mxshift.store.qresync_batch import ChangesRequest
from mxshift.testbed.dovecot import DovecotServer


def _store(server: DovecotServer, user: str, pw: str) -> ImapStore:
    return ImapStore.connect(host=server.host, port=server.port, security="none",
                             credentials=Credentials(user, pw))


@pytest.fixture
def boxes(dovecot_src: DovecotServer):  # type: ignore[no-untyped-def]
    """Five folders of 20 messages, their saved state, then changes on each."""
    user, pw = dovecot_src.new_user("qb")
    c = dovecot_src.connect(user, pw)
    store = _store(dovecot_src, user, pw)
    names = [f"B{i}" for i in range(5)]
    saved = {}
    for name in names:
        c.create_folder(name)
        for i in range(20):
            c.append(name, f"Subject: {name} m{i}\r\nMessage-ID: <{name}.{i}@x>\r\n\r\n"
                           f"body {i}\r\n".encode(), flags=["\\Seen"])
        st = store.select(name, readonly=True)
        saved[name] = (st.uidvalidity, st.highestmodseq)
    for n, name in enumerate(names):
        c.select_folder(name)
        c.add_flags([2 + n], ["$Forwarded"])
        c.delete_messages([5 + n])
        c.expunge()
        for k in range(n):  # folder B<n> gets n new messages
            c.append(name, f"Subject: new {k}\r\nMessage-ID: <{name}.new{k}@x>\r\n\r\n"
                           "new\r\n".encode(), flags=["$Label1"])
    yield store, names, saved
    c.logout()
    store.close()


def _request(name: str, saved: dict, first_new: int | None = 21) -> ChangesRequest:  # type: ignore[type-arg]
    uv, modseq = saved[name]
    return ChangesRequest(name, uv, modseq, frozenset(range(1, 21)), first_new)


def test_each_answer_equals_the_folder_read_alone(boxes, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store, names, saved = boxes
    sent: list[bytes] = []
    real_send = imaplib.IMAP4.send
    reads_before: list[int] = []

    def spy(self, data):  # type: ignore[no-untyped-def]
        sent.append(data)
        return real_send(self, data)

    monkeypatch.setattr(imaplib.IMAP4, "send", spy)
    made: list[str] = []

    def requests():  # type: ignore[no-untyped-def]
        for name in names:  # a generator: each folder goes out as it is made
            made.append(name)
            reads_before.append(len(sent))
            yield _request(name, saved)

    together = store.select_changes_many(requests())
    monkeypatch.setattr(imaplib.IMAP4, "send", real_send)
    # two commands per folder, all sent before the first answer was read
    assert [d.split(b" ")[1] for d in sent] == [b"EXAMINE", b"UID"] * 5
    assert reads_before == [0, 2, 4, 6, 8]
    assert made == names
    for n, (name, got) in enumerate(zip(names, together)):
        alone = store.select_changes(name, uidvalidity=saved[name][0],
                                     modseq=saved[name][1], known_uids=range(1, 21))
        assert got is not None, name
        assert got.vanished == alone.vanished == {5 + n}
        assert got.changed == alone.changed
        assert set(got.added) == set(alone.added) == set(range(21, 21 + n))
        assert got.added == alone.added
        assert got.status == alone.status
        assert got.trusted


def test_a_refused_folder_and_unasked_new_mail_are_read_alone(boxes) -> None:  # type: ignore[no-untyped-def]
    store, names, saved = boxes
    asked = [_request("B1", saved),
             ChangesRequest("No such folder", 1, 1, frozenset({1}), 2),
             _request("B2", saved, first_new=None),  # two new messages it did not ask for
             _request("B3", saved)]
    got = store.select_changes_many(asked)
    assert got[0] is not None and set(got[0].added) == {21}
    assert got[1] is None  # refused: the pass scans it alone and records its error
    assert got[2] is None  # incomplete: read alone
    assert got[3] is not None and set(got[3].added) == {21, 22, 23}
    assert got[3].vanished == {8}
    # the connection is in step and the last folder is selected, as select_changes leaves it
    assert [m.uid for m in store.fetch_meta([21, 22, 23])] == [21, 22, 23]
    assert store.select("B2", readonly=True).messages == 21


def test_a_failed_last_folder_leaves_nothing_selected(boxes) -> None:  # type: ignore[no-untyped-def]
    store, names, saved = boxes
    got = store.select_changes_many([_request("B1", saved),
                                     ChangesRequest("Nope", 1, 1, frozenset({1}), 2)])
    assert got[0] is not None and got[1] is None
    assert store.select("B4", readonly=True).messages == 23  # usable at once


def test_many_folders_go_in_several_bursts(boxes, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store, names, saved = boxes
    monkeypatch.setattr(qresync_batch, "BURST", 2)
    got = store.select_changes_many(_request(n, saved) for n in names)
    assert [len(g.added) if g else None for g in got] == [0, 1, 2, 3, 4]
    assert store.select_changes_many([]) == []
    assert len(store.fetch_meta([1])) == 1
