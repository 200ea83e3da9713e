"""Gmail labels instead of copies: a message found in several source folders is appended
once to a Gmail destination and given the other folders as labels (X-GM-LABELS).

Why: Gmail shows one message in as many folders as it has labels. Appending it into every
folder stores N separate messages on the destination (N times the upload cap, N copies
in "All Mail", flags and deletions no longer shared). With ``[options] gmail_labels =
"labels"`` and a destination that advertises ``X-GM-EXT-1``, the pass appends one copy
(the *anchor*) and sends ``UID STORE anchor +X-GM-LABELS (label)`` for each other folder;
Gmail then shows the same message in that label's folder, under a new UID there.

Which messages are "the same": those with the same strong fingerprint (Message-ID, Date,
From, Subject, size: mxshift.identity), among the new messages of this pass and the copies
already journalled. A Gmail source shows the same message in each label folder with the
same headers and size, so they group; a source that has separate copies of one message
in several folders groups them too, which is the point. Messages without a Message-ID
(weak fingerprint), copies within one folder, and folders that are not labels on Gmail
(Sent, Drafts, Trash, Spam, All Mail, Starred: system folders with rules of their own)
are appended as before. X-GM-MSGID of a Gmail source is not used.

Crash safety, with no new journal state: a label application is journalled like an
append, as a ``pending`` row of the label folder's pair (``origin = "labelled"``) whose
``dest_uid_floor`` is the label folder's UIDNEXT before the STORE. A kill before the STORE
leaves a row reconcile drops (nothing above the floor matches: the message is new again
next pass and is labelled then); a kill after it leaves a row reconcile settles (the
message shows in the label folder above the floor). A folder whose messages were left
for this step keeps no HIGHESTMODSEQ until its labels are settled, so a crash in between
cannot make the next pass skip it as unchanged. Before labelling, the label folder is
searched for an unmapped copy (lost state, a re-run after a crash between STORE and
settling that reconcile did not see): found ones are adopted, never labelled twice.

Flags on Gmail belong to the message, not to the folder: the anchor's flags are what the
labelled folders show. A source whose copies carry different flags per folder ends with
the flags of the last folder a pass changed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from sqlalchemy import select, update

from mxshift.engine.copier import FolderCopier, NewMessage
from mxshift.engine.journal import flags_set, flags_text
from mxshift.engine.locate import locate
from mxshift.errors import FolderError
from mxshift.mapping import decode_component
from mxshift.state.models import Finding, FolderPair, Message
from mxshift.store.base import Store

if TYPE_CHECKING:
    from mxshift.engine.folder_scan import FolderScan
    from mxshift.engine.mailbox_pass import MailboxPass
    from mxshift.engine.pass_result import PassResult

CAPABILITY = "X-GM-EXT-1"
# Folder roles that are not plain labels on Gmail: never anchors, never labelled.
NOT_LABELS = frozenset({"sent", "drafts", "trash", "junk", "all", "flagged"})


# -- pure planning ----------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class Member:
    """A new source message: folder pair, source UID, fingerprint."""

    pair_id: int
    uid: int
    fingerprint: str


@dataclass(frozen=True, order=True)
class Anchor:
    """The copy a label goes on: a journalled row, or a new message appended this pass."""

    pair_id: int
    uid: int


def plan_labels(new: Iterable[Member], existing: dict[str, Anchor]) -> dict[Member, Anchor]:
    """Which new messages become a label on which anchor (the rest are appended).

    Per fingerprint: the anchor is the journalled copy ``existing`` names, else the new
    member of the lowest (pair, UID), which stays to be appended. Every other member in
    another folder than the anchor's becomes a label, one per folder; further members in
    a folder that already has one (duplicates within a folder) stay copies.
    """
    groups: dict[str, list[Member]] = defaultdict(list)
    for m in new:
        groups[m.fingerprint].append(m)
    out: dict[Member, Anchor] = {}
    for fp, members in groups.items():
        members.sort()
        anchor = existing.get(fp)
        if anchor is None:
            anchor = Anchor(members[0].pair_id, members[0].uid)
        used = {anchor.pair_id}
        for m in members:
            if m.pair_id in used:
                continue
            used.add(m.pair_id)
            out[m] = anchor
    return out


def label_of(pair: FolderPair) -> str:
    """The Gmail label that shows a message in ``pair``'s destination folder: the
    system label for INBOX, else the folder's decoded name ("/" nests, as on Gmail)."""
    if pair.role == "inbox" or pair.destination_name.upper() == "INBOX":
        return "\\Inbox"
    return decode_component(pair.destination_name)


