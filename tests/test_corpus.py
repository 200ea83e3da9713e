"""The test corpus generator, the loader and the snapshot comparison.

Why: every "identical after migration" claim in the suite rests on ``snapshot``/``diff``
and on the corpus being deterministic and realistic; this proves both, first without a
server, then against a plain Dovecot and a Maildir++-style one (prefix "INBOX.", ".").
"""

from __future__ import annotations

import email
import hashlib
import statistics
from collections import Counter
from datetime import datetime, timedelta
from email import policy

import pytest

from mxshift.testbed.corpus import (
    CorpusMessage,
    CorpusSpec,
    folder_tree,
    generate,
    total_size,
)
from mxshift.testbed.corpus_load import load, server_folder_name
from mxshift.testbed.snapshot import MessageState, diff, expected, logical_path, snapshot

# Realistic profile, 200 messages, default 10 MiB max: contains a >1 MiB message.
SPEC = CorpusSpec(seed=7, messages=200)
# For the server tests: big enough for duplicates, no-Message-ID and attachments, capped
# at 1.5 MiB to stay fast.
LOAD_SPEC = CorpusSpec(seed=3, messages=150, max_size=1536 * 1024)


@pytest.fixture(scope="module")
def corpus() -> list[CorpusMessage]:
    return list(generate(SPEC))


# ------------------------------------------------------------------------ pure


def test_same_spec_same_bytes_and_different_seed_differs(corpus):
    again = list(generate(SPEC))
    assert again == corpus
    other = list(generate(CorpusSpec(seed=8, messages=30)))
    assert not {m.raw for m in other} & {m.raw for m in corpus}
    it = generate(SPEC)
    assert iter(it) is it


def test_realistic_size_distribution(corpus):
    sizes = [len(m.raw) for m in corpus]
    assert 2 * 1024 <= statistics.median(sizes) <= 20 * 1024
    assert max(sizes) > 1024 * 1024
    assert max(sizes) <= SPEC.max_size + 64 * 1024
    attachments = sum(20 * 1024 < s <= 500 * 1024 for s in sizes)
    assert 0.04 * len(sizes) <= attachments <= 0.2 * len(sizes)
    estimate = total_size(SPEC)
    actual = sum(sizes)
    assert abs(estimate - actual) / actual < 0.15


def test_small_profile_stays_small():
    sizes = [len(m.raw) for m in generate(CorpusSpec(seed=2, messages=100, size_profile="small"))]
    assert min(sizes) >= 800 and max(sizes) <= 5 * 1024


def test_folder_tree_is_nested_closed_and_non_ascii(corpus):
    tree = folder_tree(SPEC)
    assert len(tree) == 17 == len(set(tree))
    assert tree[0] == ("INBOX",)
    for name in ("Sent", "Drafts", "Trash", "Junk", "Archive", "Été", "Проекты", "日本語"):
        assert (name,) in tree
    assert any("&" in part for f in tree for part in f)
    assert max(len(f) for f in tree) >= 3
    for i, f in enumerate(tree):  # parents first
        for depth in range(1, len(f)):
            assert f[:depth] in tree[:i]
    assert {m.folder for m in corpus} <= set(tree)
    assert any(not f[0].isascii() for f in {m.folder for m in corpus})
    bigger = folder_tree(CorpusSpec(folders=25))
    assert len(bigger) == 25 and bigger[:17] == tree and ("Lists",) in bigger
    assert folder_tree(CorpusSpec(folders=1)) == [("INBOX",)]


def test_duplicates_and_missing_message_ids(corpus):
    groups = Counter((m.folder, m.raw) for m in corpus)
    dups = [k for k, n in groups.items() if n > 1]
    assert dups, "expected byte-identical duplicates in the same folder"
    no_mid = [m for m in corpus if email.message_from_bytes(m.raw)["Message-ID"] is None]
    assert 1 <= len(no_mid) <= 0.1 * len(corpus)
    ids = [email.message_from_bytes(m.raw)["Message-ID"] for m in corpus]
    assert all(i is None or (i.startswith("<") and i.endswith(f".{SPEC.seed}@corpus.mxshift.test>"))
               for i in ids)


def test_messages_are_well_formed(corpus):
    kinds = Counter()
    for m in corpus:
        assert b"\n" not in m.raw.replace(b"\r\n", b""), "bare LF"
        assert b"\r" not in m.raw.replace(b"\r\n", b""), "bare CR"
        assert m.raw.endswith(b"\r\n")
        assert max(len(line) for line in m.raw.split(b"\r\n")) <= 998
        msg = email.message_from_bytes(m.raw, policy=policy.default)
        assert not msg.defects
        kinds[msg.get_content_type()] += 1
        for part in msg.walk():
            if not part.is_multipart():
                part.get_payload(decode=True)
        assert m.internaldate.tzinfo is not None and m.internaldate.utcoffset() is not None
        assert m.internaldate.microsecond == 0
        assert 2005 <= m.internaldate.year <= 2025
        sent = msg["Date"].datetime
        assert timedelta(0) < m.internaldate - sent <= timedelta(minutes=10)
        assert "\\Deleted" not in m.flags and "\\Recent" not in m.flags
        assert ("\\Draft" in m.flags) == (m.folder == ("Drafts",))
    assert set(kinds) == {"text/plain", "multipart/alternative", "multipart/mixed"}
    raws = b"".join(m.raw[:4000] for m in corpus)
    assert b"=?utf-8?" in raws  # RFC 2047 subjects / names
    assert b"In-Reply-To: <" in raws and b"References: <" in raws
    seen = sum("\\Seen" in m.flags for m in corpus) / len(corpus)
    assert 0.6 <= seen <= 0.85
    keywords = {f for m in corpus for f in m.flags if not f.startswith("\\")}
    assert keywords & {"$Forwarded", "$Label1", "Important"}


