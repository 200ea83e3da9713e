"""What a throwaway Dovecot instance is told: its options and the files it reads.

Why a module of its own: :mod:`mxshift.testbed.dovecot` runs instances (start, wait,
users, stop); the facts about *what* to run are a separate, mostly declarative job:

* :class:`DovecotConfig`, the kinds of server the tests need, and :data:`VARIANTS`, the
  standard ones used by the pytest fixtures, the README demo and the benchmarks;
* ``dovecot.conf``, rendered from a config for one instance (standalone, unprivileged when
  not root, plain-text passwd-file databases, optional TLS, master users and quota);
* the passwd-files (one per user, so a user added while the server runs can log in at
  once) and the throwaway CA and server certificate for the TLS variants.

:class:`DovecotStartError` lives here because making these files can already fail a start
(no ``trustme`` for the certificates); :mod:`mxshift.testbed.dovecot` raises it too.
"""

from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from mxshift.testbed.dovecot import DovecotServer

__all__ = [
    "DovecotConfig",
    "DovecotStartError",
    "VARIANTS",
    "NOCAPS_CAPABILITIES",
    "CONDSTORE_CAPABILITIES",
    "MB",
]


class DovecotStartError(RuntimeError):
    """The server did not come up; the message carries the tail of its log."""


@dataclass(frozen=True)
class DovecotConfig:
    """What kind of server to start. The defaults are a modern, fully featured Dovecot."""

    namespace_prefix: str = ""          # "INBOX." for a Maildir++/Courier-style server
    separator: str = "/"                # "." for Maildir++ style
    capabilities: str | None = None     # full post-login imap_capability override
    tls: str | None = None              # None | "tls" (implicit TLS) | "starttls"
    master_users: bool = False          # master passdb, separator "*"
    quota_bytes: int | None = None      # maildir quota (storage rule) + imap_quota
    max_message_size: int | None = None  # quota_max_mail_size: larger APPENDs get NO
    special_use: bool = True            # Drafts/Sent/Trash/Junk/Archive flagged (not auto-created)
    fsync: bool = True                  # False -> mail_fsync = never (benchmarks)
    max_userip_connections: int = 100
    login_delays: bool = False          # Dovecot's 2 s failed-login delay + per-IP auth
    #                                     penalty (up to 15 s on the next login); off = fast tests
    oauth2: bool = False                # XOAUTH2/OAUTHBEARER checked by introspection at the
    #                                     FAKE identity provider (testbed/fake_idp.py) on the
    #                                     port written to BASE_DIR/fake-idp.port

    def __post_init__(self) -> None:
        if self.tls not in (None, "tls", "starttls"):
            raise ValueError(f"tls must be None, 'tls' or 'starttls', not {self.tls!r}")
        if len(self.separator) != 1:
            raise ValueError("separator must be one character")


# -- the standard variants (pytest fixtures, README demo, benchmarks) ----------------------
#: Dovecot 2.3's post-login list minus CONDSTORE QRESYNC MULTIAPPEND UIDPLUS MOVE
#: SPECIAL-USE LITERAL+ (the override also replaces the pre-login list, plus AUTH=...).
#: Note: Dovecot still *accepts* e.g. ENABLE CONDSTORE; only the advertisement goes.
NOCAPS_CAPABILITIES = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES "
    "THREAD=REFS THREAD=ORDEREDSUBJECT URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE "
    "LIST-EXTENDED I18NLEVEL=1 ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS "
    "BINARY SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE NOTIFY"
)
#: Dovecot 2.3's full post-login list minus QRESYNC: CONDSTORE deltas without QRESYNC
#: (issue 3: the engine's scenario table runs against exactly this capability set).
CONDSTORE_CAPABILITIES = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES "
    "THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN "
    "NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE ESEARCH ESORT SEARCHRES WITHIN "
    "CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE "
    "SAVEDATE LITERAL+ NOTIFY SPECIAL-USE"
)
MB = 1024 * 1024

