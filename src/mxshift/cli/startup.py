"""The cyclic garbage collector during a command's start-up and at its exit.

Why: a command's start-up creates ~80,000 long-lived objects (SQLAlchemy's modules and the
ORM mappings above all) and no garbage worth a collection, yet with the default thresholds
Python runs ~180 collections over them while they are imported, one of them over the whole
heap; and interpreter shutdown runs one more full collection, only to free memory the OS
takes back anyway. Together ~40-70 ms of CPU of every ``mxshift sync``.

So :func:`pause` (the console script's ``main``, before the command runs) raises the
first generation's threshold out of reach; :func:`resume` (``opened()``, when the project is
open and the command's imports are done; or a long-running command that opens no project)
moves every object alive by then into the permanent generation (``gc.freeze``: later
collections, e.g. during a long copy, no longer traverse them) and restores the thresholds.
:func:`at_exit` freezes again so that shutdown's collection skips the heap. Reference
counting frees what it always freed; only cyclic garbage waits for a collection.

Only the console script pauses: a process that calls the Typer app itself (tests with
CliRunner, the dashboard) keeps its collector as it is; :func:`resume` and
:func:`at_exit` do nothing there.
"""

from __future__ import annotations

import gc

#: High enough that no start-up reaches it (a sync's allocates ~80,000 objects), low
#: enough that a long command that never calls resume() still collects now and then.
START_UP_THRESHOLD = 1_000_000

_script = False                                 # this process is the console script
_paused: tuple[int, int, int] | None = None    # thresholds to restore while paused


def pause() -> None:
    """The console script starts a command (called by ``main`` only)."""
    global _script, _paused
    _script = True
    if _paused is None:
        _paused = gc.get_threshold()
        gc.set_threshold(START_UP_THRESHOLD, *_paused[1:])


def resume() -> None:
    """Start-up is over: freeze what it built and collect with the usual thresholds."""
    global _paused
    if _paused is not None:
        gc.freeze()
        gc.set_threshold(*_paused)
        _paused = None


def at_exit() -> None:
    """The command is done (console script only): spare the interpreter's shutdown its
    collection over the whole heap. The state database is committed and closed by now."""
    if _script:
        gc.freeze()
