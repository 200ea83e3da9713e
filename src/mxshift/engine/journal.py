"""The journal: every intended change is written here before it is sent, and settled after.

Why a class of small transactions: each method is one committed transaction, followed by a
checkpoint. A pass killed at any checkpoint leaves a journal that the next pass reconciles
(see :mod:`mxshift.engine.reconcile`); tests crash the pass at every checkpoint in turn.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from mxshift.engine.plan import Known
from mxshift.state.db import StateDB
from mxshift.state.models import Event, Finding, FolderPair, Message


class Hooks:
    """Test seam: ``checkpoint`` is called after every journal commit and protocol write."""

    def checkpoint(self, label: str) -> None:
        return None


class SimulatedCrash(BaseException):
    """Raised by a test hook to stop a pass as abruptly as a kill would.

    A BaseException so that no ``except Exception`` in the engine can tidy up after it:
    the journal must be right without any clean-up.
    """


class CrashAt(Hooks):
    """Crash at the ``n``-th checkpoint (0-based); count them when ``n`` is None."""

    def __init__(self, n: int | None) -> None:
        self.n = n
        self.count = 0
        self.labels: list[str] = []

    def checkpoint(self, label: str) -> None:
        self.labels.append(label)
        if self.n is not None and self.count == self.n:
            self.count += 1
            raise SimulatedCrash(f"simulated crash at checkpoint {self.n}: {label}")
        self.count += 1


def flags_text(flags: Iterable[str]) -> str:
    return " ".join(sorted(set(flags)))


def flags_set(text: str | None) -> frozenset[str]:
    return frozenset(text.split()) if text else frozenset()


@dataclass(frozen=True)
class Pending:
    """A copy about to be appended."""

    source_uid: int
    fingerprint: str
    strong: bool
    content_hash: str
    size: int
    flags: frozenset[str]
    repair: str | None = None


class Journal:
    def __init__(self, db: StateDB, mailbox_id: int, hooks: Hooks) -> None:
        self.db = db
        self.mailbox_id = mailbox_id
        self.hooks = hooks

    @contextmanager
    def tx(self, label: str) -> Iterator[Session]:
        with self.db.session() as s:
            with s.begin():
                yield s
        self.hooks.checkpoint(label)

    def read(self) -> Session:
        return self.db.session()

    # -- reading --------------------------------------------------------------------
    def known(self, pair_id: int) -> dict[int, Known]:
        with self.read() as s:
            rows = s.execute(select(Message.source_uid, Message.destination_uid, Message.flags,
                                    Message.fingerprint, Message.state)
                             .where(Message.folder_pair_id == pair_id)).all()
        return {r[0]: Known(r[0], r[1], flags_set(r[2]), r[3], r[4]) for r in rows}

    def mapped_dest_uids(self, pair_id: int) -> set[int]:
        with self.read() as s:
            return {u for (u,) in s.execute(select(Message.destination_uid).where(
                Message.folder_pair_id == pair_id, Message.destination_uid.is_not(None)))}

    def passing(self) -> list[Message]:
        with self.read() as s:
            return list(s.scalars(select(Message).join(FolderPair).where(
                FolderPair.mailbox_id == self.mailbox_id,
                Message.state.in_(("pending", "moving", "deleting"))
                | Message.pending_flags.is_not(None)).order_by(Message.id)))

    def rows(self, pair_id: int, uids: Iterable[int]) -> dict[int, Message]:
        uid_list = list(uids)
        out: dict[int, Message] = {}
        with self.read() as s:
            for i in range(0, len(uid_list), 500):
                for m in s.scalars(select(Message).where(
                        Message.folder_pair_id == pair_id,
                        Message.source_uid.in_(uid_list[i:i + 500]))):
                    out[m.source_uid] = m
        return out

    # -- copies ---------------------------------------------------------------------
    def record_pending(self, pair_id: int, items: list[Pending], floor: int) -> None:
        with self.tx("journal pending appends") as s:
            for p in items:
                s.add(Message(folder_pair_id=pair_id, source_uid=p.source_uid,
                              fingerprint=p.fingerprint, strong=p.strong,
                              content_hash=p.content_hash, size=p.size,
                              flags=flags_text(p.flags), state="pending",
                              origin="appended", dest_uid_floor=floor, repair=p.repair))

    def settle_copied(self, pair_id: int, dest_uids: dict[int, int | None]) -> None:
        if not dest_uids:
            return
        with self.tx("journal settle appends") as s:
            for source_uid, dest_uid in dest_uids.items():
                s.execute(update(Message).where(Message.folder_pair_id == pair_id,
                                                Message.source_uid == source_uid)
                          .values(state="copied", destination_uid=dest_uid,
                                  dest_uid_floor=None))

    def update_pending(self, pair_id: int, source_uid: int, fingerprint: str, strong: bool,
                       chash: str, size: int, repair: str) -> None:
        """A repaired copy is about to be sent: its identity is that of the new bytes."""
        with self.tx("journal repaired append") as s:
            s.execute(update(Message).where(Message.folder_pair_id == pair_id,
                                            Message.source_uid == source_uid)
                      .values(fingerprint=fingerprint, strong=strong, content_hash=chash,
                              size=size, repair=repair))

    def adopt(self, pair_id: int, items: list[tuple[Pending, int, frozenset[str]]]) -> None:
        """Journal destination copies recognised by fingerprint (no protocol write)."""
        if not items:
            return
        with self.tx("journal adopted copies") as s:
            for p, dest_uid, dest_flags in items:
                s.add(Message(folder_pair_id=pair_id, source_uid=p.source_uid,
                              destination_uid=dest_uid, fingerprint=p.fingerprint,
                              strong=p.strong, content_hash=p.content_hash or None,
                              size=p.size, flags=flags_text(dest_flags), state="copied",
                              origin="adopted"))

    def mark_skipped(self, pair_id: int, source_uid: int, *, fingerprint: str, size: int,
                     finding: Finding, existing: bool) -> None:
        with self.tx("journal skipped message") as s:
            if existing:
                s.execute(update(Message).where(Message.folder_pair_id == pair_id,
                                                Message.source_uid == source_uid)
                          .values(state="skipped", dest_uid_floor=None))
            else:
                s.add(Message(folder_pair_id=pair_id, source_uid=source_uid,
                              fingerprint=fingerprint, size=size, state="skipped",
                              flags=""))
            s.add(finding)

    def forget(self, pair_id: int, source_uids: Iterable[int]) -> None:
        uids = list(source_uids)
        if not uids:
            return
        with self.tx("journal forget rows") as s:
            for i in range(0, len(uids), 500):
                s.execute(delete(Message).where(Message.folder_pair_id == pair_id,
                                                Message.source_uid.in_(uids[i:i + 500])))

    def forget_ids(self, ids: Iterable[int], label: str) -> None:
        id_list = list(ids)
        if id_list:
            with self.tx(label) as s:
                s.execute(delete(Message).where(Message.id.in_(id_list)))

    def reset_pair(self, pair_id: int, **pair_values: object) -> None:
        """Forget a folder's map (UIDVALIDITY changed); fingerprints re-adopt the copies.

        The saved HIGHESTMODSEQ goes too: the next read of the folder must be a full one,
        since flags of messages we no longer map cannot come from the journal."""
        with self.tx("journal reset folder") as s:
            s.execute(delete(Message).where(Message.folder_pair_id == pair_id))
            s.execute(update(FolderPair).where(FolderPair.id == pair_id)
                      .values(last_synced_at=None, source_highestmodseq=None, **pair_values))

    def track_uidvalidity(self, pair: FolderPair, side: str, current: int) -> bool:
        """Record a folder's UIDVALIDITY on first sight; on a change forget the folder's
        map (its UIDs mean something else now) and return True: the copies on the
        destination are then recognised again by fingerprint."""
        column = f"{side}_uidvalidity"
        known = getattr(pair, column)
        if known == current:
            return False
        if known is None:
            with self.tx(f"journal {side} uidvalidity") as s:
                s.execute(update(FolderPair).where(FolderPair.id == pair.id)
                          .values({column: current}))
            return False
        self.event("warning", f"{pair.source_name}: {side} UIDVALIDITY changed ({known} -> "
                              f"{current}); re-matching copies by fingerprint")
        self.reset_pair(pair.id, **{column: current})
        return True

    # -- flags ----------------------------------------------------------------------
    def record_flag_intent(self, pair_id: int, uids: list[int], text: str) -> None:
        with self.tx("journal pending flag change") as s:
            s.execute(update(Message).where(Message.folder_pair_id == pair_id,
                                            Message.source_uid.in_(uids))
                      .values(pending_flags=text))

    def settle_flags(self, pair_id: int, new_flags: dict[int, frozenset[str]]) -> None:
        with self.tx("journal settle flag change") as s:
            for uid, flags in new_flags.items():
                s.execute(update(Message).where(Message.folder_pair_id == pair_id,
                                                Message.source_uid == uid)
                          .values(flags=flags_text(flags), pending_flags=None))

    def clear_flag_intents(self, ids: list[int]) -> None:
        if ids:
            with self.tx("journal clear flag intents") as s:
                s.execute(update(Message).where(Message.id.in_(ids))
                          .values(pending_flags=None))

    # -- moves and deletions --------------------------------------------------------
    def record_move(self, row_id: int, target_pair: int, target_uid: int, floor: int) -> None:
        with self.tx("journal pending move") as s:
            s.execute(update(Message).where(Message.id == row_id).values(
                state="moving", move_pair_id=target_pair, move_source_uid=target_uid,
                dest_uid_floor=floor))

    def settle_move(self, row_id: int, target_pair: int, target_uid: int,
                    dest_uid: int | None) -> None:
        with self.tx("journal settle move") as s:
            s.execute(update(Message).where(Message.id == row_id).values(
                state="copied", folder_pair_id=target_pair, source_uid=target_uid,
                destination_uid=dest_uid, move_pair_id=None, move_source_uid=None,
                dest_uid_floor=None))

    def cancel_move(self, row_id: int) -> None:
        with self.tx("journal cancel move") as s:
            s.execute(update(Message).where(Message.id == row_id).values(
                state="copied", move_pair_id=None, move_source_uid=None, dest_uid_floor=None))

    def rekey(self, pair_id: int, old_uid: int, new_uid: int) -> None:
        with self.tx("journal re-key renumbered message") as s:
            s.execute(update(Message).where(Message.folder_pair_id == pair_id,
                                            Message.source_uid == old_uid)
                      .values(source_uid=new_uid))

    def record_deleting(self, pair_id: int, uids: list[int]) -> None:
        with self.tx("journal pending deletions") as s:
            for i in range(0, len(uids), 500):
                s.execute(update(Message).where(Message.folder_pair_id == pair_id,
                                                Message.source_uid.in_(uids[i:i + 500]))
                          .values(state="deleting"))

    # -- findings and events --------------------------------------------------------
    def finding(self, finding: Finding) -> None:
        with self.tx("journal finding") as s:
            s.add(finding)

    def event(self, level: str, text: str) -> None:
        with self.db.session() as s, s.begin():
            s.add(Event(mailbox_id=self.mailbox_id, level=level, text=text))
