"""Starting the dashboard: credentials on first start, then uvicorn until Ctrl-C.

Why credentials are made here and shown once: they are stored only as hashes, so the one
moment an admin can learn them is when they are made. ``MXSHIFT_ADMIN_PASSWORD`` and
``MXSHIFT_READONLY_TOKEN`` (read only when a credential is being made) let a script choose
them instead of reading them off the console.

The access log is off: the customer's link carries its token in the query string, and a
log is the last place a credential should land.
"""

from __future__ import annotations

import os
import socket
from typing import Callable

import uvicorn

from mxshift.errors import MxshiftError
from mxshift.project import OpenProject
from mxshift.web.app import create_app
from mxshift.web.auth import Credentials, ensure_credentials

ADMIN_ENV = "MXSHIFT_ADMIN_PASSWORD"
READONLY_ENV = "MXSHIFT_READONLY_TOKEN"


def prepare(proj: OpenProject, *, reset: bool = False) -> Credentials:
    """Make missing credentials (all of them with ``reset``); returns what was made."""
    return ensure_credentials(proj.db, admin_password=os.environ.get(ADMIN_ENV) or None,
                              readonly_token=os.environ.get(READONLY_ENV) or None, reset=reset)


def base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
    return f"http://{shown}:{port}/"


def announce(made: Credentials, url: str, say: Callable[[str], None]) -> None:
    """Tell the admin where the dashboard is and, once, the credentials just made (not
    those taken from the environment: whoever set them knows them, and a console log
    should not)."""
    say(f"dashboard: {url}")
    if made.admin_password and made.admin_password != os.environ.get(ADMIN_ENV):
        say(f"admin password (shown once, stored hashed): {made.admin_password}")
    elif made.admin_password:
        say(f"admin password: the value of {ADMIN_ENV} (stored hashed)")
    if made.readonly_token and made.readonly_token != os.environ.get(READONLY_ENV):
        say(f"read-only link for the customer (shown once): {url}view?token="
            f"{made.readonly_token}")
    elif made.readonly_token:
        say(f"read-only link for the customer: {url}view?token=<the value of {READONLY_ENV}>")
    if not made.admin_password and not made.readonly_token:
        say("log in with the admin password set at the first start "
            "(`mxshift serve --reset-credentials` makes new ones)")


def check_port(host: str, port: int) -> None:
    """Fail in one line before anything starts when the address cannot be listened on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise MxshiftError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                               "(choose another with --port)") from exc


def run(proj: OpenProject, host: str, port: int) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM)."""
    check_port(host, port)
    uvicorn.run(create_app(proj), host=host, port=port, log_level="warning",
                access_log=False, lifespan="on")
