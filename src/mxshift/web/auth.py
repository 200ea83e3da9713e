"""Who may look and who may act on the dashboard.

Why this shape: the dashboard runs on an admin's machine or a jump host, often reachable by
the customer. Reading must be possible to grant without granting writes, and nothing that
proves identity may sit in the state database in clear text (a copy of ``mxshift.db`` is
often mailed around with a support request). So:

- two credentials, set at the first ``mxshift serve``: the *admin password* (writes) and a
  *read-only token* (reading, for the customer); both stored only as scrypt hashes in the
  ``setting`` table (keys below), shown once when they are made;
- a browser that logs in gets a random session id in a cookie (HttpOnly, SameSite=Strict);
  sessions live in the server's memory, so restarting ``mxshift serve`` logs everyone out
  and no session secret is ever written anywhere;
- every form carries the session's CSRF token; a write without it is refused even with a
  valid cookie. API clients send ``Authorization: Bearer <credential>`` instead (no cookie,
  so no CSRF exposure).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import select

from mxshift.state.db import StateDB
from mxshift.state.schedule_models import Setting

Role = Literal["admin", "viewer"]

ADMIN_KEY = "web.admin_password_hash"
READONLY_KEY = "web.readonly_token_hash"

# scrypt parameters: ~16 MiB and ~50 ms per hash on a small machine, the interactive-login
# recommendation of RFC 7914's authors. Stored with each hash so they can be raised later.
_N, _R, _P = 2 ** 14, 8, 1
SESSION_SECONDS = 12 * 3600


# -- hashing (pure) ---------------------------------------------------------------------------
def hash_secret(secret: str, *, n: int = _N, r: int = _R, p: int = _P) -> str:
    """``scrypt$n$r$p$salt$hash`` (salt and hash urlsafe base64)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    b64 = base64.urlsafe_b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time check of ``secret`` against a :func:`hash_secret` string."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.urlsafe_b64decode(digest)
        got = hashlib.scrypt(secret.encode(), salt=base64.urlsafe_b64decode(salt), n=int(n),
                             r=int(r), p=int(p), dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def new_secret() -> str:
    """A credential to show once: 24 random bytes, URL-safe."""
    return secrets.token_urlsafe(24)


# -- credentials in the state database ---------------------------------------------------------
@dataclass
class Credentials:
    """What :func:`ensure_credentials` made; ``None`` for what already existed (hashed, so
    it cannot be shown again)."""

    admin_password: str | None
    readonly_token: str | None


def _get(db: StateDB, key: str) -> str | None:
    with db.session() as s:
        return s.scalar(select(Setting.value).where(Setting.key == key))


def _put(db: StateDB, key: str, value: str) -> None:
    with db.session() as s, s.begin():
        row = s.get(Setting, key)
        if row is None:
            s.add(Setting(key=key, value=value))
        else:
            row.value = value


def ensure_credentials(db: StateDB, *, admin_password: str | None = None,
                       readonly_token: str | None = None, reset: bool = False) -> Credentials:
    """Make the credentials that are missing (or all of them with ``reset``).

    A given ``admin_password``/``readonly_token`` is used when that credential is made;
    otherwise a random one is. Returns the clear values made now, for showing once.
    """
    made = Credentials(None, None)
    if reset or _get(db, ADMIN_KEY) is None:
        made.admin_password = admin_password or new_secret()
        _put(db, ADMIN_KEY, hash_secret(made.admin_password))
    if reset or _get(db, READONLY_KEY) is None:
        made.readonly_token = readonly_token or new_secret()
        _put(db, READONLY_KEY, hash_secret(made.readonly_token))
    return made


class Authenticator:
    """Checks credentials against the stored hashes; caches successes by SHA-256 so a
    polling API client does not pay scrypt on every request."""

    def __init__(self, db: StateDB) -> None:
        self.db = db
        self._ok: dict[str, Role] = {}
        self._lock = threading.Lock()

    def role_for(self, secret: str) -> Role | None:
        if not secret:
            return None
        fp = hashlib.sha256(secret.encode()).hexdigest()
        with self._lock:
            if fp in self._ok:
                return self._ok[fp]
        role: Role | None = None
        admin, viewer = _get(self.db, ADMIN_KEY), _get(self.db, READONLY_KEY)
        if admin and verify_secret(secret, admin):
            role = "admin"
        elif viewer and verify_secret(secret, viewer):
            role = "viewer"
        if role is not None:
            with self._lock:
                self._ok[fp] = role
        return role


# -- sessions (memory only) ---------------------------------------------------------------------
@dataclass
class Session:
    role: Role
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    expires: float = field(default_factory=lambda: time.time() + SESSION_SECONDS)
    notices: list[str] = field(default_factory=list)  # shown once on the next page


class Sessions:
    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, role: Role) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        sess = Session(role)
        now = time.time()
        with self._lock:
            for old in [k for k, v in self._by_id.items() if v.expires < now]:
                del self._by_id[old]  # forgotten sessions do not pile up
            self._by_id[sid] = sess
        return sid, sess

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            sess = self._by_id.get(sid)
            if sess is not None and sess.expires < time.time():
                del self._by_id[sid]
                sess = None
        return sess

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)


def csrf_ok(session: Session | None, token: str | None) -> bool:
    return (session is not None and token is not None
            and hmac.compare_digest(session.csrf.encode(), token.encode()))
