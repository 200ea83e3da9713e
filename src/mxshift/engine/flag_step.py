"""Step 6c of a mailbox pass: a folder's flag changes and deletions, planned from the
source's flags and the journal, journalled, then sent to the destination.

Why apart: a part of :class:`~mxshift.engine.mailbox_pass.MailboxPass` with a job of its
own (planning is pure, engine/plan.py and engine/flag_plan.py; this reads what the plan
compares and executes it). A delta reads the rows of the changed messages only
(:attr:`FolderScan.changed`), a first copy's plan a slice at a time.
"""

from __future__ import annotations

from itertools import islice
from typing import Mapping

from mxshift.engine.flag_plan import intent_text, store_commands
from mxshift.engine.folder_scan import FolderScan
from mxshift.engine.journal import Doomed, Hooks, Journal
from mxshift.engine.pass_result import PassResult
from mxshift.engine.plan import FlagChange, plan_folder
from mxshift.state.models import FolderPair
from mxshift.store.base import Store
from mxshift.store.flag_map import FlagMap

#: Source UIDs per journal read of the flag plan after a folder's copy (_flag_changes).
FLAG_SLICE = 2000


class FlagStep:
    """Step 6c of :class:`~mxshift.engine.mailbox_pass.MailboxPass` (a base class of it)."""

    # Provided by MailboxPass (engine/mailbox_pass.py), which this class is a part of.
    journal: Journal
    hooks: Hooks

    def _flag_changes(self, pair: FolderPair, scan: FolderScan,
                      permanent: frozenset[str] | None
                      ) -> tuple[list[FlagChange], dict[int, frozenset[str]]]:
        """The folder's flag changes, and the flags each changed row will have."""
        if not pair.present:
            return [], {}
        source = scan.source_flags
        if scan.changed is not None:  # a delta: the changed messages' rows only
            source = self._changed_flags(scan)
            known = self.journal.known_of(pair.id, source)
            changes = plan_folder(source, known, permanent).flag_changes
            return changes, {c.source_uid: (known[c.source_uid].flags | c.add) - c.remove
                             for c in changes}
        if not scan.new or len(source) <= FLAG_SLICE:
            known = self.journal.known(pair.id)
            changes = plan_folder(source, known, permanent).flag_changes
            return changes, {c.source_uid: (known[c.source_uid].flags | c.add) - c.remove
                             for c in changes}
        # After a copy the cached rows are void and all of them would be read again:
        # a slice of UIDs at a time instead (flag changes are per message), so the
        # copy of a large folder does not end holding all its rows at once (issue #3).
        changes, want = [], {}
        uids = iter(source) if isinstance(source, FlagMap) else iter(sorted(source))
        while part := list(islice(uids, FLAG_SLICE)):
            known = self.journal.known_between(pair.id, part[0], part[-1])
            found = plan_folder({u: source[u] for u in part}, known, permanent).flag_changes
            changes += found
            want.update({c.source_uid: (known[c.source_uid].flags | c.add) - c.remove
                         for c in found})
        return changes, want

    @staticmethod
    def _changed_flags(scan: FolderScan) -> Mapping[int, frozenset[str]]:
        """The source flags the flag plan compares: of the changed messages in a delta
        (:attr:`FolderScan.changed`), of every message after a full scan."""
        if scan.changed is None:
            return scan.source_flags
        source = scan.source_flags
        return {u: source[u] for u in scan.changed if u in source}

    def _write_changes(self, dst: Store, pair: FolderPair, changes: list[FlagChange],
                       deleting: dict[int, Doomed], result: PassResult) -> None:
        """A folder's flag changes and deletions: journalled in one transaction, sent in
        one round trip (one STORE per flag and direction, plus \\Deleted, pipelined),
        then UID EXPUNGE; the caller settles them in the folder's last transaction.

        Not pipelined with the STOREs: Dovecot runs pipelined UID commands in parallel
        (neither uses sequence numbers), so a UID EXPUNGE sent with the \\Deleted STORE
        can run first and leave the message there (seen in tests/test_engine_modes.py).

        Crash safety is that of the step-by-step writes: a flag intent is cleared and
        re-planned by the next pass (STORE is idempotent), a ``deleting`` row is
        expunged by reconcile whether or not its \\Deleted STORE or EXPUNGE went out.
        """
        dest_deleting = sorted(r.destination_uid for r in deleting.values()
                               if r.destination_uid is not None)
        if not changes and not deleting:
            return
        self.journal.record_changes(pair.id, {c.source_uid: intent_text(c) for c in changes},
                                    sorted(deleting))
        commands = [(c.add, c.flags, c.uids) for c in store_commands(changes)]
        if dest_deleting:
            commands.append((True, ("\\Deleted",), tuple(dest_deleting)))
        if commands:
            dst.store_flags(commands)
            self.hooks.checkpoint("store flags")
        if dest_deleting:
            dst.expunge(dest_deleting, marked=True)
            self.hooks.checkpoint("expunge")
        result.flags_updated += len(changes)
        result.deleted += len(deleting)
