"""Errors graded by blast radius, as mature sync engines grade them.

Why graded: a migration of thousands of mailboxes must not stop because one message is
odd, nor hammer a server that is down. The grade tells the caller how much to skip::

    MxshiftError                 anything mxshift reports as one clear line
    +-- ConfigError              bad project file or CSV (names file:line and column)
    +-- StateError               state database missing, newer than this program, ...
    +-- SyncError                raised during a pass; carries retry advice
        +-- MessageError         skip this message, record it, go on
        +-- FolderError          skip this folder for this pass
        +-- MailboxError         skip this mailbox for this pass (bad login, quota)
        +-- EndpointError        server down or throttling: back off, retry the pass later
            +-- ThrottledError   the server kept pushing back past the pass's wait budget

(``mxshift.oauth.TokenError`` is a MailboxError: no token could be had for a mailbox.)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Retry(str, Enum):
    """What the caller should do about an error."""

    TEMPORARY = "temporary"  # retry on the next pass
    WAIT = "wait"  # retry after ``wait_seconds`` (server asked us to back off)
    FINAL = "final"  # retrying will not help until someone changes something


class MxshiftError(Exception):
    """Base of every error mxshift turns into one line for the operator."""


class ConfigError(MxshiftError):
    """The project file or mailbox CSV is wrong; the message names where."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 column: str | None = None) -> None:
        where = ""
        if path is not None:
            where = path if line is None else f"{path}:{line}"
            if column:
                where += f" (column {column})"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.line = line
        self.column = column


class StateError(MxshiftError):
    """The state database cannot be used as it is (newer schema, not initialised...)."""


@dataclass
class _Advice:
    retry: Retry = Retry.TEMPORARY
    wait_seconds: float | None = None


class SyncError(MxshiftError):
    """An error during a pass. ``retry`` says whether trying again can help."""

    grade = "sync"

    def __init__(self, message: str, *, retry: Retry = Retry.TEMPORARY,
                 wait_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.wait_seconds = wait_seconds


class MessageError(SyncError):
    grade = "message"


class FolderError(SyncError):
    grade = "folder"


class MailboxError(SyncError):
    grade = "mailbox"


class EndpointError(SyncError):
    grade = "endpoint"


class ThrottledError(EndpointError):
    """The store waited out the server's back-pressure (Microsoft's "Suggested Backoff
    Time", [UNAVAILABLE], BYE...) for as long as ``max_total_wait`` allows, and it went on.
    The message says how long was waited and quotes the server's last answer."""
