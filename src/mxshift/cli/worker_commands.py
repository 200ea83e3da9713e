"""Commands for running at scale: ``mxshift worker`` and ``mxshift db upgrade``."""

from __future__ import annotations

import os
from typing import Optional

import typer

from mxshift.cli import app, fail, out, startup, state
from mxshift.errors import MxshiftError

db_app = typer.Typer(help="Manage the state database's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations to the state database.

    Needed before a PostgreSQL database is first used and after each mxshift upgrade
    (SQLite is upgraded on open)."""
    from mxshift.state.db import upgrade_state

    try:
        res = upgrade_state(state.directory)
    except MxshiftError as exc:
        fail(str(exc))
    if res.before == res.after:
        out.print(f"{res.url}: schema already at {res.after}", markup=False, highlight=False,
                  soft_wrap=True)
    else:
        out.print(f"{res.url}: schema {res.before or 'empty'} -> {res.after}", markup=False,
                  highlight=False, soft_wrap=True)


@app.command()
def worker(concurrency: int = typer.Option(1, "-c", "--concurrency", min=1,
                                           help="Passes this worker runs at once."),
           pool: str = typer.Option("prefork", "--pool",
                                    help="Celery pool: prefork (default), threads or solo."),
           loglevel: str = typer.Option("INFO", "--loglevel", help="Celery log level."),
           name: Optional[str] = typer.Option(None, "--name",
                                              help="Node name (default mxshift-PID@host).")
           ) -> None:
    """Run the passes that `sync` and the scheduler queue, on this machine.

    A Celery worker on MXSHIFT_BROKER_URL (default redis://127.0.0.1:6379/0) for the
    project in -C DIR; state in MXSHIFT_DATABASE_URL (PostgreSQL for several machines)."""
    from mxshift.project import open_project
    from mxshift.runners import celery_app
    from mxshift.runners.settings import runner_settings

    if pool not in ("prefork", "threads", "solo"):
        fail(f"--pool {pool}: expected prefork, threads or solo")
    try:
        settings = runner_settings()
        open_project(state.directory).close()  # fail fast: config, key, schema
    except MxshiftError as exc:
        fail(str(exc))
    celery_app.set_project_directory(state.directory)
    celery = celery_app.configure(settings, for_worker=True)
    startup.resume()  # a worker runs for days: the usual garbage collection from here on
    node = name or f"mxshift-{os.getpid()}@%h"
    celery.worker_main(argv=["worker", f"--loglevel={loglevel}", f"--pool={pool}",
                             f"--concurrency={concurrency}", "-Q", settings.queue, "-n", node,
                             "--without-gossip", "--without-mingle", "--without-heartbeat"])
