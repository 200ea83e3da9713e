"""What a worker's task runs: a mailbox pass that may split (the plan), or one part of it.

Why not ``sync.sync`` for everything: a prestage or delta pass on a worker may hand its
folders to part tasks (engine/folder_tasks.py), which needs the splitting pass class and
a way to enqueue. Final passes and post-cutover sweeps are never split (a cutover's final
pass is a short delta, and a sweep only adds), so they run through ``sync.sync`` as
before. The settings are those ``sync.sync`` gives one mailbox alone in a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from mxshift import sync as sync_mod
from mxshift.completion import ensure_not_complete
from mxshift.connect import store_factory
from mxshift.engine import lease
from mxshift.engine.folder_tasks import PartPass, SplitPass
from mxshift.engine.pass_result import PassResult
from mxshift.engine.settings import PassSettings
from mxshift.notify import announce
from mxshift.project import OpenProject
from mxshift.state.models import Mailbox

SendParts = Callable[[int, str, list[frozenset[int]]], list[str]]


@dataclass
class Outcome:
    """A task's pass: ``result`` (None: no such mailbox) and the part tasks it enqueued."""

    result: PassResult | None
    parts: list[str] = field(default_factory=list)


def _mailbox(proj: OpenProject, mailbox_id: int) -> Mailbox | None:
    with proj.db.session() as s:
        mb = s.get(Mailbox, mailbox_id)
        return mb if mb is not None and mb.project_id == proj.project_id else None


def _settings(proj: OpenProject, allow_mass_delete: bool) -> PassSettings:
    cfg = proj.config
    settings = sync_mod.pass_settings(proj, allow_mass_delete=allow_mass_delete)
    return replace(settings, folder_parallelism=sync_mod.folder_connections(
        cfg.options.folder_parallelism, 1, cfg.source.max_connections,
        cfg.destination.max_connections))


def _stores(proj: OpenProject, mb: Mailbox) -> dict[str, Callable[..., object]]:
    cfg = proj.config
    return {"source": store_factory(cfg.source, mb.source_user, mb.source_secret, proj.box),
            "destination": store_factory(cfg.destination, mb.destination_user,
                                         mb.destination_secret, proj.box)}


def run_mailbox(proj: OpenProject, mailbox_id: int, kind: str | None, *,
                allow_mass_delete: bool, send_parts: SendParts) -> Outcome:
    """One pass of one mailbox; a prestage or delta with more than the project's
    ``[distributed] split_mailbox_above`` to copy is split (``send_parts``)."""
    ensure_not_complete(proj)
    if kind not in (None, "prestage", "delta") or sync_mod.cutover_done(proj):
        results = sync_mod.sync(proj, mailbox_ids=[mailbox_id], kind=kind,
                                allow_mass_delete=allow_mass_delete)
        return Outcome(results[0] if results else None)
    mb = _mailbox(proj, mailbox_id)
    if mb is None:
        return Outcome(None)
    dist = proj.config.distributed
    plan = SplitPass(proj.db, mailbox_id, **_stores(proj, mb),  # type: ignore[arg-type]
                     settings=_settings(proj, allow_mass_delete), kind=kind,
                     split_above=dist.split_mailbox_above, split_parts=dist.split_parts,
                     send_parts=send_parts)
    result = plan.run()
    if result.status == "failed" and not (result.error or "").startswith(lease.BUSY):
        announce(proj, "pass_failed", "1 mailbox pass(es) failed",
                 {"mailboxes": {result.mailbox: result.error}})
    return Outcome(result, plan.part_tasks)


def run_part(proj: OpenProject, mailbox_id: int, kind: str, parent_id: int,
             folders: frozenset[int], *, allow_mass_delete: bool) -> PassResult | None:
    """One part of the split pass ``parent_id``: the folder pairs ``folders``."""
    mb = _mailbox(proj, mailbox_id)
    if mb is None:
        return None
    result = PartPass(proj.db, mailbox_id, **_stores(proj, mb),  # type: ignore[arg-type]
                      settings=_settings(proj, allow_mass_delete), kind=kind,
                      folders=folders, parent_id=parent_id).run()
    if result.status == "failed" and not (result.error or "").startswith(lease.BUSY):
        announce(proj, "pass_failed", "1 mailbox pass(es) failed",
                 {"mailboxes": {result.mailbox: result.error}})
    return result
