"""``mxshift serve``: the migration dashboard (issue 7). Thin: open the project, make the
credentials on first start, print the URL, serve until Ctrl-C."""

from __future__ import annotations

import typer

from mxshift.cli import app, out
from mxshift.cli.commands import opened


def _say(line: str) -> None:
    out.print(line, markup=False, highlight=False, soft_wrap=True)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host",
                             help="Address to listen on (0.0.0.0: every interface; plain "
                                  "HTTP, put a TLS proxy in front beyond localhost)."),
    port: int = typer.Option(8025, "--port", min=1, max=65535, help="Port to listen on."),
    reset_credentials: bool = typer.Option(False, "--reset-credentials",
                                           help="Make a new admin password and read-only "
                                                "token (the old ones stop working)."),
) -> None:
    """Serve the dashboard (pages, JSON API, actions) over the project's state; runs beside
    `mxshift sync` on the same database."""
    from mxshift.runners import shared_limits
    from mxshift.web import serve as serve_mod

    def warn(problem: str) -> None:  # pages need no Redis: serve them anyway
        _say(f"warning: {problem}; dashboard actions that connect will fail until it answers")

    with opened() as proj, shared_limits(on_unreachable=warn):
        serve_mod.check_port(host, port)
        made = serve_mod.prepare(proj, reset=reset_credentials)
        serve_mod.announce(made, serve_mod.base_url(host, port), _say)
        serve_mod.run(proj, host, port)
