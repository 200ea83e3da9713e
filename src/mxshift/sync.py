"""Running a pass for every mailbox of a project, several at once.

Why a pool capped by the servers: providers limit connections per user and per client
(Microsoft 365 and Gmail among them); each mailbox pass holds at least one connection per
side, so the number of mailboxes in flight is the smallest of the configured parallelism
and each endpoint's ``max_connections``, and the connections a pass may add to copy
folders in parallel (``folder_parallelism``) are what the caps leave per mailbox.
Every connection takes a slot of its server's cap (engine/limits.py).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Callable

from sqlalchemy import column, select, table, update

from mxshift.completion import ensure_not_complete
from mxshift.connect import store_factory
from mxshift.engine import malloc_tuning
from mxshift.engine.journal import Hooks
from mxshift.engine.limits import ByteBudget
from mxshift.engine.mailbox_pass import MailboxPass
from mxshift.engine.pass_result import NoProgress, PassResult, Progress
from mxshift.engine.settings import PassSettings
from mxshift.folder_names import rules_for
from mxshift.mapping import MappingRules, RenameRule
from mxshift.notify import announce
from mxshift.providers import profile, source_flag_exclusions
from mxshift.project import OpenProject
from mxshift.state.models import Mailbox, utcnow

# Imported where used, not here (start-up time of every `mxshift sync`,
# tests/test_startup.py): the sweep pass (only after the cutover) and the timeline's ORM
# model (a pass reads one column of it, below).


def pass_settings(proj: OpenProject, *, allow_mass_delete: bool = False) -> PassSettings:
    o, f = proj.config.options, proj.config.folders
    views = source_flag_exclusions(profile(proj.config.source.provider))
    rules = MappingRules(include=f.include, exclude=f.exclude,
                         renames=tuple(RenameRule(r.pattern, r.replacement) for r in f.renames),
                         exclude_flags=views,
                         name_rules=rules_for(proj.config.destination.provider))
    return PassSettings(rules=rules, max_message_size=o.max_message_size,
                        deletion_ceiling=o.deletion_ceiling, deletion_floor=o.deletion_floor,
                        batch_messages=o.batch_messages, batch_bytes=o.batch_bytes,
                        allow_mass_delete=allow_mass_delete,
                        destination_provider=proj.config.destination.provider,
                        gmail_labels=o.gmail_labels)


def sync(proj: OpenProject, *, only: str | None = None, allow_mass_delete: bool = False,
         progress: Progress | None = None, hooks: Hooks | None = None,
         kind: str | None = None, mailbox_ids: list[int] | None = None,
         should_stop: Callable[[], bool] | None = None) -> list[PassResult]:
    """One pass for each selected mailbox.

    ``kind``: None picks what the project's phase calls for (prestage the first time,
    delta afterwards; a sweep once the cutover ran, because the destination is then live
    and a delta would undo what the user does there); ``"final"`` is the cutover's pass;
    ``"sweep"`` the post-cutover add-only pass. A mailbox swept before its final pass ran
    gets the final pass. ``should_stop`` is asked before each mailbox starts (a scheduler
    stopping on SIGTERM lets running passes end and starts no new one).
    """
    ensure_not_complete(proj)  # nothing is synced for a completed project
    cfg = proj.config
    settings = pass_settings(proj, allow_mass_delete=allow_mass_delete)
    progress = progress or NoProgress()
    if kind is None and cutover_done(proj):
        kind = "sweep"

    def one(mb_id: int, src_user: str, src_secret: str | None, dst_user: str,
            dst_secret: str | None, cut: bool) -> PassResult | None:
        if should_stop is not None and should_stop():
            return None
        if kind == "sweep" and cut:
            from mxshift.engine.sweep import SweepPass

            cls: type[MailboxPass] = SweepPass
        else:
            cls = MailboxPass
        pass_kind = None if kind is None else ("final" if kind == "sweep" and not cut else kind)
        result = cls(proj.db, mb_id,
                     source=store_factory(cfg.source, src_user, src_secret, proj.box),
                     destination=store_factory(cfg.destination, dst_user, dst_secret,
                                               proj.box),
                     settings=settings, hooks=hooks, progress=progress,
                     kind=pass_kind).run()
        if pass_kind == "final" and result.status in ("ok", "partial"):
            record_cutover(proj, mb_id)
        return result

    mailboxes = proj.mailboxes(only)
    if mailbox_ids is not None:
        wanted = set(mailbox_ids)
        mailboxes = [m for m in mailboxes if m.id in wanted]
    workers = max(1, min(cfg.options.mailbox_parallelism, cfg.source.max_connections,
                         cfg.destination.max_connections, len(mailboxes) or 1))
    # batch_bytes bounds the memory of the whole run: one ByteBudget for every pass and
    # folder worker of this process (a large message counts in full, so four passes
    # cannot each hold one beside the others' batches); each pass sizes its batches
    # from its share.
    settings = replace(settings, folder_parallelism=folder_connections(
        cfg.options.folder_parallelism, workers, cfg.source.max_connections,
        cfg.destination.max_connections), batch_bytes=max(1, settings.batch_bytes // workers),
        budget=ByteBudget(settings.batch_bytes))
    args = [(m.id, m.source_user, m.source_secret, m.destination_user, m.destination_secret,
             m.cutover_at is not None) for m in mailboxes]
    proj.box.prepare(s for m in mailboxes for s in (m.source_secret, m.destination_secret))
    if workers == 1:
        ran = [one(*a) for a in args]
    else:
        # before the pass threads each take a heap arena of their own (malloc_tuning caps
        # them; one mailbox at a time tunes at its first copy, if any)
        malloc_tuning.tune()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            ran = list(pool.map(lambda a: one(*a), args))
    results = [r for r in ran if r is not None]
    failed = [r for r in results if r.status == "failed"]
    if failed:
        announce(proj, "pass_failed", f"{len(failed)} mailbox pass(es) failed",
                 {"mailboxes": {r.mailbox: r.error for r in failed}})
    return results


def folder_connections(wanted: int, mailboxes: int, *caps: int) -> int:
    """Connections per side for one pass, so that all passes in flight fit every cap.

    Why split the budget up front: a pass's first connection pair is taken before it
    asks for extras, so extras beyond the cap would only be refused (engine/limits.py);
    splitting it evenly keeps every mailbox in flight equally fast.
    """
    return max(1, min([wanted] + [cap // max(mailboxes, 1) for cap in caps]))


#: The one column of the ``timeline`` table (state/schedule_models.py ``Timeline``) that
#: every pass reads: a Core table, so a pass does not map the schedule's ORM models.
_TIMELINE = table("timeline", column("project_id"), column("cutover_done_at"))


def cutover_done(proj: OpenProject) -> bool:
    with proj.db.session() as s:
        done = s.execute(select(_TIMELINE.c.cutover_done_at)
                         .where(_TIMELINE.c.project_id == proj.project_id)).first()
        return done is not None and done[0] is not None


def record_cutover(proj: OpenProject, mailbox_id: int) -> None:
    """The mailbox's final pass ran: from now on it only gets add-only sweeps."""
    with proj.db.session() as s, s.begin():
        s.execute(update(Mailbox).where(Mailbox.id == mailbox_id, Mailbox.cutover_at.is_(None))
                  .values(cutover_at=utcnow()))
