"""Scenario table in the style of mbsync's tests: every scenario runs four ways.

1. normal: the tested pass, then the expected state is checked on the real servers;
2. re-run: a second pass must change nothing;
3. crash at every step: the tested pass is killed at each checkpoint in turn (after
   every journal commit and every protocol write), then resumed: the result must be
   exactly the expected state, with no duplicate and nothing missing;
4. lost state: the state database is deleted and the pass run again: copies already on
   the destination are adopted, nothing is duplicated.

The expected state is, unless a scenario says otherwise, "the destination mirrors the
source" (folder tree, bytes, flags incl. keywords, INTERNALDATE), compared from the
servers by :func:`mxshift.testbed.snapshot.diff`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

import pytest

from mxshift.engine.journal import CrashAt, SimulatedCrash
from mxshift.engine.mailbox_pass import PassResult
from harness import Bed, make_message
from mxshift.testbed.corpus import CorpusSpec, folder_tree, generate
from mxshift.testbed.corpus_load import load

_counter = itertools.count()


@dataclass
class Scenario:
    name: str
    setup: Callable[[Bed], None]                     # source (and destination) before anything
    change: Callable[[Bed], None] | None = None      # after a first pass; None: test the first pass
    expect: Callable[[Bed], None] | None = None      # default: destination mirrors source
    check_result: Callable[[PassResult], None] | None = None  # normal run only
    settings: dict = field(default_factory=dict)
    baseline_settings: dict = field(default_factory=dict)
    crash_stride: int = 1

    def __str__(self) -> str:
        return self.name


def mirror(bed: Bed) -> None:
    assert bed.differences() == []
    assert set(bed.journal_states()) <= {"copied", "skipped"}


# -- scenario building blocks ------------------------------------------------------------
def base_tree(bed: Bed) -> None:
    bed.create("Projects")
    bed.create("Projects", "2024")
    bed.create("Été")
    bed.put(("INBOX",), [make_message(i) for i in range(4)], flags=["\\Seen"])
    bed.put(("INBOX",), [make_message(4, message_id=False)], flags=["$Label1"])
    bed.put(("Projects", "2024"), [make_message(i) for i in range(10, 13)],
            flags=["\\Flagged", "Important"])
    bed.put(("Été",), [make_message(20), make_message(20)])  # byte-identical duplicates


def add_new(bed: Bed) -> None:
    bed.put(("INBOX",), [make_message(i) for i in range(30, 33)])
    bed.put(("Projects", "2024"), [make_message(33, message_id=False)], flags=["\\Answered"])


def change_flags(bed: Bed) -> None:
    c = bed.source()
    c.select_folder(bed.folder("src", "INBOX"))
    uids = sorted(c.search("ALL"))
    c.add_flags(uids[:2], ["\\Flagged", "$Forwarded"])
    c.remove_flags(uids[1:3], ["\\Seen"])
    c.select_folder(bed.folder("src", "Projects", "2024"))
    c.remove_flags(sorted(c.search("ALL"))[:1], ["Important"])


def delete_some(bed: Bed) -> None:
    c = bed.source()
    c.select_folder(bed.folder("src", "INBOX"))
    uids = sorted(c.search("ALL"))
    c.delete_messages(uids[:2])
    c.expunge()


def move(c, uids: list[int], target: str) -> None:  # type: ignore[no-untyped-def]
    """What a mail client does: MOVE where offered, else COPY + delete + expunge."""
    if c.has_capability("MOVE"):
        c.move(uids, target)
    else:
        c.copy(uids, target)
        c.delete_messages(uids)
        c.expunge()


def move_one(bed: Bed) -> None:
    c = bed.source()
    c.select_folder(bed.folder("src", "INBOX"))
    move(c, sorted(c.search("ALL"))[:1], bed.folder("src", "Projects"))


def move_duplicate(bed: Bed) -> None:
    c = bed.source()
    c.select_folder(bed.folder("src", "Été"))
    move(c, sorted(c.search("ALL"))[:1], bed.folder("src", "INBOX"))


def rename_folder(bed: Bed) -> None:
    c = bed.source()
    c.rename_folder(bed.folder("src", "Projects", "2024"), bed.folder("src", "Projects", "Done"))


def everything(bed: Bed) -> None:
    add_new(bed)
    change_flags(bed)
    move_one(bed)
    delete_some(bed)
    bed.create("New Folder")
    bed.put(("New Folder",), [make_message(40)], flags=["\\Seen", "$Label2"])


def recreate_folder(bed: Bed, side: str = "src", name: str | None = None) -> None:
    """Deleted and re-created with the same mail: a new UIDVALIDITY, the same messages.
    ``name``: the server's name of the folder (default: Projects/2024's)."""
    c = bed.source() if side == "src" else bed.dest()
    name = name or bed.folder(side, "Projects", "2024")
    c.select_folder(name)
    data = c.fetch(c.search("ALL"), ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"])
    c.close_folder()
    c.delete_folder(name)
    c.create_folder(name)
    for item in data.values():
        flags = [f for f in item[b"FLAGS"] if f != b"\\Recent"]
        c.append(name, item[b"BODY[]"], flags=flags, msg_time=item[b"INTERNALDATE"])


def dest_recreated_and_new_mail(bed: Bed) -> None:
    recreate_folder(bed, "dst")
    bed.put(("Projects", "2024"), [make_message(50)])


def corpus(bed: Bed) -> None:
    spec = CorpusSpec(seed=7, messages=40, size_profile="small", duplicate_fraction=0.05,
                      no_message_id_fraction=0.1)
    load(bed.source(), generate(spec), folders=folder_tree(spec))


def mass_delete(bed: Bed) -> None:
    c = bed.source()
    c.select_folder(bed.folder("src", "INBOX"))
    c.delete_messages(c.search("ALL"))
    c.expunge()


def big_inbox(bed: Bed) -> None:
    bed.put(("INBOX",), [make_message(i) for i in range(100, 120)])


def mass_delete_blocked(bed: Bed) -> None:
    """The ceiling held: nothing deleted on the destination, and the operator is told."""
    assert len(bed.uids("INBOX", side="dst")) == 20
    assert bed.uids("INBOX", side="src") == []
    blocked = bed.findings("mass_delete_blocked")
    assert blocked and "--allow-mass-delete" in blocked[-1].reason


def dest_has_copies(bed: Bed) -> None:
    """A previous tool (or a lost state) already put some of the mail there."""
    base_tree(bed)
    bed.dest().create_folder(bed.folder("dst", "Projects"))
    bed.dest().create_folder(bed.folder("dst", "Projects", "2024"))
    bed.put(("Projects", "2024"), [make_message(i) for i in range(10, 13)],
            flags=["\\Flagged", "Important"], side="dst")


def dest_extra_untouched(bed: Bed) -> None:
    """The destination user's own message (never ours) is not deleted or changed."""
    bed.put(("INBOX",), [make_message(900, subject="the user's own")], side="dst")
    base_tree(bed)


