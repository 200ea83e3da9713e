"""The command line's two Rich consoles (stdout, stderr), made on first use.

Why not ``Console()`` at import: importing Rich and making a console is ~15 ms of CPU and
~3 MB of every ``mxshift`` process, and the most frequent one, a scheduled
``mxshift -q sync`` writing to a log, prints nothing but plain result lines. So
:class:`LazyConsole` stands in for ``rich.console.Console`` (attributes are the real
console's, made when first touched), :meth:`LazyConsole.line` writes a plain line itself
when Rich would write exactly the same characters, and ``is_terminal`` answers "no" for a
file or pipe without Rich (tests/test_cli_console.py).
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console

#: What Rich's emoji replacement (rich/_emoji_replace.py) could take for an emoji code
#: (``:smile:``); wider than Rich's own pattern, so a line it matches goes to Rich.
_EMOJI_LIKE = re.compile(r":\S*:")


def same_in_rich(text: str) -> bool:
    """True if ``Console.print(text, markup=False, highlight=False, soft_wrap=True)`` to a
    file that is not a terminal writes ``text`` and a newline, unchanged: Rich strips some
    control codes, expands tabs, splits lines and replaces emoji codes; a printable line
    without anything like an emoji code has none of those."""
    return text.isprintable() and _EMOJI_LIKE.search(text) is None


class LazyConsole:
    """A ``rich.console.Console`` made on first use (``stderr``: the error console)."""

    def __init__(self, *, stderr: bool = False) -> None:
        object.__setattr__(self, "_stderr", stderr)
        object.__setattr__(self, "_console", None)

    @property
    def console(self) -> Console:
        """The real console (made now if not yet)."""
        if self._console is None:
            from rich.console import Console

            object.__setattr__(self, "_console", Console(stderr=self._stderr))
        return self._console  # type: ignore[return-value]

    def __getattr__(self, name: str) -> Any:  # print, print_json, size, ...
        return getattr(self.console, name)

    @property
    def is_terminal(self) -> bool:
        """Rich's ``Console.is_terminal``; False without making the console where Rich would
        say False anyway (not a TTY, nothing in the environment that forces one)."""
        if self._console is None and not _is_tty(sys.stderr if self._stderr else sys.stdout):
            return False
        return bool(self.console.is_terminal)

    @property
    def width(self) -> int:
        """The console's width; a property here as on Console, so that pytest's
        ``monkeypatch.setattr(out, "width", 200)`` restores it by setting it back."""
        return self.console.width

    @width.setter
    def width(self, value: int) -> None:
        self.console.width = value

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "width":  # the property above (is_terminal has no setter, as in Rich)
            object.__setattr__(self, name, value)
        else:
            setattr(self.console, name, value)

    def line(self, text: str) -> None:
        """``text`` as one line, never markup; the same as ``print(text, markup=False,
        highlight=False, soft_wrap=True)``, without making the console for plain text to
        a file or pipe."""
        stream: TextIO = sys.stderr if self._stderr else sys.stdout
        if self._console is None and same_in_rich(text) and not _is_tty(stream):
            stream.write(text + "\n")
            stream.flush()  # as Rich does: stdout and stderr lines stay in order in a log
            return
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)


def _is_tty(stream: TextIO) -> bool:
    """A terminal, or what Rich may take for one (its TTY_COMPATIBLE and FORCE_COLOR):
    such output goes through Rich, whatever it writes there."""
    if os.environ.get("TTY_COMPATIBLE") or "FORCE_COLOR" in os.environ:
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return isatty is None or bool(isatty())
    except ValueError:  # a closed stream: let Rich deal with it
        return True
