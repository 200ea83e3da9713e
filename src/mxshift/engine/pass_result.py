"""What a pass reports, and how it tells its progress while it runs.

Why a module of its own: the runners, the scheduler, the CLI's progress bars and the
workers hand pass results around without needing the engine that makes them; importing
them from here keeps the engine (and SQLAlchemy's ORM models it loads) out of those
paths until a pass really runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class Progress(Protocol):
    def start(self, mailbox: str, messages: int, size: int) -> None: ...

    def advance(self, mailbox: str, messages: int, size: int) -> None: ...

    def finish(self, mailbox: str, result: "PassResult") -> None: ...


class NoProgress:
    def start(self, mailbox: str, messages: int, size: int) -> None: ...

    def advance(self, mailbox: str, messages: int, size: int) -> None: ...

    def finish(self, mailbox: str, result: "PassResult") -> None: ...


@dataclass
class PassResult:
    mailbox: str
    kind: str
    status: str = "running"   # ok | partial | failed
    copied: int = 0
    bytes_copied: int = 0
    adopted: int = 0
    flags_updated: int = 0
    moved: int = 0
    deleted: int = 0
    skipped: int = 0
    errors: int = 0
    unchanged_folders: int = 0   # skipped on STATUS alone (CONDSTORE)
    seconds: float = 0.0
    error: str | None = None
    notes: list[str] = field(default_factory=list)
