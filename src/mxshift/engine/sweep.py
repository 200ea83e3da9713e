"""A post-cutover sweep of one mailbox: carry over mail that still reached the old server.

After the cutover the destination is live and authoritative: the user reads, files and
deletes there. So a sweep is add-only by construction, not by care:

- it looks only at folder pairs it already knows, and only at source UIDs at or above the
  UIDNEXT the last pass saw (``STATUS`` first: an idle folder costs one STATUS, an idle
  mailbox a login and a STATUS per folder);
- a new UID whose message we already copied (same fingerprint anywhere in the mailbox) was
  moved or copied on the source by the user: logged, not copied;
- what is left arrived after the cutover: it is recorded as stray mail (time, subject,
  receiving hop) and appended through the same journalled copier as every other copy, so an
  interrupted sweep resumes without loss or duplicate;
- source deletions and flag changes are counted and logged (``source_change``), never
  applied; nothing on the destination is ever flagged, moved or expunged.

A mailbox whose final pass has not run (it failed at cutover, or was added later) gets the
final pass instead of a sweep: the sweep assumes the destination caught up once.
"""

from __future__ import annotations

from sqlalchemy import select, update

from mxshift.engine.copier import FolderCopier, NewMessage
from mxshift.engine.folder_scan import FolderScan, subject_of
from mxshift.engine.mailbox_pass import MailboxPass
from mxshift.engine.pass_result import PassResult
from mxshift.engine.reconcile import reconcile
from mxshift.errors import FolderError
from mxshift.identity import fingerprint, identity_fields
from mxshift.mapping import map_folders
from mxshift.state.models import FolderPair, Message, utcnow
from mxshift.state.schedule_models import SourceChange, StrayMessage
from mxshift.store.base import Store
from mxshift.strays import header_text, receiving_hop


class SweepPass(MailboxPass):
    """``kind="sweep"``: the add-only pass run every hour of the sweep window."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs["kind"] = "sweep"
        super().__init__(*args, **kwargs)

    def _run(self, src: Store, dst: Store, result: PassResult) -> None:
        pairs = self._load_pairs()
        # Only appends an earlier sweep left unsettled: every other intent belongs to the
        # passes before cutover, which the final pass settled (see module docstring).
        reconcile(self.journal, dst, pairs, appends_only=True)
        pairs = self._load_pairs()
        with self.db.session() as s:
            seen = set(s.scalars(select(Message.fingerprint).join(FolderPair).where(
                FolderPair.mailbox_id == self.mailbox_id)))
        known_names = {p.source_name for p in pairs.values()}
        mapping = map_folders(src.list_folders(), src.namespace(), [], dst.namespace(),
                              self.settings.rules)
        for m in mapping.mappings:
            if m.source and m.selectable and m.source not in known_names:
                result.notes.append(f"{'/'.join(m.logical)}: folder appeared on the source "
                                    "after the cutover; not copied")
        for pair in sorted(pairs.values(), key=lambda p: p.id):
            if not (pair.present and pair.selectable) or pair.source_uidnext is None:
                continue
            try:
                self._sweep_folder(src, dst, pair, seen, result)
            except FolderError as exc:
                self._folder_error(pair, exc, result)

    def _sweep_folder(self, src: Store, dst: Store, pair: FolderPair, seen: set[str],
                      result: PassResult) -> None:
        st = src.status(pair.source_name)
        if st.uidvalidity != pair.source_uidvalidity:
            self._log_change(pair, "uidvalidity", st.messages, result,
                             "the source folder was recreated (UIDVALIDITY changed); "
                             "nothing copied from it after the cutover")
            return
        last_next = pair.source_uidnext or 1
        if (st.uidnext, st.messages, st.highestmodseq) == (
                last_next, pair.source_messages, pair.source_highestmodseq):
            result.unchanged_folders += 1
            return
        new_uids: list[int] = []
        if st.uidnext > last_next:
            src.select(pair.source_name, readonly=True)
            already = set(self.journal.known(pair.id))
            new_uids = [u for u in src.uids_from(last_next) if u not in already]
        strays: list[NewMessage] = []
        moved_in = 0
        metas = {m.uid: m for m in src.fetch_meta(new_uids)} if new_uids else {}
        for uid in sorted(metas):
            meta = metas[uid]
            fp = fingerprint(meta.headers, meta.size)
            if fp.strong and fp.value in seen:
                moved_in += 1
                continue
            strays.append(NewMessage(uid=uid, size=meta.size, fingerprint=fp.value,
                                     strong=fp.strong, subject=subject_of(meta.headers)))
        if moved_in:
            self._log_change(pair, "moved_in", moved_in, result,
                             f"{moved_in} message(s) moved or copied into this folder on the "
                             "source after the cutover; not copied again")
        deleted = (pair.source_messages or 0) + len(metas) - st.messages
        if deleted > 0:
            self._log_change(pair, "deleted", deleted, result,
                             f"{deleted} message(s) deleted or moved away on the source after "
                             "the cutover; the destination is left as the user has it")
        elif st.highestmodseq != pair.source_highestmodseq and not metas:
            self._log_change(pair, "flags", 0, result,
                             "flags changed on the source after the cutover; not applied")
        if strays:
            self._record_strays(src, pair, strays, metas)
            dst_status = dst.select(pair.destination_name, readonly=False)
            src.select(pair.source_name, readonly=True)
            FolderCopier(self, src, dst, pair, dst_status, result).copy(strays, adopt=False)
            for m in strays:
                seen.add(m.fingerprint)
        self.hooks.checkpoint("sweep folder done")
        with self.journal.tx("journal folder swept") as s:
            s.execute(update(FolderPair).where(FolderPair.id == pair.id).values(
                source_uidnext=st.uidnext, source_messages=st.messages,
                source_highestmodseq=st.highestmodseq, last_synced_at=utcnow(),
                sync_mode="sweep"))

    def _record_strays(self, src: Store, pair: FolderPair, strays: list[NewMessage],
                       metas: dict) -> None:  # type: ignore[type-arg]
        received = src.fetch_header_fields([m.uid for m in strays], ["RECEIVED"])
        with self.journal.tx("journal stray mail") as s:
            recorded = set(s.scalars(select(StrayMessage.source_uid).where(
                StrayMessage.mailbox_id == self.mailbox_id,
                StrayMessage.folder == pair.source_name)))
            for m in strays:
                if m.uid in recorded:  # an interrupted sweep already wrote it down
                    continue
                meta = metas[m.uid]
                sender = identity_fields(meta.headers).get(b"from")
                s.add(StrayMessage(mailbox_id=self.mailbox_id, pass_id=self.pass_id,
                                   folder=pair.display_name or pair.source_name,
                                   source_uid=m.uid, subject=m.subject,
                                   sender=header_text(sender) if sender else None,
                                   size=m.size, arrived_at=meta.internaldate,
                                   received_by=receiving_hop(received.get(m.uid, b""))))

    def _log_change(self, pair: FolderPair, kind: str, count: int, result: PassResult,
                    text: str) -> None:
        result.notes.append(f"{pair.display_name or pair.source_name}: {text}")
        with self.journal.tx("journal source change") as s:
            s.add(SourceChange(mailbox_id=self.mailbox_id, pass_id=self.pass_id,
                               folder=pair.display_name or pair.source_name, kind=kind,
                               count=count))


__all__ = ["SweepPass", "FolderScan"]
