"""What a pass is allowed to do, gathered from the project file and the command line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mxshift.mapping import MappingRules

if TYPE_CHECKING:
    from mxshift.engine.limits import ByteBudget


@dataclass(frozen=True)
class PassSettings:
    rules: MappingRules = field(default_factory=MappingRules)
    max_message_size: int | None = None
    deletion_ceiling: float = 0.10
    deletion_floor: int = 10
    batch_messages: int = 200
    batch_bytes: int = 8 * 1024 * 1024
    allow_mass_delete: bool = False
    # Connection pairs one pass may use to copy folders in parallel (1 = serial). The
    # project file's default is higher; sync.py lowers it to fit the servers' caps.
    folder_parallelism: int = 1
    # [destination] provider: a size limit that is its profile's is named in skip reasons
    destination_provider: str | None = None
    # "labels": on a destination with X-GM-EXT-1, a message in several source folders is
    # appended once and labelled with the others (engine/gmail_labels.py); "folders": a
    # copy per folder
    gmail_labels: str = "folders"
    # The byte budget of the whole run (sync.py: one for every pass and folder worker of
    # the process, sized by the project's batch_bytes); None: the pass makes its own
    # from batch_bytes (a pass run on its own, tests).
    budget: "ByteBudget | None" = field(default=None, compare=False, repr=False)
