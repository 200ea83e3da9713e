"""Settling what an interrupted pass left in a passing state, before anything else runs.

Why first: a row in ``pending``/``moving``/``deleting`` means "this was about to be sent".
Whether it reached the destination is only known by looking there. Guessing wrong either
way loses or duplicates a message, so every case is decided from the destination:

- pending:  the message is found (fingerprint, unmapped UID >= the recorded floor) ->
            copied; not found -> the row is dropped and the message is copied again.
- moving:   still in the old folder -> move cancelled (re-planned later); found in the
            target -> move settled; neither -> row dropped, the message is copied anew.
- deleting: the source already lost the message; finish the expunge, drop the row.
- flag intents: STORE +/-FLAGS is idempotent: drop the intent, the plan re-applies it.
"""

from __future__ import annotations

from collections import defaultdict

from mxshift.engine.journal import Journal
from mxshift.engine.locate import locate
from mxshift.state.models import FolderPair, Message
from mxshift.store.base import Store


def reconcile(journal: Journal, dest: Store, pairs: dict[int, FolderPair], *,
              appends_only: bool = False) -> int:
    """Reconcile every passing row of the mailbox; returns how many rows it settled.

    ``appends_only`` (post-cutover sweeps) settles interrupted appends and leaves every
    other intent alone: after the cutover nothing on the destination is moved or deleted."""
    rows = journal.passing() if journal.any_passing() else []
    if appends_only:
        rows = [r for r in rows if r.state == "pending"]
    if not rows:
        return 0
    flag_ids = [r.id for r in rows if r.pending_flags is not None]
    journal.clear_flag_intents(flag_ids)
    by_pair: dict[int, list[Message]] = defaultdict(list)
    for r in rows:
        if r.state in ("pending", "moving", "deleting"):
            by_pair[r.folder_pair_id].append(r)
    for pair_id, pair_rows in sorted(by_pair.items()):
        pair = pairs.get(pair_id)
        if pair is None:  # folder gone from state: nothing on the destination to find
            journal.forget_ids([r.id for r in pair_rows], "journal drop orphan rows")
            continue
        st = dest.select(pair.destination_name, readonly=False)
        if pair.destination_uidvalidity is not None and st.uidvalidity != pair.destination_uidvalidity:
            journal.reset_pair(pair_id, destination_uidvalidity=None)
            continue
        _pending(journal, dest, pair, [r for r in pair_rows if r.state == "pending"])
        _deleting(journal, dest, [r for r in pair_rows if r.state == "deleting"])
        moving = [r for r in pair_rows if r.state == "moving"]
        if moving:
            _moving(journal, dest, pair, moving, pairs)
    return len(rows)


def _pending(journal: Journal, dest: Store, pair: FolderPair, rows: list[Message]) -> None:
    if not rows:
        return
    floor = min(r.dest_uid_floor or 1 for r in rows)
    mapped = journal.mapped_dest_uids(pair.id)
    found = locate(dest, floor, mapped, [(r.source_uid, r.fingerprint) for r in rows])
    journal.settle_copied(pair.id, {uid: d for uid, d in found.items()})  # type: ignore[misc]
    journal.forget_ids([r.id for r in rows if r.source_uid not in found],
                       "journal drop appends that never landed")


def _deleting(journal: Journal, dest: Store, rows: list[Message]) -> None:
    if not rows:
        return
    uids = [r.destination_uid for r in rows if r.destination_uid is not None]
    present = {m.uid for m in dest.fetch_meta(uids)} if uids else set()
    if present:
        dest.expunge(sorted(present))
        journal.hooks.checkpoint("expunge (reconcile)")
    journal.forget_ids([r.id for r in rows], "journal settle deletions")


def _moving(journal: Journal, dest: Store, pair: FolderPair, rows: list[Message],
            pairs: dict[int, FolderPair]) -> None:
    uids = [r.destination_uid for r in rows if r.destination_uid is not None]
    still_here = {m.uid for m in dest.fetch_meta(uids)} if uids else set()
    gone = []
    for r in rows:
        if r.destination_uid in still_here or r.move_pair_id not in pairs:
            journal.cancel_move(r.id)
        else:
            gone.append(r)
    by_target: dict[int, list[Message]] = defaultdict(list)
    for r in gone:
        by_target[r.move_pair_id].append(r)  # type: ignore[index]
    for target_id, target_rows in sorted(by_target.items()):
        target = pairs[target_id]
        dest.select(target.destination_name, readonly=False)
        floor = min(r.dest_uid_floor or 1 for r in target_rows)
        found = locate(dest, floor, journal.mapped_dest_uids(target_id),
                       [(r.id, r.fingerprint) for r in target_rows])
        for r in target_rows:
            if r.id in found:
                journal.settle_move(r.id, target_id, r.move_source_uid,  # type: ignore[arg-type]
                                    found[r.id])
        journal.forget_ids([r.id for r in target_rows if r.id not in found],
                           "journal drop moves that never landed")
