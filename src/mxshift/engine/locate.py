"""Finding messages we appended again when the server did not say where they landed.

Why: without UIDPLUS (or when a crash ate the APPEND's answer) the only trace of an
append is the message itself. It can only be at or above the UIDNEXT seen before the
APPEND, and it is not one of the UIDs we already map, so we match fingerprints there,
as a multiset (byte-identical duplicates land one per append), never touching the bytes.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Hashable, Sequence

from mxshift.identity import fingerprint
from mxshift.store.base import Store


def locate(dest: Store, floor: int, mapped: set[int],
           wanted: Sequence[tuple[Hashable, str]]) -> dict[Hashable, int]:
    """Map each ``(key, fingerprint)`` in ``wanted`` to an unmapped UID >= ``floor``.

    The destination folder must be selected. Keys with no match are absent from the result.
    """
    if not wanted:
        return {}
    candidates = [u for u in dest.uids_from(floor) if u not in mapped]
    pool: dict[str, list[int]] = defaultdict(list)
    for i in range(0, len(candidates), 500):
        for meta in dest.fetch_meta(candidates[i:i + 500]):
            pool[fingerprint(meta.headers, meta.size).value].append(meta.uid)
    found: dict[Hashable, int] = {}
    for key, fp in wanted:
        uids = pool.get(fp)
        if uids:
            found[key] = uids.pop(0)
    return found