# -- the pass's two hooks ----------------------------------------------------------------

@dataclass
class Labelling:
    """What :func:`take_labels` held back from the copy, for :func:`apply_labels`."""

    todo: dict[int, list[tuple[NewMessage, Anchor]]] = field(default_factory=dict)
    modseq: dict[int, int | None] = field(default_factory=dict)  # held back per pair


def active(owner: "MailboxPass", dst: Store) -> bool:
    return owner.settings.gmail_labels == "labels" and CAPABILITY in dst.capabilities


def take_labels(owner: "MailboxPass", dst: Store,
                scans: dict[int, "FolderScan"]) -> Labelling:
    """Before the copy: take the messages that will be labels out of their scans."""
    plan = Labelling()
    if not active(owner, dst):
        return plan
    eligible = {pid: s for pid, s in scans.items()
                if s.pair.present and s.pair.role not in NOT_LABELS}
    members = {Member(pid, m.uid, m.fingerprint): m for pid, s in eligible.items()
               for m in s.new.values() if m.strong and m.fingerprint}
    if not members:
        return plan
    existing = _journalled(owner, {m.fingerprint for m in members})
    for member, anchor in sorted(plan_labels(members, existing).items()):
        scan = eligible[member.pair_id]
        plan.todo.setdefault(member.pair_id, []).append(
            (scan.new.pop(member.uid), anchor))
    for pid in plan.todo:
        # No HIGHESTMODSEQ for this folder until its labels are settled (module doc).
        plan.modseq[pid] = eligible[pid].highestmodseq
        eligible[pid].highestmodseq = None
    return plan


def apply_labels(owner: "MailboxPass", src: Store, dst: Store, plan: Labelling,
                 scans: dict[int, "FolderScan"], result: "PassResult") -> None:
    """After the copy: label each anchor with the folders held back, folder by folder."""
    for pid in sorted(plan.todo):
        scan = scans[pid]
        try:
            _label_folder(owner, src, dst, scan, plan.todo[pid], result)
        except FolderError as exc:  # this folder waits for the next pass; the rest go on
            owner._folder_error(scan.pair, exc, result)
            continue
        if scan.complete and plan.modseq.get(pid) is not None:
            with owner.journal.tx("journal folder labels settled") as s:
                s.execute(update(FolderPair).where(FolderPair.id == pid)
                          .values(source_highestmodseq=plan.modseq[pid]))


# -- one label folder --------------------------------------------------------------------

def _journalled(owner: "MailboxPass", fps: set[str]) -> dict[str, Anchor]:
    """Fingerprint -> the journalled copy (lowest pair, UID) a label can go on."""
    out: dict[str, Anchor] = {}
    fp_list = sorted(fps)
    with owner.db.session() as s:
        for i in range(0, len(fp_list), 500):
            rows = s.execute(select(Message.fingerprint, Message.folder_pair_id,
                                    Message.source_uid, FolderPair.role)
                             .join(FolderPair)
                             .where(FolderPair.mailbox_id == owner.mailbox_id,
                                    FolderPair.present.is_(True),
                                    Message.fingerprint.in_(fp_list[i:i + 500]),
                                    Message.state == "copied", Message.strong.is_(True),
                                    Message.destination_uid.is_not(None))).all()
            for fp, pid, uid, role in rows:
                if role in NOT_LABELS:
                    continue
                a = Anchor(pid, uid)
                if fp not in out or a < out[fp]:
                    out[fp] = a
    return out


def _anchor_rows(owner: "MailboxPass", anchors: set[Anchor]) -> dict[Anchor, Message]:
    out: dict[Anchor, Message] = {}
    by_pair: dict[int, list[int]] = defaultdict(list)
    for a in anchors:
        by_pair[a.pair_id].append(a.uid)
    for pid, uids in by_pair.items():
        for uid, row in owner.journal.rows(pid, uids).items():
            if row.state == "copied" and row.destination_uid is not None:
                out[Anchor(pid, uid)] = row
    return out


