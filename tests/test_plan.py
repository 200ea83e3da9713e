"""Pure planning decisions: the ones that lose or duplicate mail when wrong."""

from __future__ import annotations

import pytest

from mxshift.engine.plan import (Candidate, Known, batches, copyable_flags, deletion_blocked,
                                 plan_folder, plan_moves)

S, F = "\\Seen", "\\Flagged"


def known(uid: int, dest: int | None, flags: set[str], fp: str = "fp", state: str = "copied"):
    return Known(uid, dest, frozenset(flags), fp, state)


def test_plan_folder_classifies_every_uid() -> None:
    source = {1: frozenset({S}), 2: frozenset({S, F}), 4: frozenset(), 5: frozenset()}
    k = {1: known(1, 11, {S}), 2: known(2, 12, {S}), 3: known(3, 13, set()),
         5: known(5, None, set(), state="skipped"), 6: known(6, None, set(), state="skipped")}
    d = plan_folder(source, k)
    assert d.new == [4]
    assert d.vanished == [3]
    assert d.forget == [6]
    assert [(c.source_uid, c.destination_uid, c.add, c.remove) for c in d.flag_changes] == \
        [(2, 12, frozenset({F}), frozenset())]


def test_flag_removal_and_recent_never_copied() -> None:
    d = plan_folder({1: frozenset({"\\Recent"})}, {1: known(1, 9, {S, "$Label1"})})
    assert d.flag_changes[0].remove == frozenset({S, "$Label1"})
    assert d.flag_changes[0].add == frozenset()


@pytest.mark.parametrize("permanent,kept,dropped", [
    (None, {S, "Important"}, set()),
    (frozenset({S, "\\*"}), {S, "Important"}, set()),
    (frozenset({S}), {S}, {"Important"}),
])
def test_copyable_flags_follow_permanentflags(permanent, kept, dropped) -> None:
    k, d = copyable_flags(frozenset({S, "Important", "\\Recent"}), permanent)
    assert k == frozenset(kept) and d == frozenset(dropped)


def test_refused_keyword_does_not_cause_endless_flag_updates() -> None:
    # The keyword could not be stored, the journal says so; no update is planned again.
    d = plan_folder({1: frozenset({S, "Important"})}, {1: known(1, 9, {S})}, frozenset({S}))
    assert d.flag_changes == []


def test_moves_match_as_multiset_and_prefer_same_folder() -> None:
    vanished = [Candidate(1, 10, "a"), Candidate(1, 11, "a"), Candidate(2, 5, "b")]
    new = [Candidate(3, 1, "a"), Candidate(1, 20, "b"), Candidate(2, 9, "b")]
    pairs = plan_moves(vanished, new)
    assert [(o.pair_id, o.source_uid, n.pair_id, n.source_uid) for o, n in pairs] == [
        (1, 10, 3, 1),   # one "a" moved to folder 3; the other "a" has no partner: deleted
        (2, 5, 2, 9),    # re-numbered inside folder 2: preferred over a move to folder 1
    ]


def test_moves_are_deterministic_whatever_the_input_order() -> None:
    vanished = [Candidate(p, u, f"fp{u % 3}") for p in (1, 2) for u in range(6)]
    new = [Candidate(p, 100 + u, f"fp{u % 3}") for p in (3, 4) for u in range(5)]
    first = plan_moves(vanished, new)
    assert first == plan_moves(list(reversed(vanished)), list(reversed(new)))
    assert len(first) == 10
    assert len({n for _, n in first}) == 10  # no new message used twice


@pytest.mark.parametrize("deletions,known_count,blocked", [
    (10, 11, False),   # at the floor: never blocked
    (11, 200, False),  # 5.5% of a big folder
    (21, 200, True),   # 10.5%
    (11, 20, True),
    (0, 0, False),
])
def test_deletion_ceiling(deletions, known_count, blocked) -> None:
    assert deletion_blocked(deletions, known_count, 0.10, 10) is blocked


def test_batches_bound_count_and_bytes_and_isolate_large() -> None:
    sizes = [(1, 10), (2, 10), (3, 10), (4, 1000), (5, 10), (6, 10)]
    assert [[u for u, _ in b] for b in batches(sizes, max_count=2, max_bytes=100,
                                               size=lambda x: x[1])] == [[1, 2], [3], [4], [5, 6]]
    assert list(batches([], 5, 5, size=len)) == []
