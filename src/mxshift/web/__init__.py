"""The migration dashboard (``mxshift serve``): server-rendered pages, each with a JSON twin,
over the same state database the CLI and scheduler use.

Modules: ``app`` (routes), ``views`` (the data of each page), ``reads`` (read-only queries on
their own connections), ``auth`` (hashed credentials, sessions, CSRF), ``actions`` and
``jobs`` (what the buttons do, in background threads), ``serve`` (first-start credentials
and the uvicorn server).
"""

from mxshift.web.app import create_app

__all__ = ["create_app"]
