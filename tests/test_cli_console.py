"""cli/console.py: the lazily made Rich consoles, and plain lines written without Rich.

The promise is "the same characters Rich would write": each case is printed both ways,
through ``LazyConsole.line`` and through a real ``rich.console.Console``, to a file that is
not a terminal, and compared; and the plain path must really skip Rich for plain text.
"""

from __future__ import annotations

import io
import sys

import pytest
from rich.console import Console

from mxshift.cli.console import LazyConsole, same_in_rich

PLAIN = ["alice@example.com: delta ok: 0 copied (0 B), 0 adopted, 0 moved, 0 flag updates, "
         "0 deleted, 0 skipped, 0 errors in 0.0s",
         "  folder 'Entwürfe/Ärger' kept as is: name rules [gmail]",  # markup-like, accents
         "a [bold]b[/bold] c", "x" * 500, "", "   ", "Привет мир 你好"]
#: What Rich changes: emoji codes, tabs, control codes, line breaks; unprintable characters.
RICH = ["done :thumbs_up: here", "imap://host:993: refused", "a\tb", "bell\x07", "cr\rlf",
        "two\nlines", "zero\u200bwidth", "x:y:z"]


def _rich(text: str, *, stderr: bool = False) -> str:
    buf = io.StringIO()
    Console(file=buf, stderr=stderr).print(text, markup=False, highlight=False,
                                           soft_wrap=True)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def _not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TTY_COMPATIBLE", "FORCE_COLOR", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("text", PLAIN + RICH)
def test_a_line_is_what_rich_writes(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for stderr in (False, True):
        buf = io.StringIO()
        lazy = LazyConsole(stderr=stderr)
        with monkeypatch.context() as m:
            m.setattr(sys, "stderr" if stderr else "stdout", buf)
            lazy.line(text)
        assert buf.getvalue() == _rich(text, stderr=stderr)
        # plain text never made the console; anything Rich changes went through Rich
        assert (lazy._console is None) == (text in PLAIN)


def test_same_in_rich_is_false_wherever_rich_changes_the_text() -> None:
    assert all(same_in_rich(t) for t in PLAIN)
    assert not any(same_in_rich(t) for t in RICH)
    # wider than Rich's own emoji codes: a line Rich leaves alone may still go through it
    assert _rich("x:y:z") == "x:y:z\n"


def test_a_terminal_or_a_forced_one_gets_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdout", Tty())
    lazy = LazyConsole()
    lazy.line("plain")
    assert lazy._console is not None
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setenv("FORCE_COLOR", "1")
    lazy = LazyConsole()
    lazy.line("plain")
    assert lazy._console is not None


def test_attributes_are_the_real_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stdout", buf)
    lazy = LazyConsole()
    assert lazy._console is None
    lazy.width = 123  # set on the console it makes (a test narrows or widens tables)
    assert isinstance(lazy.console, Console) and lazy.console.width == 123
    assert lazy.width == 123 and lazy.is_terminal is False
    lazy.print("[bold]x[/bold]")  # markup as usual once it is Rich's print
    # once made, lines go through the console too (order with what it printed before)
    lazy.line("y")
    assert buf.getvalue() == "x\ny\n"
    assert LazyConsole(stderr=True).console.stderr


def test_monkeypatching_the_width_sets_it_back(monkeypatch: pytest.MonkeyPatch) -> None:
    lazy = LazyConsole()
    before = lazy.width
    with monkeypatch.context() as m:
        m.setattr(lazy, "width", before + 100)
        assert lazy.console.width == before + 100
    assert lazy.width == before


def test_is_terminal_is_richs_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    lazy = LazyConsole()
    assert lazy.is_terminal is False and lazy._console is None  # no Rich for a file
    for env, expected in ((("FORCE_COLOR", "1"), True), (("TTY_COMPATIBLE", "1"), True),
                          (("TTY_COMPATIBLE", "0"), False)):
        with monkeypatch.context() as m:
            m.setenv(*env)
            lazy = LazyConsole()
            assert lazy.is_terminal is expected and lazy._console is not None
            assert Console().is_terminal is expected
