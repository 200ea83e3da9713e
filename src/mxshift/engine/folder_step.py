"""Step 2 of a mailbox pass: map the source's folders to the destination's, create what
the destination lacks, record the folder pairs (engine/mailbox_pass.py runs it).

Why apart: a part of :class:`~mxshift.engine.mailbox_pass.MailboxPass` with a job of its
own (folders, not messages); the pass reads better without it, and the module stays short.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import select, update

from mxshift.engine import pass_rows
from mxshift.engine.dest_listing import ListedInBackground
from mxshift.engine.journal import Hooks, Journal
from mxshift.engine.folder_listing import included_sources, listing_known
from mxshift.engine.settings import PassSettings
from mxshift.errors import FolderError
from mxshift.mapping import FolderMapping, Namespace, RemoteFolder, map_folders
from mxshift.state.db import StateDB
from mxshift.state.models import Finding, FolderPair
from mxshift.store.base import Store
from mxshift.engine.folder_scan import delta_mode, status_as_saved
from mxshift.engine.pass_result import PassResult


class FolderStep:
    """Step 2 of :class:`~mxshift.engine.mailbox_pass.MailboxPass` (a base class of it)."""

    # Provided by MailboxPass (engine/mailbox_pass.py), which this class is a part of.
    db: StateDB
    mailbox_id: int
    journal: Journal
    settings: PassSettings
    hooks: Hooks

    def _map_folders(self, src: Store, dst: Store, result: PassResult) -> dict[int, FolderPair]:
        rows = pass_rows.folder_pairs(self.db, self.mailbox_id)
        if not rows:
            # A first pass: its folders are created on the destination before the scan,
            # so the destination logs in (store/lazy.py) while the source is listed, not
            # after: on a hosted server a login is a TLS handshake and an authentication,
            # hundreds of milliseconds per mailbox.
            prefetch = getattr(dst, "prefetch", None)
            if prefetch is not None:
                prefetch()
        src_ns = src.namespace()
        # The source's listing brings every folder's STATUS where it can (LIST-STATUS):
        # the scan then asks STATUS only of folders the answer left out.
        src_folders, self.source_status = src.list_folders_status()
        self._pairs_known = False
        quiet = self._nothing_to_do(src, src_folders, src_ns, rows)
        if quiet is not None:
            return quiet  # the destination is not even logged in to
        if self._pairs_known:
            # The pairs are known: the destination is listed while the source is
            # scanned, and mapped after the scan (engine/dest_listing.py).
            self._deferred_map = (ListedInBackground(dst), src_folders, src_ns)
            return self._load_pairs()
        dst_ns, dst_folders = dst.namespace(), dst.list_folders()
        return self._map_with(src, dst, src_folders, src_ns, dst_ns, dst_folders, result)

    def _map_with(self, src: Store, dst: Store, src_folders: list[RemoteFolder],
                  src_ns: Namespace, dst_ns: Namespace, dst_folders: list[RemoteFolder],
                  result: PassResult) -> dict[int, FolderPair]:
        """Step 2 proper: map the listed folders, create what the destination lacks,
        record the folder pairs."""
        mapping = map_folders(src_folders, src_ns, dst_folders, dst_ns, self.settings.rules)
        existing = {f.name for f in dst_folders}
        with self.db.session() as s:
            known = {p.source_name: p for p in s.scalars(
                select(FolderPair).where(FolderPair.mailbox_id == self.mailbox_id))}

        def dest_name(m: FolderMapping) -> str:
            pair = known.get(m.source) if m.source else None
            return pair.destination_name if pair else m.destination

        # What the destination lacks, in the mapping's order (parents first), created in
        # one burst (Store.create_folders: one round trip, not one per folder).
        wanted = list(dict.fromkeys(
            dest_name(m) for m in mapping.mappings
            if dest_name(m) not in existing and (not m.source or dest_name(m).upper() != "INBOX")))
        refused = dst.create_folders(wanted) if wanted else {}
        created_now = [name for name in wanted if name not in refused]
        for _ in created_now:
            self.hooks.checkpoint("create folder")
        for m in mapping.mappings:
            if not m.source and m.destination in refused:  # a parent only the source implies
                raise refused[m.destination]
        existing.update(created_now)
        listed = set()
        new_pairs: list[FolderPair | Finding] = []
        for m in mapping.mappings:
            if not m.source:  # a parent the source only implies: created, nothing to copy
                continue
            listed.add(m.source)
            pair = known.get(m.source)
            name = dest_name(m)
            if name in refused:
                self._refused_folder(src, m.source, name, m.selectable, refused[name], result)
                continue
            if pair is None:
                new_pairs.append(FolderPair(
                    mailbox_id=self.mailbox_id, source_name=m.source, destination_name=name,
                    role=m.role, selectable=m.selectable, display_name="/".join(m.logical),
                    present=True, created=name in created_now))
                new_pairs.extend(Finding(mailbox_id=self.mailbox_id, pass_id=self.pass_id,
                                         kind="folder_note", folder=m.source, reason=note)
                                 for note in m.notes)
            elif not pair.present or pair.selectable != m.selectable:
                with self.journal.tx("journal folder back") as s:
                    s.execute(update(FolderPair).where(FolderPair.id == pair.id)
                              .values(present=True, selectable=m.selectable))
        if new_pairs:
            # One transaction for every new pair (a first pass: one per folder was a
            # commit each). A crash after the CREATEs and before it leaves folders the
            # next pass finds there and maps again, recorded as not created by mxshift:
            # the safe side (such a folder is never removed, see _drop_gone_folders).
            with self.journal.tx("journal new folder pairs") as s:
                s.add_all(new_pairs)
        gone = [p.id for name, p in known.items() if name not in listed and p.present]
        if gone:
            with self.journal.tx("journal folders gone") as s:
                s.execute(update(FolderPair).where(FolderPair.id.in_(gone))
                          .values(present=False))
        for text in mapping.collisions:
            result.notes.append(text)
        return self._load_pairs()

    def _nothing_to_do(self, src: Store, src_folders: list[RemoteFolder], src_ns: Namespace,
                       rows: list[pass_rows.PairRow]) -> dict[int, FolderPair] | None:
        """The folder pairs, when the source lists exactly the folders they map and every
        one's STATUS (from LIST-STATUS) is what the last complete pass saved: a no-change
        pass, which then needs neither the destination's folder list nor its login.
        None otherwise: the folders are mapped as always (see engine/folder_listing.py).
        """
        if not self.source_status or delta_mode(src.capabilities) == "full-scan":
            return None
        # Plain rows for the check (pass_rows.PairRow); ORM rows only for a pass that
        # goes on to settle a folder (a pair gone from the source is scanned).
        pairs = {p.id: p for p in rows if self.folders is None or p.id in self.folders}
        if not pairs:
            return None
        included = included_sources(src_folders, src_ns, self.settings.rules)
        if included is None or not listing_known(pairs.values(), src_folders, included):
            return None
        self._pairs_known = True  # the folder map needs no destination (dest_listing.py)
        for pair in pairs.values():
            if not (pair.present and pair.selectable):
                continue
            if not status_as_saved(cast(FolderPair, pair),
                                   self.source_status.get(pair.source_name)):
                return None
        if any(p.selectable and not p.present for p in pairs.values()):
            return self._load_pairs()
        return cast(dict[int, FolderPair], pairs)

    def _refused_folder(self, src: Store, source: str, dest_name: str, selectable: bool,
                        exc: FolderError, result: PassResult) -> None:
        """The destination will not have this name: say so, copy the rest, retry next pass."""
        count = src.status(source).messages if selectable else 0
        reason = (f"the destination refused to create {dest_name!r} ({exc}); the folder's "
                  f"{count} message(s) were not copied. Add a [[folders.rename]] rule for it")
        result.errors += 1
        result.notes.append(f"{source}: {reason}")
        self.journal.finding(Finding(mailbox_id=self.mailbox_id, pass_id=self.pass_id,
                                     kind="folder_error", folder=source, reason=reason))

    def _load_pairs(self) -> dict[int, FolderPair]:
        with self.db.session() as s:
            return {p.id: p for p in s.scalars(
                select(FolderPair).where(FolderPair.mailbox_id == self.mailbox_id))
                if self.folders is None or p.id in self.folders}
