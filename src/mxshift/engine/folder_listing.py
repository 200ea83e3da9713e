"""Whether the source lists exactly the folders the state already maps. Pure, no I/O.

Why: mapping folders needs the destination (its namespace, its folder list), so a pass
that maps them logs in there even when nothing changed. When the source's folders are
the ones the folder pairs record (same names, present, as selectable) the map is known:
a pass whose folders are also unchanged then never touches the destination.

Only a pass with nothing to do skips the destination (every folder's STATUS as saved,
see ``MailboxPass._map_folders``): before cutover the destination is mxshift's to fill,
and a folder someone deleted there is re-created by the next pass that has a change to
write, as before (``mxshift verify`` compares both sides).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from mxshift.mapping import RemoteFolder

_UNSELECTABLE = {"\\noselect", "\\nonexistent"}


class RecordedPair(Protocol):
    source_name: str
    present: bool
    selectable: bool


def selectable(folder: RemoteFolder) -> bool:
    return not ({f.lower() for f in folder.flags} & _UNSELECTABLE)


def listing_known(pairs: Iterable[RecordedPair], listed: Iterable[RemoteFolder],
                  included: Iterable[str]) -> bool:
    """True when the source folders the rules include (``included``, from the listing)
    are exactly the present folder pairs, each as selectable as recorded, and no pair is
    missing from the listing.

    >>> listing_known([type("P", (), dict(source_name="A", present=True,
    ...                                   selectable=True))()],
    ...               [RemoteFolder("A"), RemoteFolder("Spam")], ["A"])
    True
    """
    flags = {f.name: selectable(f) for f in listed}
    present = {p.source_name: p for p in pairs if p.present}
    if set(present) != set(included):
        return False  # a folder new, gone, back, or newly excluded: map it
    return all(name in flags and flags[name] == p.selectable for name, p in present.items())