VARIANTS: dict[str, DovecotConfig] = {
    "src": DovecotConfig(),
    "dst": DovecotConfig(),
    "maildirpp": DovecotConfig(namespace_prefix="INBOX.", separator="."),
    "nocaps": DovecotConfig(capabilities=NOCAPS_CAPABILITIES),
    "tls": DovecotConfig(tls="tls", master_users=True),
    "starttls": DovecotConfig(tls="starttls"),
    "limited": DovecotConfig(quota_bytes=5 * MB, max_message_size=1 * MB),
    "condstore": DovecotConfig(capabilities=CONDSTORE_CAPABILITIES),  # no QRESYNC
    "oauth": DovecotConfig(oauth2=True),
}


# -- the files an instance reads -------------------------------------------------------
SPECIAL_USE = (("Drafts", r"\Drafts"), ("Sent", r"\Sent"), ("Trash", r"\Trash"),
               ("Junk", r"\Junk"), ("Archive", r"\Archive"))


def render_config(server: DovecotServer, *, run_dir: Path, state_dir: Path,
                  master_file: Path, uid: int, gid: int) -> str:
    """The text of ``server``'s standalone ``dovecot.conf``, from ``server.config``."""
    c = server.config
    root = os.geteuid() == 0
    layout = ":LAYOUT=fs" if c.separator != "." else ""  # Maildir++ keeps "." natively
    lines = [
        f"# mxshift testbed instance {server.name!r} (generated, throwaway)",
        f"instance_name = mxshift-{server.name}-{server.port}",
        f"base_dir = {run_dir}",
        f"state_dir = {state_dir}",
        f"log_path = {server.log_file}",
        "protocols = imap",
        f"listen = {server.host}",
        "disable_plaintext_auth = no",
        "auth_mechanisms = plain login" + (" xoauth2 oauthbearer" if c.oauth2 else ""),
        "auth_verbose = yes",
        *([] if c.login_delays else [
            "auth_failure_delay = 0",  # a refused login still takes ~0.5 s
            # no penalty socket -> auth skips the per-IP penalty (documented switch)
            "service anvil {", "  unix_listener anvil-auth-penalty {", "    mode = 0", "  }", "}",
        ]),
        f"first_valid_uid = {uid}",
        f"last_valid_uid = {uid}",
        f"first_valid_gid = {gid}",
        f"last_valid_gid = {gid}",
        f"mail_location = maildir:~/Maildir{layout}",
        f"mail_fsync = {'optimized' if c.fsync else 'never'}",
        f"mail_max_userip_connections = {c.max_userip_connections}",
        "login_greeting = mxshift testbed ready.",
    ]
    if not root:  # unprivileged Dovecot: everything runs as the caller
        me = pwd.getpwuid(os.getuid()).pw_name
        lines += [f"default_internal_user = {me}", f"default_login_user = {me}"]
    if c.capabilities is not None:
        lines.append(f"imap_capability = {c.capabilities}")

    if c.tls:
        lines += ["ssl = yes", f"ssl_cert = <{server.base_dir / 'server.pem'}",
                  f"ssl_key = <{server.base_dir / 'server.key'}",
                  "ssl_min_protocol = TLSv1.2"]
    else:
        lines.append("ssl = no")
    imap_port, imaps_port = (0, server.port) if c.tls == "tls" else (server.port, 0)
    lines += [
        "service imap-login {",
        f"  inet_listener imap {{\n    address = {server.host}\n    port = {imap_port}\n  }}",
        f"  inet_listener imaps {{\n    address = {server.host}\n    port = {imaps_port}\n  }}",
        "}",
    ]

    lines += ["namespace inbox {", "  inbox = yes", f"  separator = {c.separator}",
              f"  prefix = {c.namespace_prefix}"]
    if c.special_use:
        for mailbox, flag in SPECIAL_USE:
            lines.append(f'  mailbox "{mailbox}" {{\n    special_use = {flag}\n    auto = no\n  }}')
    lines.append("}")

    passwd_args = "scheme=PLAIN username_format=%u"
    if c.master_users:
        lines += ["auth_master_user_separator = *",
                  "passdb {", "  driver = passwd-file", f"  args = {passwd_args} {master_file}",
                  "  master = yes", "  result_success = continue", "}"]
    if c.oauth2:
        lines += _oauth2_passdb(server)
    lines += ["passdb {", "  driver = passwd-file",
              f"  args = {passwd_args} {server.users_dir}/%u", "}",
              "userdb {", "  driver = static",
              f"  args = uid={uid} gid={gid} home={server.base_dir / 'home'}/%u allow_all_users=yes",
              "}"]

    if c.quota_bytes is not None or c.max_message_size is not None:
        lines += ["mail_plugins = $mail_plugins quota",
                  "protocol imap {", "  mail_plugins = $mail_plugins imap_quota", "}",
                  "plugin {", "  quota = maildir:User quota",
                  f"  quota_rule = *:storage={c.quota_bytes or 0}B"]
        if c.max_message_size is not None:
            lines.append(f"  quota_max_mail_size = {c.max_message_size}B")
        lines.append("}")
    return "\n".join(lines) + "\n"


