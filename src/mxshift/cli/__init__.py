"""The command line: thin commands that parse, call one library function and print.

Domain errors (MxshiftError) become one line on stderr and exit status 1; no traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from mxshift import __version__
from mxshift.cli import coercion, startup
from mxshift.cli.console import LazyConsole
from mxshift.errors import MxshiftError

coercion.install()  # option values without Pydantic (start-up time): cli/coercion.py

app = typer.Typer(help="mxshift: move mailboxes between IMAP servers, nothing lost, nothing "
                       "duplicated.", no_args_is_help=True, add_completion=False)
mailboxes_app = typer.Typer(help="Manage the project's mailbox pairs.", no_args_is_help=True)
app.add_typer(mailboxes_app, name="mailboxes")

# Rich is imported when a command first prints through these, not by every process
# (cli/console.py); `out.line(text)` prints a plain line without it.
out = LazyConsole()
err = LazyConsole(stderr=True)


def escape(text: str) -> str:
    """``rich.markup.escape`` (text shown in Rich markup or tables), Rich imported on use."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


class State:
    directory: Path = Path(".")
    quiet: bool = False


state = State()


@app.callback(invoke_without_command=True)
def main_options(
    ctx: typer.Context,
    directory: Path = typer.Option(Path("."), "-C", "--directory",
                                   help="Project directory (default: current)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bars; for scripts."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    """Global options."""
    if version:
        out.print(f"mxshift {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        out.print(ctx.get_help())
        raise typer.Exit()
    state.directory = directory
    state.quiet = quiet


def fail(message: str, code: int = 1) -> None:
    # The message is plain text, never markup: "[source.admin]" in a config error must
    # survive. soft_wrap: a long error stays one line whatever the terminal width.
    from rich.text import Text

    err.print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


# Importing registers the commands on ``app``.
from mxshift.cli import commands  # noqa: E402,F401
from mxshift.cli import dns_commands  # noqa: E402,F401
from mxshift.cli import verify_commands  # noqa: E402,F401
from mxshift.cli import web_commands  # noqa: E402,F401
from mxshift.cli import schedule_commands  # noqa: E402,F401
from mxshift.cli import worker_commands  # noqa: E402,F401


def main() -> None:
    """The console script (and ``python -m mxshift``): runs one command, then the process
    ends."""
    startup.pause()  # no garbage collections while the command imports: cli/startup.py
    try:
        app()
    except MxshiftError as exc:  # a last net: commands catch their own
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
    finally:
        startup.at_exit()


__all__ = ["app", "main"]