def _label_folder(owner: "MailboxPass", src: Store, dst: Store, scan: "FolderScan",
                  items: list[tuple[NewMessage, Anchor]], result: "PassResult") -> None:
    pair, journal = scan.pair, owner.journal
    rows = _anchor_rows(owner, {a for _, a in items})
    known = journal.known(pair.id)
    items = [(m, a) for m, a in items if m.uid not in known]  # e.g. copied after a reset
    fallback = [m for m, a in items if a not in rows]
    items = [(m, a) for m, a in items if a in rows]
    if fallback:  # the anchor was not copied (skipped, refused): copy as before
        st = dst.select(pair.destination_name, readonly=False)
        src.select(pair.source_name, readonly=True)
        FolderCopier(owner, src, dst, pair, st, result).copy(
            sorted(fallback, key=lambda m: m.uid), adopt=True)
    if not items:
        return
    st = dst.select(pair.destination_name, readonly=False)
    # An unmapped copy already in the label folder is adopted, not labelled again.
    there = locate(dst, 1, journal.mapped_dest_uids(pair.id),
                   [(m.uid, m.fingerprint) for m, _ in items])
    if there:
        with journal.tx("journal adopted labels") as s:
            for m, a in items:
                if m.uid in there:
                    s.add(_row(pair.id, m, rows[a], state="copied", origin="adopted",
                               destination_uid=there[m.uid]))
        result.adopted += len(there)
        items = [(m, a) for m, a in items if m.uid not in there]
        if not items:
            return
    floor = st.uidnext
    with journal.tx("journal pending labels", fenced=True) as s:
        for m, a in items:
            s.add(_row(pair.id, m, rows[a], state="pending", origin="labelled",
                       dest_uid_floor=floor))
    label = label_of(pair)
    by_folder: dict[int, list[int]] = defaultdict(list)
    for _, a in items:
        by_folder[a.pair_id].append(rows[a].destination_uid)  # type: ignore[arg-type]
    names = _destination_names(owner, set(by_folder))
    for anchor_pid, dest_uids in sorted(by_folder.items()):
        dst.select(names[anchor_pid], readonly=False)
        dst.add_gmail_labels(dest_uids, [label])  # type: ignore[attr-defined]
        owner.hooks.checkpoint("store +x-gm-labels")
    dst.select(pair.destination_name, readonly=False)
    found = locate(dst, floor, journal.mapped_dest_uids(pair.id),
                   [(m.uid, m.fingerprint) for m, _ in items])
    journal.settle_copied(pair.id, {u: d for u, d in found.items()})  # type: ignore[misc]
    missing = [m for m, _ in items if m.uid not in found]
    if missing:
        journal.forget(pair.id, [m.uid for m in missing])
        reason = (f"{len(missing)} message(s) labelled {label!r} did not show in the folder "
                  "afterwards; the next pass tries again")
        result.errors += 1
        result.notes.append(f"{pair.display_name or pair.source_name}: {reason}")
        journal.finding(Finding(mailbox_id=journal.mailbox_id, pass_id=owner.pass_id,
                                kind="folder_error", folder=pair.source_name, reason=reason))
    if found:
        result.notes.append(f"{pair.display_name or pair.source_name}: {len(found)} "
                            f"message(s) labelled {label!r} instead of copied")


def _row(pair_id: int, m: NewMessage, anchor: Message, **values: object) -> Message:
    """A journal row for a label folder's view of the anchor: the anchor's identity and
    flags (Gmail's flags belong to the message), this folder's source UID."""
    return Message(folder_pair_id=pair_id, source_uid=m.uid, fingerprint=m.fingerprint,
                   strong=m.strong, content_hash=anchor.content_hash, size=anchor.size,
                   flags=flags_text(flags_set(anchor.flags)), **values)


def _destination_names(owner: "MailboxPass", pair_ids: set[int]) -> dict[int, str]:
    with owner.db.session() as s:
        return {p.id: p.destination_name for p in s.scalars(
            select(FolderPair).where(FolderPair.id.in_(sorted(pair_ids))))}