def test_diff_reports_each_kind_of_difference():
    t = datetime.fromisoformat("2020-01-02T03:04:05+01:00")
    m1 = MessageState("a" * 64, 10, frozenset({"\\Seen"}), t)
    m2 = MessageState("b" * 64, 20, frozenset(), t)
    a = {("INBOX",): [m1, m2], ("Sent",): [], ("Old",): []}
    assert diff(a, a) == []
    # Same instant in another offset is the same internaldate.
    same = {("INBOX",): [m1, MessageState("b" * 64, 20, frozenset(),
                                          t.astimezone(datetime.now().astimezone().tzinfo))],
            ("Sent",): [], ("Old",): []}
    assert diff(a, same) == []
    b = {("INBOX",): [MessageState("a" * 64, 10, frozenset({"\\Seen", "\\Flagged"}), t),
                      MessageState("b" * 64, 20, frozenset(), t + timedelta(hours=1)),
                      MessageState("c" * 64, 30, frozenset(), t)],
         ("Sent",): [], ("New",): []}
    out = diff(a, b)
    assert len(out) == 6, out
    text = "\n".join(out)
    assert "missing folder Old" in text and "extra folder New" in text
    assert "INBOX: count differs: 2 != 3" in text
    assert "flags differ" in text and "\\Flagged" in text
    assert "internaldate differs" in text
    assert "extra message sha256=cccccccccccc size=30" in text
    assert diff(b, a) != [] and "missing message sha256=cccccccccccc" in "\n".join(diff(b, a))


def test_logical_path():
    assert logical_path("INBOX", "INBOX.", ".") == ("INBOX",)
    assert logical_path("inbox", "", "/") == ("INBOX",)
    assert logical_path("INBOX.Projects.2024", "INBOX.", ".") == ("Projects", "2024")
    assert logical_path("Projects/2024", "", "/") == ("Projects", "2024")
    assert logical_path("Inbox/Sub", "", "/") == ("INBOX", "Sub")


def test_expected_includes_ancestors():
    msgs = [m for m in generate(CorpusSpec(seed=1, messages=40, size_profile="small"))]
    exp = expected(msgs, folders=[("A", "B", "C")])
    assert exp[("A",)] == [] and exp[("A", "B")] == [] and exp[("A", "B", "C")] == []
    assert sum(len(v) for v in exp.values()) == 40
    for m in msgs:
        assert hashlib.sha256(m.raw).hexdigest() in {s.sha256 for s in exp[m.folder]}


# ---------------------------------------------------------------- server-backed


@pytest.fixture(scope="module")
def load_corpus() -> list[CorpusMessage]:
    return list(generate(LOAD_SPEC))


def _load_fresh(server, messages):
    user, password = server.new_user()
    client = server.connect(user, password)
    n = load(client, messages, folders=folder_tree(LOAD_SPEC))
    assert n == len(messages)
    return client


def test_load_and_snapshot_roundtrip(dovecot_src, dovecot_maildirpp, load_corpus):
    want = expected(load_corpus, folders=folder_tree(LOAD_SPEC))
    plain = _load_fresh(dovecot_src, load_corpus)
    mpp = _load_fresh(dovecot_maildirpp, load_corpus)
    try:
        assert plain.has_capability("MULTIAPPEND")  # the batched path is the one tested
        # Namespace translation really happened.
        names = {name for _f, _d, name in mpp.list_folders()}
        assert "INBOX.Sent" in names and "INBOX.Projects.2024.Q1" in names and "INBOX.Été" in names
        assert server_folder_name(plain, ("Projects", "2024")) == "Projects/2024"
        assert server_folder_name(mpp, ("INBOX",)) == "INBOX"

        snap_plain = snapshot(plain, batch=37)
        snap_mpp = snapshot(mpp)
        assert diff(want, snap_plain) == []
        assert diff(snap_plain, snap_mpp) == []
        assert snap_plain == snap_mpp
        # Snapshots have no side effects: \Seen unchanged after reading every body.
        assert snapshot(plain) == snap_plain

        # One flag changed -> exactly that difference.
        plain.select_folder(server_folder_name(plain, ("INBOX",)))
        uids = plain.search(["UNFLAGGED"])
        target = plain.fetch(uids[0], ["BODY.PEEK[]"])[uids[0]][b"BODY[]"]
        plain.add_flags(uids[0], ["\\Flagged"])
        plain.close_folder()
        changed = diff(snap_mpp, snapshot(plain))
        assert len(changed) == 1, changed
        assert changed[0].startswith("INBOX: message sha256=" + hashlib.sha256(target).hexdigest()[:12])
        assert "flags differ" in changed[0] and "only in b: \\Flagged" in changed[0]
    finally:
        plain.logout()
        mpp.logout()


def test_load_without_multiappend_and_empty_folders(dovecot_nocaps):
    """Plain APPEND (no MULTIAPPEND, no LITERAL+); empty folders of the tree exist."""
    user, password = dovecot_nocaps.new_user()
    client = dovecot_nocaps.connect(user, password)
    try:
        assert not client.has_capability("MULTIAPPEND")
        msgs = list(generate(CorpusSpec(seed=5, messages=12, size_profile="small")))
        tree = folder_tree(CorpusSpec())
        assert load(client, msgs, batch=3, folders=tree) == 12
        snap = snapshot(client)
        assert diff(expected(msgs, folders=tree), snap) == []
        assert set(tree) <= set(snap) and any(v == [] for v in snap.values())
        assert load(client, [], folders=tree) == 0  # re-creating folders is harmless
    finally:
        client.logout()
