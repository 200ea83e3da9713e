"""Comparing one mailbox's source and destination, message by message. Pure: no I/O.

Why pure: the classification is what the customer is shown as proof; it must be readable and
testable without servers. :mod:`mxshift.verify.collect` reads the servers into
:class:`Item` lists and the journal into :class:`Journal` entries; this module decides.

Order of reconciliation, per folder pair:
1. our UID map (source UID -> destination UID, when the destination UIDVALIDITY is the one
   we recorded);
2. the fingerprint (identity headers + size), as a multiset: two byte-identical source
   messages need two destination copies;
3. the identity headers without the size (only with a Message-ID): the same message whose
   bytes differ -> ``content_differs``.
Then, across the whole mailbox, a source message still unmatched whose fingerprint is left
unmatched in *another* destination folder is ``wrong_folder`` (one finding, not a "missing"
plus an "extra"). Whatever remains is ``missing`` / ``extra``; a destination message whose
fingerprint was already matched is ``duplicate``. Matched pairs are compared for flags,
INTERNALDATE and (deep) content hash.

Findings that are *explained* do not block "verified": a message skipped by a pass with a
recorded reason, and a destination-only message mxshift did not put there (the user's own
mail: promise 3 says we never touch it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

KINDS = ("missing", "extra", "duplicate", "wrong_folder", "flags_differ", "date_differs",
         "content_differs", "skipped")

# Flags a server sets by itself or that never travel.
_IGNORED_FLAGS = frozenset({"\\Recent"})


@dataclass(frozen=True)
class Item:
    """One message as read from a server."""

    uid: int
    size: int
    flags: frozenset[str]
    internaldate: datetime
    fingerprint: str
    loose: str | None          # identity headers without size; None without a Message-ID
    subject: str = ""
    sender: str = ""
    date: str = ""
    content_hash: str | None = None  # only in deep mode


@dataclass(frozen=True)
class JournalEntry:
    """What our journal says about one source message of the pair."""

    source_uid: int
    destination_uid: int | None
    state: str                 # copied|skipped|pending|...
    skip_reason: str | None = None


@dataclass
class PairInput:
    pair_id: int
    folder: str                # display name, what a person reads
    source: list[Item]
    destination: list[Item]
    journal: dict[int, JournalEntry]
    use_uid_map: bool = True   # False when the destination UIDVALIDITY changed
    destination_error: str | None = None


@dataclass(frozen=True)
class Difference:
    kind: str
    folder: str
    reason: str
    explained: bool = False
    source_uid: int | None = None
    destination_uid: int | None = None
    other_folder: str | None = None
    subject: str = ""
    sender: str = ""
    date: str = ""
    size: int | None = None
    fingerprint: str = ""

    @property
    def key(self) -> str:
        """Stable across verifications: what an acceptance refers to."""
        uid = self.source_uid if self.source_uid is not None else ""
        return f"{self.kind}|{self.folder}|{uid}|{self.fingerprint}"[:300]


@dataclass
class FolderCounts:
    folder: str
    source: int
    destination: int
    matched: int = 0
    source_bytes: int = 0


@dataclass
class Comparison:
    differences: list[Difference] = field(default_factory=list)
    folders: list[FolderCounts] = field(default_factory=list)

    @property
    def unexplained(self) -> list[Difference]:
        return [d for d in self.differences if not d.explained]


def _diff(kind: str, folder: str, item: Item, reason: str, *, source: bool = True,
          explained: bool = False, other_folder: str | None = None,
          destination_uid: int | None = None) -> Difference:
    return Difference(kind=kind, folder=folder, reason=reason, explained=explained,
                      source_uid=item.uid if source else None,
                      destination_uid=destination_uid if source else item.uid,
                      other_folder=other_folder, subject=item.subject, sender=item.sender,
                      date=item.date, size=item.size, fingerprint=item.fingerprint)


@dataclass
class _PairState:
    inp: PairInput
    matched: list[tuple[Item, Item]] = field(default_factory=list)
    content: list[tuple[Item, Item]] = field(default_factory=list)
    src_left: list[Item] = field(default_factory=list)
    dst_left: list[Item] = field(default_factory=list)


def _match_pair(inp: PairInput) -> _PairState:
    st = _PairState(inp)
    dst_by_uid = {d.uid: d for d in inp.destination}
    used: set[int] = set()
    rest: list[Item] = []
    for s in inp.source:
        j = inp.journal.get(s.uid)
        d = (dst_by_uid.get(j.destination_uid) if inp.use_uid_map and j is not None
             and j.destination_uid is not None else None)
        if d is not None and d.uid not in used:
            used.add(d.uid)
            if d.fingerprint == s.fingerprint:
                st.matched.append((s, d))
            else:
                st.content.append((s, d))
        else:
            rest.append(s)
    free: dict[str, list[Item]] = defaultdict(list)
    for d in inp.destination:
        if d.uid not in used:
            free[d.fingerprint].append(d)
    rest2: list[Item] = []
    for s in rest:
        if free.get(s.fingerprint):
            d = free[s.fingerprint].pop(0)
            used.add(d.uid)
            st.matched.append((s, d))
        else:
            rest2.append(s)
    loose: dict[str, list[Item]] = defaultdict(list)
    for d in inp.destination:
        if d.uid not in used and d.loose:
            loose[d.loose].append(d)
    for s in rest2:
        if s.loose and loose.get(s.loose):
            d = loose[s.loose].pop(0)
            used.add(d.uid)
            st.content.append((s, d))
        else:
            st.src_left.append(s)
    st.dst_left = [d for d in inp.destination if d.uid not in used]
    return st


def _fmt_flags(flags: frozenset[str]) -> str:
    return " ".join(sorted(flags)) or "(none)"


def compare(pairs: list[PairInput], *, deep: bool = False) -> Comparison:
    """Classify every difference between source and destination of one mailbox."""
    out = Comparison()
    states = [_match_pair(p) for p in pairs]
    # destination messages left over, per fingerprint, for the cross-folder search
    elsewhere: dict[str, list[tuple[_PairState, Item]]] = defaultdict(list)
    for st in states:
        for d in st.dst_left:
            elsewhere[d.fingerprint].append((st, d))
    moved_dst: set[tuple[int, int]] = set()
    moved: dict[tuple[int, int], tuple[_PairState, Item]] = {}
    for st in states:  # first, across folders: a message found in another folder
        for s in st.src_left:
            j = st.inp.journal.get(s.uid)
            if j is not None and j.state == "skipped":
                continue
            found = next(((ost, d) for ost, d in elsewhere.get(s.fingerprint, [])
                          if ost is not st and (id(ost), d.uid) not in moved_dst), None)
            if found is not None:
                moved_dst.add((id(found[0]), found[1].uid))
                moved[(id(st), s.uid)] = found
    for st in states:
        inp, folder = st.inp, st.inp.folder
        counts = FolderCounts(folder, len(inp.source), len(inp.destination),
                              matched=len(st.matched) + len(st.content),
                              source_bytes=sum(s.size for s in inp.source))
        out.folders.append(counts)
        if inp.destination_error:
            out.differences.append(Difference(
                kind="missing", folder=folder, reason=f"destination folder unreadable: "
                f"{inp.destination_error}", fingerprint="folder"))
        pairs_seen = [(s, d, False) for s, d in st.matched] + [(s, d, True) for s, d in st.content]
        for s, d, size_differs in pairs_seen:
            if size_differs:
                out.differences.append(_diff(
                    "content_differs", folder, s,
                    f"destination UID {d.uid} is this message with different bytes ("
                    + (f"{d.size} bytes instead of {s.size})" if d.size != s.size
                       else "identity headers differ)"), destination_uid=d.uid))
            elif deep and s.content_hash and d.content_hash and s.content_hash != d.content_hash:
                out.differences.append(_diff(
                    "content_differs", folder, s,
                    f"destination UID {d.uid}: same headers and size, different bytes "
                    "(full-content hash)", destination_uid=d.uid))
            sf, df = s.flags - _IGNORED_FLAGS, d.flags - _IGNORED_FLAGS
            if sf != df:
                out.differences.append(_diff(
                    "flags_differ", folder, s,
                    f"source {_fmt_flags(sf)}; destination UID {d.uid} {_fmt_flags(df)}",
                    destination_uid=d.uid))
            if int(s.internaldate.timestamp()) != int(d.internaldate.timestamp()):
                out.differences.append(_diff(
                    "date_differs", folder, s,
                    f"INTERNALDATE source {s.internaldate.isoformat()}; destination UID "
                    f"{d.uid} {d.internaldate.isoformat()}", destination_uid=d.uid))
        for s in st.src_left:
            j = inp.journal.get(s.uid)
            if j is not None and j.state == "skipped":
                out.differences.append(_diff(
                    "skipped", folder, s, j.skip_reason or "skipped by a pass (no reason "
                    "recorded)", explained=j.skip_reason is not None))
                continue
            found = moved.get((id(st), s.uid))
            if found is not None:
                ost, d = found
                out.differences.append(_diff(
                    "wrong_folder", folder, s, f"found in {ost.inp.folder!r} (UID {d.uid}) "
                    f"instead of {folder!r}", other_folder=ost.inp.folder,
                    destination_uid=d.uid))
                continue
            if j is None:
                why = "never copied (new on the source since the last pass?)"
            elif j.state == "copied" and j.destination_uid is not None:
                why = (f"copied by mxshift as destination UID {j.destination_uid}, which is no "
                       "longer in the folder")
            elif j.state == "copied":
                why = "copied by mxshift, but no copy is found on the destination"
            else:
                why = f"journal state {j.state!r}: a pass was interrupted; run sync again"
            out.differences.append(_diff("missing", folder, s, why))
        ours = {j.destination_uid: j for j in inp.journal.values()
                if j.destination_uid is not None}
        src_fps = {s.fingerprint: s for s in inp.source}
        for d in st.dst_left:
            if (id(st), d.uid) in moved_dst:
                continue
            if d.fingerprint in src_fps:
                of = src_fps[d.fingerprint]
                out.differences.append(Difference(
                    kind="duplicate", folder=folder, reason=f"destination UID {d.uid} is a "
                    f"second copy of source UID {of.uid}, already on the destination",
                    source_uid=of.uid, destination_uid=d.uid, subject=d.subject,
                    sender=d.sender, date=d.date, size=d.size, fingerprint=d.fingerprint))
            elif d.uid in ours:
                out.differences.append(_diff(
                    "extra", folder, d, f"put there by mxshift (source UID "
                    f"{ours[d.uid].source_uid}), no longer on the source; a delta pass "
                    "removes it", source=False))
            else:
                out.differences.append(_diff(
                    "extra", folder, d, "on the destination only, not put there by mxshift "
                    "(the user's own mail or another tool's); left alone", source=False,
                    explained=True))
    return out
