"""UID -> flags of a whole folder in 8 bytes a message (pure: no I/O).

Why: a pass holds the flags of every message of every scanned folder from the scan to
the folder's end. As a dict that is an int key, a dict slot and a pointer per message
(~100 bytes once the table's slack is counted): 2 MB for a 20,000-message mailbox, so the
pass's peak memory grew with the mailbox (issue #3). Here a folder is two arrays, the
UIDs in ascending order and an index per message into the folder's few distinct flag
sets, read with a binary search. It is a read-only ``Mapping``, so the planning code
(engine/plan.py) takes it where it takes a dict.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import ItemsView, Iterator, Mapping


class FlagMap(Mapping[int, frozenset[str]]):
    """Read-only UID -> flags; built with :class:`FlagMapBuilder` (or :meth:`of`)."""

    __slots__ = ("_uids", "_codes", "_sets")

    def __init__(self, uids: array, codes: array, sets: list[frozenset[str]]) -> None:
        self._uids, self._codes, self._sets = uids, codes, sets  # uids ascending, unique

    @classmethod
    def of(cls, items: Mapping[int, frozenset[str]]) -> "FlagMap":
        build = FlagMapBuilder()
        for uid in sorted(items):
            build.add(uid, items[uid])
        return build.done()

    def _find(self, uid: object) -> int:
        if not isinstance(uid, int) or not 0 <= uid < 1 << 32:
            return -1
        i = bisect_left(self._uids, uid)
        return i if i < len(self._uids) and self._uids[i] == uid else -1

    def __getitem__(self, uid: int) -> frozenset[str]:
        i = self._find(uid)
        if i < 0:
            raise KeyError(uid)
        return self._sets[self._codes[i]]

    def __contains__(self, uid: object) -> bool:
        return self._find(uid) >= 0

    def __iter__(self) -> Iterator[int]:
        return iter(self._uids)  # ascending

    def __len__(self) -> int:
        return len(self._uids)

    def items(self) -> ItemsView[int, frozenset[str]]:
        return _Items(self)

    @property
    def uids(self) -> array:
        """The UIDs, ascending (the array itself: do not change it)."""
        return self._uids

    def __repr__(self) -> str:
        return f"FlagMap({len(self)} messages, {len(self._sets)} flag sets)"


class _Items(ItemsView[int, frozenset[str]]):
    """items() without a binary search per message."""

    _mapping: FlagMap

    def __iter__(self) -> Iterator[tuple[int, frozenset[str]]]:
        m = self._mapping
        sets = m._sets
        return zip(m._uids, (sets[c] for c in m._codes))


#: In :meth:`FlagMapBuilder.sizes`: the server gave this message's flags but no size.
NO_SIZE = (1 << 64) - 1


class FlagMapBuilder:
    """Collects (uid, flags[, size]) in any order; :meth:`done` sorts them, a later
    UID's flags replacing an earlier entry's (a server's unsolicited FETCH of the same
    message) and keeping a size once given."""

    def __init__(self) -> None:
        self._uids = array("I")
        self._codes = array("I")
        self._sizes = array("Q")
        self._sets: list[frozenset[str]] = []
        self._index: dict[frozenset[str], int] = {}
        self._ascending = True

    def add(self, uid: int, flags: frozenset[str], size: int | None = None) -> None:
        code = self._index.get(flags)
        if code is None:
            code = self._index[flags] = len(self._sets)
            self._sets.append(flags)
        if self._uids and uid <= self._uids[-1]:
            if uid == self._uids[-1]:
                self._codes[-1] = code
                if size is not None:
                    self._sizes[-1] = size
                return
            self._ascending = False
        self._uids.append(uid)
        self._codes.append(code)
        self._sizes.append(NO_SIZE if size is None else size)

    def __len__(self) -> int:
        return len(self._uids)

    def done(self) -> FlagMap:
        """The map; :meth:`sizes` then has the sizes in its UID order."""
        if not self._ascending:  # rare: one entry per UID (flags: the last given), sorted
            last: dict[int, tuple[int, int]] = {}
            for u, c, z in zip(self._uids, self._codes, self._sizes):
                seen = last.get(u)
                last[u] = (c, z if z != NO_SIZE or seen is None else seen[1])
            self._uids = array("I", sorted(last))
            self._codes = array("I", (last[u][0] for u in self._uids))
            self._sizes = array("Q", (last[u][1] for u in self._uids))
            self._ascending = True
        return FlagMap(self._uids, self._codes, self._sets)

    def sizes(self) -> array:
        """Each message's size (``NO_SIZE`` where none was given), in :meth:`done`'s
        UID order (call it after :meth:`done`)."""
        return self._sizes
