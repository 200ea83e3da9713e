"""The project's "complete" mark, which every pass checks before it starts.

Why its own module: ``sync`` (and each Celery pass) asks this one question before every
run, while the rest of the completion gate (verify/gate.py) reads verifications, findings
and acceptances. Importing the gate means importing the ``mxshift.verify`` package, which
maps the verification tables: start-up time a pass does not need (tests/test_startup.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mxshift.errors import MxshiftError
from mxshift.state.models import Project

if TYPE_CHECKING:
    from mxshift.project import OpenProject

COMPLETE = "complete"


class ProjectComplete(MxshiftError):
    """The project was marked complete: syncing it again is refused."""


def is_complete(proj: OpenProject) -> bool:
    with proj.db.session() as s:
        p = s.get(Project, proj.project_id)
        return p is not None and p.phase == COMPLETE


def ensure_not_complete(proj: OpenProject) -> None:
    if is_complete(proj):
        raise ProjectComplete("this project is complete: nothing is synced for a completed "
                              "project")
