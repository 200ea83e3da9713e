"""A very large mailbox's pass as several folder-pair tasks that run on several workers.

Why: one mailbox of 50 GB copied by one worker takes as long as that worker's two
connections allow, however many workers wait idle. Split, it is copied by as many
workers as it has parts.

How the work is divided, so that nothing is lost or duplicated whichever worker dies:

1. The **plan** (:class:`SplitPass`) is an ordinary pass with the whole-mailbox lease: it
   maps folders (creates what the destination lacks), reconciles every interrupted
   intent, scans every folder, and executes the moves across folders: everything that
   needs the whole mailbox. Then, if more than ``split_mailbox_above`` bytes are to be
   copied, it stops before step 6: its row gets status ``split`` and its folders are
   divided into groups (:func:`split_groups`), one folder-pair task each. Below the
   threshold it simply goes on as a normal pass.
2. Each **part** (:class:`PartPass`) is a pass restricted to its group's folder pairs
   under the plan row (``Pass.parent_id``): a lease on those pairs only (lease.py), a
   reconcile of its own pairs' intents only, a fresh scan of its folders, then step 6
   (copy, flags, deletions) exactly as a whole pass does it. Parts never plan moves: a
   message moved on the source after the plan is deleted by its old folder's part and
   copied by its new folder's part, so it is neither lost nor doubled.
3. A part killed mid-folder is redelivered like any task; the new delivery finds the
   dead part's row (its lease is free), marks it ``interrupted``, reconciles its pairs
   and copies the rest: the journal makes it exact, as for a whole pass.
4. The part that finishes last (all the plan's folders covered by finished parts) rolls
   the parts' counters up into the plan row, under a row lock, so the history keeps one
   logical pass per mailbox with its parts beside it.

Gmail "labels" mode never splits: it appends a message found in several folders once,
which needs all the folders in one pass.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import func, select, update

from mxshift.engine import lease
from mxshift.engine.journal import Hooks, Journal
from mxshift.engine.folder_scan import FolderScan
from mxshift.engine.mailbox_pass import MailboxPass
from mxshift.engine.pass_result import PassResult
from mxshift.engine.plan import Candidate
from mxshift.state.db import StateDB
from mxshift.state.models import Mailbox, Message, Pass, utcnow

COUNTERS = ("copied", "bytes_copied", "adopted", "flags_updated", "moved", "deleted",
            "skipped", "errors")
_DONE = ("ok", "partial", "failed")


def split_groups(weights: dict[int, int], parts: int) -> list[frozenset[int]]:
    """Folder pair ids grouped into at most ``parts`` groups of about equal bytes (pure).

    ``weights``: new bytes per folder pair that has work this pass. Largest folder first
    into the lightest group (the classic LPT rule: the longest part is at most 4/3 of the
    best possible). Folders with nothing to copy (flag changes, deletions, a folder gone)
    go one by one to the group with the fewest folders among the lightest. As many groups
    as folders with bytes to copy, at most ``parts``; a single group means "no split".
    """
    busy = sorted((f for f, w in weights.items() if w > 0), key=lambda f: (-weights[f], f))
    n = max(1, min(parts, len(busy)))
    groups: list[tuple[int, list[int]]] = [(0, []) for _ in range(n)]
    for f in busy + sorted(f for f, w in weights.items() if w <= 0):
        i = min(range(n), key=lambda k: (groups[k][0], len(groups[k][1]), k))
        size, members = groups[i]
        groups[i] = (size + max(weights[f], 0), members + [f])
    return [frozenset(m) for _, m in groups if m]


def roll_up(statuses: list[str], plan_errors: int) -> str:
    """The logical pass's status from its finished parts' (pure): ok when every part was
    ok and the plan had no error, failed when every part failed, else partial."""
    if all(s == "ok" for s in statuses):
        return "partial" if plan_errors else "ok"
    if all(s == "failed" for s in statuses):
        return "failed"
    return "partial"


class SplitPass(MailboxPass):
    """A whole-mailbox pass that hands its folders to part tasks when it has much to copy.

    ``send_parts(plan_pass_id, kind, groups)`` enqueues one part task per group (after the
    plan's lease is released) and returns their task ids, kept in ``part_tasks``."""

    def __init__(self, *args: object, split_above: int | None, split_parts: int,
                 send_parts: Callable[[int, str, list[frozenset[int]]], list[str]],
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.split_above, self.split_parts = split_above, split_parts
        self.reads_early = split_above is None  # folders it hands off are read there
        self.send_parts = send_parts
        self.groups: list[frozenset[int]] = []
        self.part_tasks: list[str] = []

    def run(self) -> PassResult:
        result = super().run()
        if self.groups and result.status == "split":
            self.part_tasks = self.send_parts(self.pass_id, result.kind, self.groups)
        return result

    def _handed_off(self, scans: dict[int, FolderScan], result: PassResult) -> bool:
        if self.split_above is None or self.settings.gmail_labels == "labels":
            return False
        weights = {pid: sum(m.size for m in scan.new.values()) for pid, scan in scans.items()}
        if sum(weights.values()) <= self.split_above:
            return False
        groups = split_groups(weights, self.split_parts)
        if len(groups) < 2:
            return False
        self.groups = groups
        result.notes.append(f"split into {len(groups)} folder-pair tasks "
                            f"({sum(weights.values())} bytes to copy)")
        return True

    def _finish(self, result: PassResult) -> None:
        if not self.groups or result.status != "ok":
            self.groups = []
            super()._finish(result)
            return
        # The plan's own work (moves, folder errors) is in its row; the parts add theirs.
        # The mailbox stays "running" until the last part has finished.
        result.status = "split"
        every = frozenset().union(*self.groups)
        with self.db.session() as s, s.begin():
            s.execute(update(Pass).where(Pass.id == self.pass_id).values(
                status="split", folders=lease.folders_text(every), seconds=result.seconds,
                error=result.error, **{c: getattr(result, c) for c in COUNTERS}))


class _PartJournal(Journal):
    """The journal of a part: reconcile sees the interrupted intents of its own folder
    pairs only (another part may be appending to the others right now)."""

    def __init__(self, db: StateDB, mailbox_id: int, hooks: Hooks,
                 folders: frozenset[int]) -> None:
        super().__init__(db, mailbox_id, hooks)
        self.folders = folders

    def passing(self) -> list[Message]:
        return [m for m in super().passing() if m.folder_pair_id in self.folders]


class PartPass(MailboxPass):
    """Step 3 to 6 of a pass for some folder pairs of a mailbox, a part of plan ``parent_id``."""

    def __init__(self, *args: object, folders: frozenset[int], parent_id: int,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.folders = folders
        self.parent_id = parent_id
        self.journal = _PartJournal(self.db, self.mailbox_id, self.hooks, folders)

    def _acquire(self, kind: str) -> int:
        return lease.acquire(self.db, self.mailbox_id, kind, folders=self.folders,
                             parent_id=self.parent_id)

    def _plan_moves(self, scans: dict[int, FolderScan]) -> list[tuple[Candidate, Candidate]]:
        return []  # moves across folders are the plan's (see the module docstring)

    def _finish(self, result: PassResult) -> None:
        if result.status == "ok" and result.errors:
            result.status = "partial"
        with self.db.session() as s, s.begin():
            s.execute(update(Pass).where(Pass.id == self.pass_id).values(
                status=result.status, finished_at=utcnow(), seconds=result.seconds,
                error=result.error, **{c: getattr(result, c) for c in COUNTERS}))
            # increments in SQL: parts of one mailbox finish at once on several machines
            s.execute(update(Mailbox).where(Mailbox.id == self.mailbox_id).values(
                messages_copied=func.coalesce(Mailbox.messages_copied, 0) + result.copied,
                bytes_copied=func.coalesce(Mailbox.bytes_copied, 0) + result.bytes_copied,
                messages_skipped=func.coalesce(Mailbox.messages_skipped, 0) + result.skipped,
                messages_failed=func.coalesce(Mailbox.messages_failed, 0) + result.errors))
            finish_plan(s, self.parent_id)


def finish_plan(s, parent_id: int) -> bool:  # type: ignore[no-untyped-def]
    """Roll the parts up into the plan row once finished parts cover all its folders;
    True if it did. Run in the transaction that finished a part: the plan row is locked
    first (FOR UPDATE on PostgreSQL; SQLite serialises write transactions anyway), so of
    two parts finishing at once the second sees the first and exactly one rolls up."""
    plan = s.scalars(select(Pass).where(Pass.id == parent_id).with_for_update()).one_or_none()
    if plan is None or plan.status != "split":
        return False
    parts = list(s.scalars(select(Pass).where(Pass.parent_id == parent_id)
                           .order_by(Pass.id)))
    finished = [p for p in parts if p.status in _DONE]
    covered: frozenset[int] = frozenset().union(
        *(lease.parse_folders(p.folders) or frozenset() for p in finished))
    if not (lease.parse_folders(plan.folders) or frozenset()) <= covered:
        return False
    for c in COUNTERS:  # interrupted parts too: what they copied before dying is copied
        setattr(plan, c, (getattr(plan, c) or 0) + sum(getattr(p, c) or 0 for p in parts))
    plan.status = roll_up([p.status for p in finished], plan.errors or 0)
    plan.error = next((p.error for p in finished if p.error), None)
    plan.finished_at = now = utcnow()
    started = plan.started_at if plan.started_at.tzinfo else plan.started_at.replace(
        tzinfo=now.tzinfo)
    plan.seconds = (now - started).total_seconds()
    mb = s.get(Mailbox, plan.mailbox_id)
    mb.status = {"ok": "synced", "partial": "partial", "failed": "failed"}[plan.status]
    mb.last_pass_at = now
    mb.last_error = plan.error
    return True
