"""The project's timeline: prestage, deltas, the cutover, the sweep window (issue 6).

``plan`` is the pure logic, ``store`` reads and writes it in the state database,
``scheduler`` is the long-running ``mxshift run`` loop. Imports here stay lazy so that
``mxshift.config`` can use :mod:`mxshift.schedule.settings` without a cycle.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from mxshift.project import OpenProject
    from mxshift.schedule.store import TimelineView


def timeline(proj: "OpenProject", now: datetime | None = None) -> "TimelineView":
    """The timeline as the operator sees it: phase, slots with what ran and what is due."""
    from mxshift.schedule.store import timeline_view

    return timeline_view(proj, now)
