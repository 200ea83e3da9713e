"""The local runner: passes run in this process's thread pool (``mxshift.sync.sync``).

The embedded default for one machine; nothing to set up.
"""

from __future__ import annotations

from typing import Callable

from mxshift import sync as sync_mod
from mxshift.engine.journal import Hooks
from mxshift.engine.pass_result import PassResult, Progress
from mxshift.project import OpenProject


def run_local(proj: OpenProject, mailbox_ids: list[int] | None, kind: str | None, *,
              allow_mass_delete: bool = False, progress: Progress | None = None,
              should_stop: Callable[[], bool] | None = None,
              hooks: Hooks | None = None) -> list[PassResult]:
    return sync_mod.sync(proj, mailbox_ids=mailbox_ids, kind=kind,
                         allow_mass_delete=allow_mass_delete, progress=progress,
                         should_stop=should_stop, hooks=hooks)
