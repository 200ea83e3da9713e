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
from functools import lru_cache
from typing import Protocol

from mxshift.errors import MxshiftError
from mxshift.mapping import MappingRules, Namespace, RemoteFolder, map_folders

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


def included_sources(listed: Iterable[RemoteFolder], source_ns: Namespace,
                     rules: MappingRules) -> tuple[str, ...] | None:
    """The listed source folders the rules take (as ``map_folders`` maps them, with no
    destination folders), or None when that mapping fails or has collisions (the pass
    then maps folders as always).

    Why cached: a run's mailboxes mostly list the same folders (the provider's defaults
    plus a few of their own), and the full mapping, only to learn which names it takes,
    was a tenth of a no-change pass's CPU. The answer depends on the names, flags,
    namespace and rules alone (all immutable), so equal listings share it.
    """
    key = tuple(sorted((f.name, f.flags) for f in listed))
    return _included(key, source_ns, rules)


@lru_cache(maxsize=256)
def _included(listing: tuple[tuple[str, frozenset[str]], ...], source_ns: Namespace,
              rules: MappingRules) -> tuple[str, ...] | None:
    try:  # the destination's names play no part in which folders are taken
        stand_in = map_folders([RemoteFolder(n, f) for n, f in listing], source_ns, [],
                               Namespace("", source_ns.separator or "/"), rules)
    except (ValueError, MxshiftError):
        return None
    if stand_in.collisions:
        return None
    return tuple(m.source for m in stand_in.mappings if m.source)