IDP_PORT_FILE = "fake-idp.port"


def _oauth2_passdb(server: DovecotServer) -> list[str]:
    """Dovecot's oauth2 passdb (2.3: ``introspection_mode = post``), for XOAUTH2 and
    OAUTHBEARER only, so PLAIN logins still go to the passwd-files below.

    Why a port file: the FAKE identity provider is a test process started after the
    server; Dovecot asks it only when a token arrives, so the port is chosen here, written
    next to the config, and the fixture starts the provider on it. No auth cache, so an
    expired token is refused at its very next use.
    """
    import socket

    with socket.socket() as sock:
        sock.bind((server.host, 0))
        port = sock.getsockname()[1]
    (server.base_dir / IDP_PORT_FILE).write_text(f"{port}\n")
    args = server.base_dir / "dovecot-oauth2.conf.ext"
    args.write_text("\n".join([
        "introspection_mode = post",
        f"introspection_url = http://{server.host}:{port}/introspect",
        "username_attribute = username",
        "active_attribute = active",
        "active_value = true",
        "timeout_msecs = 5000",
    ]) + "\n")
    return ["passdb {", "  driver = oauth2", "  mechanisms = xoauth2 oauthbearer",
            f"  args = {args}", "}"]


def make_certs(base_dir: Path, host: str) -> Path:
    """A throwaway CA and a certificate for ``host``; returns the CA file clients trust."""
    try:
        import trustme
    except ImportError as exc:  # test-only dependency
        raise DovecotStartError("TLS testbed needs trustme: pip install -e '.[test]'") from exc
    ca = trustme.CA()
    cert = ca.issue_cert(host, "localhost")
    ca_file = base_dir / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_pem.write_to_path(str(base_dir / "server.key"))
    os.chmod(base_dir / "server.key", 0o600)
    with open(base_dir / "server.pem", "wb") as f:
        for blob in cert.cert_chain_pems:
            f.write(blob.bytes())
    return ca_file


def write_passwd(path: Path, user: str, password: str) -> None:
    """Write a one-line passwd-file atomically, readable by group ``dovecot`` (auth)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"{user}:{{PLAIN}}{password}::::::\n")
    os.chmod(tmp, 0o640)
    if os.geteuid() == 0:
        shutil.chown(tmp, group="dovecot")
    os.replace(tmp, path)


def read_users(users_dir: Path) -> dict[str, str]:
    """The users and passwords of an existing instance, so a restart keeps them."""
    users = {}
    for path in users_dir.iterdir():
        if not path.name.startswith("."):
            user, password = path.read_text().split(":", 2)[:2]
            users[user] = password.removeprefix("{PLAIN}")
    return users


_USER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@+-")


def check_user_name(user: str) -> None:
    # the name becomes a file name (users/<name>) and a home directory
    if not user or user.startswith(".") or not set(user) <= _USER_CHARS:
        raise ValueError(f"testbed user names use [A-Za-z0-9._@+-], not {user!r}")


def check_passwd_field(value: str) -> None:
    if not value or any(ch in value for ch in ":\n\r\0"):
        raise ValueError(f"not usable in a passwd-file: {value!r}")