def mirror_plus_own(bed: Bed) -> None:
    dst = bed.dest()
    dst.select_folder("INBOX")
    own = dst.search(["SUBJECT", "the user's own"])
    assert len(own) == 1
    diffs = bed.differences()  # only the user's own message differs
    assert len(diffs) == 2 and diffs[0].startswith("INBOX: count differs"), diffs
    assert diffs[1].startswith("INBOX: extra message"), diffs
    assert set(bed.journal_states()) <= {"copied", "skipped"}


def moved(n: int) -> Callable[[PassResult], None]:
    def check(r: PassResult) -> None:
        assert r.moved == n and r.copied == 0, r
    return check


SCENARIOS = [
    Scenario("prestage", base_tree),
    Scenario("new messages", base_tree, add_new),
    Scenario("flag changes", base_tree, change_flags,
             check_result=lambda r: (r.flags_updated >= 3) or pytest.fail(str(r))),
    Scenario("deletions", base_tree, delete_some,
             check_result=lambda r: (r.deleted == 2) or pytest.fail(str(r))),
    Scenario("move", base_tree, move_one, check_result=moved(1)),
    Scenario("move one of two identical", base_tree, move_duplicate, check_result=moved(1)),
    Scenario("folder renamed", base_tree, rename_folder, check_result=moved(3)),
    Scenario("everything at once", base_tree, everything),
    Scenario("source UIDVALIDITY changed", base_tree, recreate_folder,
             check_result=lambda r: (r.copied == 0 and r.adopted == 3) or pytest.fail(str(r))),
    # The destination change is noticed when the source folder next changes (an
    # unchanged source folder is not even selected, on either side).
    Scenario("destination UIDVALIDITY changed", base_tree, dest_recreated_and_new_mail,
             check_result=lambda r: (r.copied == 1 and r.adopted == 3) or pytest.fail(str(r))),
    Scenario("realistic corpus", corpus, crash_stride=7),
    Scenario("mass delete blocked", big_inbox, mass_delete, expect=mass_delete_blocked,
             settings={"deletion_floor": 5}),
    Scenario("mass delete allowed", big_inbox, mass_delete,
             settings={"deletion_floor": 5, "allow_mass_delete": True}),
    Scenario("adopt existing copies", dest_has_copies,
             check_result=lambda r: (r.adopted == 3 and r.copied == 7) or pytest.fail(str(r))),
    Scenario("user's own message untouched", dest_extra_untouched, expect=mirror_plus_own),
]


