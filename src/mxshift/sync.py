"""Running a pass for every mailbox of a project, several at once.

Why a pool capped by the servers: providers limit connections per user and per client
(Microsoft 365 and Gmail among them); each mailbox pass holds one connection per side, so
the number of mailboxes in flight is the smallest of the configured parallelism and each
endpoint's ``max_connections``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from mxshift.connect import store_factory
from mxshift.engine.journal import Hooks
from mxshift.engine.mailbox_pass import MailboxPass, NoProgress, PassResult, Progress
from mxshift.engine.settings import PassSettings
from mxshift.mapping import MappingRules, RenameRule
from mxshift.notify import announce
from mxshift.project import OpenProject
from mxshift.verify.gate import ensure_not_complete


def pass_settings(proj: OpenProject, *, allow_mass_delete: bool = False) -> PassSettings:
    o, f = proj.config.options, proj.config.folders
    rules = MappingRules(include=f.include, exclude=f.exclude,
                         renames=tuple(RenameRule(r.pattern, r.replacement) for r in f.renames))
    return PassSettings(rules=rules, max_message_size=o.max_message_size,
                        deletion_ceiling=o.deletion_ceiling, deletion_floor=o.deletion_floor,
                        batch_messages=o.batch_messages, batch_bytes=o.batch_bytes,
                        allow_mass_delete=allow_mass_delete)


def sync(proj: OpenProject, *, only: str | None = None, allow_mass_delete: bool = False,
         progress: Progress | None = None, hooks: Hooks | None = None) -> list[PassResult]:
    """One pass (prestage the first time, delta afterwards) for each selected mailbox."""
    ensure_not_complete(proj)  # nothing is synced for a completed project
    cfg = proj.config
    settings = pass_settings(proj, allow_mass_delete=allow_mass_delete)
    progress = progress or NoProgress()

    def one(mb_id: int, src_user: str, src_secret: str | None, dst_user: str,
            dst_secret: str | None) -> PassResult:
        return MailboxPass(proj.db, mb_id,
                           source=store_factory(cfg.source, src_user, src_secret, proj.box),
                           destination=store_factory(cfg.destination, dst_user, dst_secret,
                                                     proj.box),
                           settings=settings, hooks=hooks, progress=progress).run()

    mailboxes = proj.mailboxes(only)
    workers = max(1, min(cfg.options.mailbox_parallelism, cfg.source.max_connections,
                         cfg.destination.max_connections, len(mailboxes) or 1))
    args = [(m.id, m.source_user, m.source_secret, m.destination_user, m.destination_secret)
            for m in mailboxes]
    if workers == 1:
        results = [one(*a) for a in args]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(lambda a: one(*a), args))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        announce(proj, "pass_failed", f"{len(failed)} mailbox pass(es) failed",
                 {"mailboxes": {r.mailbox: r.error for r in failed}})
    return results
