"""Planning a pass: pure decisions from what the source shows and what the journal knows.

Why pure: these are the decisions that lose or duplicate mail when wrong, so they are
tested exhaustively without servers; the pass only executes them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import NamedTuple, TypeVar

T = TypeVar("T")

# Flags the destination sets itself or that make no sense to copy.
_NEVER_COPIED = frozenset({"\\recent"})


class Known(NamedTuple):
    """A journal row as the planner sees it (a tuple: a pass builds one per journalled
    message of a folder, thousands per read, where a frozen dataclass costs 5x)."""

    source_uid: int
    destination_uid: int | None
    flags: frozenset[str]
    fingerprint: str
    state: str  # copied | skipped (passing states are reconciled before planning)


@dataclass(frozen=True)
class FlagChange:
    source_uid: int
    destination_uid: int
    add: frozenset[str]
    remove: frozenset[str]


@dataclass
class FolderDelta:
    new: list[int] = field(default_factory=list)          # source UIDs not yet journalled
    vanished: list[int] = field(default_factory=list)     # journalled copies gone from the source
    forget: list[int] = field(default_factory=list)       # skipped rows gone from the source
    flag_changes: list[FlagChange] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.new or self.vanished or self.forget or self.flag_changes)


def copyable_flags(flags: frozenset[str], permanent: frozenset[str] | None) -> tuple[
        frozenset[str], frozenset[str]]:
    """Split ``flags`` into (kept, dropped) by the destination's PERMANENTFLAGS.

    ``\\*`` admits any keyword; without PERMANENTFLAGS we assume everything is kept.
    """
    flags = frozenset(f for f in flags if f.lower() not in _NEVER_COPIED)
    if permanent is None or "\\*" in permanent:
        return flags, frozenset()
    allowed = {p.lower() for p in permanent}
    kept = frozenset(f for f in flags if f.lower() in allowed)
    return kept, flags - kept


def plan_folder(source: Mapping[int, frozenset[str]], known: Mapping[int, Known],
                permanent: frozenset[str] | None = None) -> FolderDelta:
    """Compare the source's UIDs and flags with the journal of one folder pair.

    ``source``: a dict, or a first copy's :class:`~mxshift.store.flag_map.FlagMap`
    (no set of its UIDs is made: a folder's worth of ints)."""
    delta = FolderDelta()
    wanted: dict[frozenset[str], frozenset[str]] = {}  # a folder has few distinct flag sets
    for uid in sorted(source):
        row = known.get(uid)
        if row is None:
            delta.new.append(uid)
            continue
        if row.state != "copied" or row.destination_uid is None:
            continue
        flags = source[uid]
        want = wanted.get(flags)
        if want is None:
            want = wanted[flags] = copyable_flags(flags, permanent)[0]
        have = row.flags
        if want != have:
            delta.flag_changes.append(FlagChange(uid, row.destination_uid,
                                                 add=want - have, remove=have - want))
    for uid in sorted(u for u in known if u not in source):
        (delta.vanished if known[uid].state == "copied" else delta.forget).append(uid)
    return delta


@dataclass(frozen=True)
class Candidate:
    pair_id: int
    source_uid: int
    fingerprint: str


def plan_moves(vanished: list[Candidate], new: list[Candidate]) -> list[tuple[Candidate,
                                                                                Candidate]]:
    """Pair messages that left one folder with identical ones that appeared in another.

    Matching is by fingerprint, as a multiset (byte-identical duplicates pair one to one),
    in a deterministic order so a re-run after a crash plans the same moves. A pair in
    the same folder means the source re-numbered the message: the copy is re-keyed, not
    moved or copied again.
    """
    pool: dict[str, list[Candidate]] = defaultdict(list)
    for cand in sorted(new, key=lambda c: (c.pair_id, c.source_uid)):
        pool[cand.fingerprint].append(cand)
    pairs = []
    for old in sorted(vanished, key=lambda c: (c.pair_id, c.source_uid)):
        options = pool.get(old.fingerprint)
        if not options:
            continue
        # Prefer the same folder (a re-numbering), else the first in order.
        pick = next((c for c in options if c.pair_id == old.pair_id), options[0])
        options.remove(pick)
        pairs.append((old, pick))
    return pairs


def deletion_blocked(deletions: int, known: int, ceiling: float, floor: int) -> bool:
    """True when a pass would delete more of a folder than the operator allows.

    Small numbers (<= ``floor``) always pass: losing 2 of 5 messages in a tiny folder is
    normal use, while 40% of a large folder vanishing at once is an accident until
    someone says otherwise (``--allow-mass-delete``).
    """
    if deletions <= floor:
        return False
    return deletions > ceiling * max(known, 1)


def batches(items: Iterable[T], max_count: int, max_bytes: int,
            size: Callable[[T], int]) -> Iterator[list[T]]:
    """Group ``items`` into batches bounded by count and by bytes (``size`` of each); a
    large one goes alone. Lazy: a caller holds the batch it is at, not every batch.

    Why: memory is bounded by the batch, not by the mailbox; a 30 MB message must not be
    held together with 200 others.
    """
    cur: list[T] = []
    cur_bytes = 0
    for item in items:
        n = size(item)
        if cur and (len(cur) >= max_count or cur_bytes + n > max_bytes):
            yield cur
            cur, cur_bytes = [], 0
        cur.append(item)
        cur_bytes += n
    if cur:
        yield cur
