"""When a pass may trust the recorded folder map (engine/folder_listing.py), and the
lazily logged-in destination (store/lazy.py). Pure."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mxshift.engine.folder_listing import listing_known
from mxshift.errors import MailboxError
from mxshift.mapping import RemoteFolder
from mxshift.store.lazy import LazyStore


@dataclass
class Pair:
    source_name: str
    present: bool = True
    selectable: bool = True


PAIRS = [Pair("INBOX"), Pair("Work"), Pair("Work/2024"), Pair("Old", present=False),
         Pair("Parent", selectable=False)]
LISTED = [RemoteFolder("INBOX"), RemoteFolder("Work"), RemoteFolder("Work/2024"),
          RemoteFolder("Parent", frozenset({"\\Noselect"})), RemoteFolder("Spam")]
INCLUDED = ["INBOX", "Work", "Work/2024", "Parent"]  # "Spam" excluded by a rule


def test_the_recorded_map_is_known() -> None:
    assert listing_known(PAIRS, LISTED, INCLUDED)


@pytest.mark.parametrize("listed, included, why", [
    (LISTED + [RemoteFolder("New")], INCLUDED + ["New"], "a new folder"),
    ([f for f in LISTED if f.name != "Work"], [i for i in INCLUDED if i != "Work"], "gone"),
    (LISTED + [RemoteFolder("Old")], INCLUDED + ["Old"], "a folder back"),
    ([RemoteFolder(f.name) for f in LISTED], INCLUDED, "now selectable"),
    ([RemoteFolder(f.name, frozenset({"\\NonExistent"})) if f.name == "Work" else f
      for f in LISTED], INCLUDED, "no longer selectable"),
    (LISTED, INCLUDED + ["Spam"], "a rule now includes a folder"),
])
def test_any_difference_maps_the_folders_again(listed, included, why) -> None:  # type: ignore[no-untyped-def]
    assert not listing_known(PAIRS, listed, included), why


class Opened:
    def __init__(self) -> None:
        self.closed = 0
        self.notes = ["noted"]

    def namespace(self) -> str:
        return "ns"

    def close(self) -> None:
        self.closed += 1


def test_lazy_store_logs_in_on_first_use_only() -> None:
    calls: list[Opened] = []

    def open_store() -> Opened:
        calls.append(Opened())
        return calls[-1]

    lazy = LazyStore(open_store)  # type: ignore[arg-type]
    assert not lazy.opened and lazy.notes == []
    lazy.close()  # never used: nothing to log out of
    assert calls == []
    assert lazy.namespace() == "ns" and lazy.namespace() == "ns"
    assert len(calls) == 1 and lazy.opened and lazy.notes == ["noted"]
    lazy.close()
    assert calls[0].closed == 1


def test_lazy_store_prefetch_and_a_failed_login() -> None:
    def refuse() -> Opened:
        raise MailboxError("bad login")

    lazy = LazyStore(refuse)  # type: ignore[arg-type]
    lazy.prefetch()  # in a thread: the error waits for the first use
    with pytest.raises(MailboxError, match="bad login"):
        lazy.namespace()
    with pytest.raises(MailboxError):
        lazy.capabilities  # noqa: B018
    lazy.close()
    assert not lazy.opened
    with pytest.raises(AttributeError):
        lazy._private  # noqa: B018
