"""Steps 5 and 6a of a mailbox pass: a message that vanished from one folder and
appeared in another is moved on the destination (UID MOVE), never copied twice.

Why apart: a part of :class:`~mxshift.engine.mailbox_pass.MailboxPass` with a job of its
own (planning is pure, engine/plan.py; this is the journalled execution).
"""

from __future__ import annotations

from collections import defaultdict

from mxshift.engine.journal import Hooks, Journal
from mxshift.engine.locate import locate
from mxshift.engine.plan import Candidate, plan_moves
from mxshift.engine.settings import PassSettings
from mxshift.state.db import StateDB
from mxshift.state.models import FolderPair
from mxshift.store.base import Store
from mxshift.engine.folder_scan import FolderScan
from mxshift.engine.pass_result import PassResult


class MoveStep:
    """Steps 5/6a of :class:`~mxshift.engine.mailbox_pass.MailboxPass` (a base class of it)."""

    # Provided by MailboxPass (engine/mailbox_pass.py), which this class is a part of.
    db: StateDB
    mailbox_id: int
    journal: Journal
    settings: PassSettings
    hooks: Hooks

    def _plan_moves(self, scans: dict[int, FolderScan]) -> list[tuple[Candidate, Candidate]]:
        vanished: list[Candidate] = []
        for scan in scans.values():
            if scan.vanished:
                # a scan of the changed messages' rows has the vanished ones' (partial)
                known = (scan.partial.rows if scan.partial is not None
                         else self.journal.known(scan.pair.id))
                vanished += [Candidate(scan.pair.id, u, known[u].fingerprint)
                             for u in scan.vanished]
        if not vanished:
            return []
        new = [Candidate(s.pair.id, m.uid, m.fingerprint) for s in scans.values()
               for m in s.new.values()]
        return plan_moves(vanished, new)

    def _execute_moves(self, dst: Store, scans: dict[int, FolderScan],
                       moves: list[tuple[Candidate, Candidate]], pairs: dict[int, FolderPair],
                       result: PassResult) -> None:
        groups: dict[tuple[int, int], list[tuple[Candidate, Candidate]]] = defaultdict(list)
        for old, new in moves:
            groups[(old.pair_id, new.pair_id)].append((old, new))
        for (a, b), items in sorted(groups.items()):
            if a == b:
                for old, new in items:
                    scans[a].vanished.remove(old.source_uid)
                    scans[b].new.pop(new.source_uid, None)
                    self.journal.rekey(a, old.source_uid, new.source_uid)
                continue
            rows = self.journal.rows(a, [o.source_uid for o, _ in items])
            # A copy whose destination UID we never learnt cannot be moved: it stays
            # vanished (deleted) and the new message is copied.
            todo = [(rows[o.source_uid], n) for o, n in items
                    if rows[o.source_uid].destination_uid is not None]
            for row, n in todo:
                scans[a].vanished.remove(row.source_uid)
                scans[b].new.pop(n.source_uid, None)
            if not todo:
                continue
            target_name = pairs[b].destination_name
            floor = dst.status(target_name).uidnext
            dst.select(pairs[a].destination_name, readonly=False)
            self.journal.record_moves([(row.id, b, n.source_uid, floor) for row, n in todo],
                                      touches=(a, b))
            uid_map = dst.move([r.destination_uid for r, _ in todo], target_name)  # type: ignore[misc]
            self.hooks.checkpoint("move")
            if uid_map is None:
                dst.select(target_name, readonly=False)
                found = locate(dst, floor, self.journal.mapped_dest_uids(b),
                               [(r.id, r.fingerprint) for r, _ in todo])
                uid_map = {r.destination_uid: found[r.id] for r, _ in todo if r.id in found}
            self.journal.settle_moves([(row.id, b, n.source_uid,
                                        uid_map.get(row.destination_uid))  # type: ignore[misc]
                                       for row, n in todo], touches=(a, b))
            result.moved += len(todo)