def _prepare(bed: Bed, sc: Scenario) -> None:
    sc.setup(bed)
    if sc.change is not None:
        first = bed.run(**sc.baseline_settings)
        assert first.status == "ok", first
        sc.change(bed)


def _expect(bed: Bed, sc: Scenario) -> None:
    (sc.expect or mirror)(bed)


def _no_change(r: PassResult) -> None:
    assert (r.copied, r.adopted, r.moved, r.deleted, r.flags_updated) == (0, 0, 0, 0, 0), r


def _bed(request: pytest.FixtureRequest, pair: tuple[str, str], tmp_path, name: str) -> Bed:
    src = request.getfixturevalue(pair[0])
    dst = request.getfixturevalue(pair[1])
    return Bed.make(src, dst, tmp_path / f"{name}-{next(_counter)}")


PAIRS = {"default": ("dovecot_src", "dovecot_dst"),
         "maildirpp-to-nocaps": ("dovecot_maildirpp", "dovecot_nocaps")}
# The plain path (no CONDSTORE on the source: every UID and its flags read each pass).
PLAIN = {"nocaps-to-default": ("dovecot_nocaps", "dovecot_dst")}


@pytest.mark.parametrize("servers", list(PAIRS) + list(PLAIN))
@pytest.mark.parametrize("sc", SCENARIOS, ids=str)
def test_normal_then_rerun(sc: Scenario, servers: str, request, tmp_path) -> None:
    bed = _bed(request, {**PAIRS, **PLAIN}[servers], tmp_path, "normal")
    try:
        _prepare(bed, sc)
        result = bed.run(**sc.settings)
        assert result.status in ("ok", "partial"), result
        _expect(bed, sc)
        if sc.check_result:
            sc.check_result(result)
        again = bed.run(**sc.settings)
        _no_change(again)
        _expect(bed, sc)
    finally:
        bed.close()


def _lost_expect(bed: Bed, sc: Scenario) -> None:
    if sc.expect is mass_delete_blocked:
        # With the journal gone, nothing says those 20 copies were ours: they stay.
        assert len(bed.uids("INBOX", side="dst")) == 20
        return
    _expect(bed, sc)


@pytest.mark.parametrize("sc", SCENARIOS, ids=str)
def test_lost_state(sc: Scenario, request, tmp_path) -> None:
    bed = _bed(request, PAIRS["default"], tmp_path, "lost")
    try:
        _prepare(bed, sc)
        bed.run(**sc.settings)
        bed.lose_state()
        result = bed.run(**sc.settings)
        assert result.copied == 0, result  # everything there is adopted, nothing re-sent
        _lost_expect(bed, sc)
        _no_change(bed.run(**sc.settings))
        _lost_expect(bed, sc)
    finally:
        bed.close()


def crash_at_every_step(make_bed: Callable[[str], Bed], sc: Scenario, stride: int) -> None:
    """Count the pass's checkpoints on one bed, then on a fresh bed per checkpoint: kill
    the pass there, resume it, and demand the expected state and a quiet re-run."""
    counter = make_bed("count")
    try:
        _prepare(counter, sc)
        probe = CrashAt(None)
        counter.run(hooks=probe, **sc.settings)
    finally:
        counter.close()
    assert probe.count > 0
    for n in range(0, probe.count, stride):
        bed = make_bed(f"crash{n}")
        try:
            _prepare(bed, sc)
            with pytest.raises(SimulatedCrash):
                bed.run(hooks=CrashAt(n), **sc.settings)
            bed.run(**sc.settings)
            try:
                _expect(bed, sc)
                _no_change(bed.run(**sc.settings))
            except AssertionError as exc:
                raise AssertionError(f"after a crash at step {n} ({probe.labels[n]}): {exc}")
        finally:
            bed.close()


@pytest.mark.parametrize("servers", list(PAIRS))
@pytest.mark.parametrize("sc", SCENARIOS, ids=str)
def test_crash_at_every_step(sc: Scenario, servers: str, request, tmp_path) -> None:
    crash_at_every_step(lambda name: _bed(request, PAIRS[servers], tmp_path, name), sc,
                        sc.crash_stride)
