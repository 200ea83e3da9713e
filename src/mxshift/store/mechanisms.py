"""The login mechanisms a project file may name (``auth = ...``). No imports.

Why apart from store/auth.py: the configuration parser validates ``auth`` on every
command; auth.py brings imapclient and imaplib (and ssl behind them), which commands
that never log in (``status``, ``report``, the dashboard's reads) should not load
(tests/test_startup.py).
"""

from __future__ import annotations

from typing import Literal

Mechanism = Literal["password", "xoauth2", "oauthbearer"]
MECHANISMS: tuple[Mechanism, ...] = ("password", "xoauth2", "oauthbearer")
