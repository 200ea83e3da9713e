"""STORE grouping (engine/flag_plan.py): one command per flag and direction, merged where
the UID sets are equal, never a UID in both directions of one flag. Pure."""

from __future__ import annotations

import random
from collections import Counter

from mxshift.engine.flag_plan import FlagStore, intent_text, store_commands
from mxshift.engine.plan import FlagChange


def change(uid: int, add: set[str] = set(), remove: set[str] = set()) -> FlagChange:
    return FlagChange(uid, uid + 1000, frozenset(add), frozenset(remove))


def apply(commands: list[FlagStore], flags: dict[int, set[str]]) -> dict[int, set[str]]:
    out = {u: set(f) for u, f in flags.items()}
    for c in commands:
        for uid in c.uids:
            (out[uid].update if c.add else out[uid].difference_update)(c.flags)
    return out


def test_one_store_per_flag_and_direction_whatever_the_mix() -> None:
    # The bench's mix: per message one flag toggled; four (added, removed) groups used to
    # be four STOREs each waiting for its answer.
    changes = [change(1, {"\\Seen"}), change(2, {"\\Seen", "\\Flagged"}),
               change(3, {"\\Flagged"}, {"\\Seen"}), change(4, remove={"$Bench"}),
               change(5, {"\\Seen"}, {"$Bench"})]
    assert store_commands(changes) == [
        FlagStore(False, ("$Bench",), (1004, 1005)),
        FlagStore(False, ("\\Seen",), (1003,)),
        FlagStore(True, ("\\Flagged",), (1002, 1003)),
        FlagStore(True, ("\\Seen",), (1001, 1002, 1005)),
    ]


def test_flags_with_the_same_messages_share_a_command() -> None:
    changes = [change(1, {"\\Seen", "\\Flagged"}), change(2, {"\\Seen", "\\Flagged"}),
               change(3, remove={"$A", "$B"})]
    assert store_commands(changes) == [FlagStore(False, ("$A", "$B"), (1003,)),
                                       FlagStore(True, ("\\Flagged", "\\Seen"), (1001, 1002))]
    assert store_commands([]) == []


def test_random_changes_end_in_the_wanted_flags_in_any_order() -> None:
    """The commands may be sent together (pipelined): applied in any order they give each
    message exactly the flags the plan wants, and no command adds and removes one flag on
    one message."""
    rng = random.Random(7)
    pool = ["\\Seen", "\\Flagged", "\\Answered", "$A", "$B"]
    for _ in range(200):
        have = {u: set(rng.sample(pool, rng.randint(0, 3))) for u in range(1, 30)}
        want = {u: set(rng.sample(pool, rng.randint(0, 3))) for u in have}
        changes = [FlagChange(u, u, frozenset(want[u] - have[u]), frozenset(have[u] - want[u]))
                   for u in have if want[u] != have[u]]
        commands = store_commands(changes)
        assert commands == store_commands(list(reversed(changes)))  # deterministic
        shuffled = commands[:]
        rng.shuffle(shuffled)
        assert apply(shuffled, have) == want
        seen: dict[tuple[int, str], bool] = {}
        for c in commands:
            for uid in c.uids:
                for flag in c.flags:
                    assert seen.setdefault((uid, flag), c.add) == c.add
        # exactly one command per flag and direction
        per_flag = Counter((c.add, f) for c in commands for f in c.flags)
        assert set(per_flag.values()) <= {1}


def test_intent_text() -> None:
    assert intent_text(change(1, {"b", "a"}, {"c"})) == "+a b|-c"
    assert intent_text(change(1, remove={"c"})) == "+|-c"
