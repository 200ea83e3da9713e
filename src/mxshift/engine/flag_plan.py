"""Turning a folder's flag changes into as few STORE commands as possible. Pure, no I/O.

Why: a delta pass used to send one ``UID STORE`` per distinct (added, removed) pair of flag
sets, and each waited for its answer: with mixed changes that was four or five round trips
per folder, most of a delta pass's time. A STORE sets or clears the same flags on a set of
UIDs, so the natural unit is one flag and one direction: every message gaining ``\\Seen``
goes in one ``+FLAGS (\\Seen)``, whatever else changes on it. Flags whose UID sets are equal
share one command (``+FLAGS (\\Seen \\Flagged)``). No UID is in both the "+" and the "-"
command of the same flag, so the commands do not depend on each other's order and may be
sent together (pipelined, RFC 3501 5.5).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

from mxshift.engine.plan import FlagChange


@dataclass(frozen=True)
class FlagStore:
    """One ``UID STORE uids +FLAGS|-FLAGS (flags)``, on destination UIDs."""

    add: bool
    flags: tuple[str, ...]
    uids: tuple[int, ...]


def store_commands(changes: Iterable[FlagChange]) -> list[FlagStore]:
    """The STOREs that apply ``changes``: one per flag and direction, merged where the
    UID sets are equal. Deterministic (removals first, then by flags) so a re-run after a
    crash sends the same commands.

    >>> store_commands([FlagChange(1, 11, frozenset({"\\\\Seen"}), frozenset()),
    ...                 FlagChange(2, 12, frozenset({"\\\\Seen"}), frozenset({"$X"}))])
    [FlagStore(add=False, flags=('$X',), uids=(12,)), FlagStore(add=True, flags=('\\\\Seen',), uids=(11, 12))]
    """
    by_flag: dict[tuple[bool, str], set[int]] = defaultdict(set)
    for ch in changes:
        for flag in ch.add:
            by_flag[(True, flag)].add(ch.destination_uid)
        for flag in ch.remove:
            by_flag[(False, flag)].add(ch.destination_uid)
    merged: dict[tuple[bool, tuple[int, ...]], list[str]] = defaultdict(list)
    for (add, flag), uids in by_flag.items():
        merged[(add, tuple(sorted(uids)))].append(flag)
    out = [FlagStore(add, tuple(sorted(flags)), uids) for (add, uids), flags in merged.items()]
    return sorted(out, key=lambda c: (c.add, c.flags, c.uids))


def intent_text(change: FlagChange) -> str:
    """What the journal records for a row before its STOREs are sent ("+a b|-c")."""
    return "+" + " ".join(sorted(change.add)) + "|-" + " ".join(sorted(change.remove))
