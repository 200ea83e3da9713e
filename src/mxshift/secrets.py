"""Passwords: references to them, sealing them for the state database, keeping them out of logs.

Why references: an admin migrating thousands of mailboxes should not have to paste every
password into a file that gets copied around. ``env:NAME`` and ``file:PATH`` point at the
secret instead; only a bare value is the secret itself (a *literal*).

Why this module never prints a secret: error messages, ``repr()`` and logs end up in tickets
and chat. Everything here names *where* a secret comes from, never what it is.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mxshift.errors import MxshiftError

# cryptography is imported when a literal is sealed or opened, not with this module: the
# config (SecretRef) and every command import this module, most never decrypt anything
# (tests/test_startup.py).
if TYPE_CHECKING:
    from cryptography.fernet import Fernet

SecretKind = Literal["env", "file", "literal"]

KEY_ENV = "MXSHIFT_SECRET_KEY"
KEY_FILE = ".mxshift.key"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PREFIXES: tuple[tuple[str, SecretKind], ...] = (("env:", "env"), ("file:", "file"),
                                                 ("literal:", "literal"))


@dataclass(frozen=True, repr=False)
class SecretRef:
    """Where a password comes from: an environment variable, a file, or the value itself.

    ``value`` is the variable name, the file path, or (for ``literal``) the secret. ``repr`` and
    ``str`` show the first two and mask the third, so a SecretRef is safe to log.
    """

    kind: SecretKind
    value: str

    def __post_init__(self) -> None:
        if self.kind not in ("env", "file", "literal"):
            raise ValueError(f"unknown secret kind {self.kind!r}")

    @classmethod
    def parse(cls, cell: str) -> SecretRef:
        """Read ``env:NAME``, ``file:PATH`` or a literal password.

        Prefixes are matched case-insensitively (``ENV:X`` is a reference, not a password that
        happens to look like one). A password that really starts with ``env:`` or ``file:`` can be
        written ``literal:env:...``. Surrounding spaces are ignored for references but kept for
        literals, where they might be part of the password.

        Raises ValueError for an empty cell or a malformed reference; the message never repeats
        the cell, since a malformed reference may be a mistyped password.
        """
        stripped = cell.strip()
        if not stripped:
            raise ValueError("empty password")
        lowered = stripped.lower()
        for prefix, kind in _PREFIXES:
            if not lowered.startswith(prefix):
                continue
            rest = stripped[len(prefix):]
            if kind == "env":
                if not _ENV_NAME.fullmatch(rest):
                    raise ValueError("env: reference needs a variable name made of letters, "
                                     "digits and _ that does not start with a digit, "
                                     "like env:MAILBOX_PW")
                return cls("env", rest)
            if kind == "file":
                if not rest.strip():
                    raise ValueError("file: reference needs a path, like file:/etc/mxshift/pw")
                return cls("file", rest.strip())
            literal = cell.lstrip()[len(prefix):]
            if not literal:
                raise ValueError("literal: needs a password after the prefix")
            return cls("literal", literal)
        return cls("literal", cell)

    def resolve(self) -> str:
        """Return the password; errors name the variable or file, never a value."""
        if self.kind == "literal":
            return self.value
        if self.kind == "env":
            found = os.environ.get(self.value)
            if found is None:
                raise MxshiftError(f"environment variable {self.value} is not set "
                                   f"(a password refers to env:{self.value})")
            if not found:
                raise MxshiftError(f"environment variable {self.value} is empty "
                                   f"(a password refers to env:{self.value})")
            return found
        path = Path(self.value).expanduser()
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except OSError as exc:
            raise MxshiftError(f"cannot read password file {path}: "
                               f"{exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise MxshiftError(f"password file {path} is not UTF-8 text") from None
        lines = text.splitlines()
        first = lines[0].strip() if lines else ""
        if not first:
            raise MxshiftError(f"password file {path} has an empty first line")
        return first

    def __str__(self) -> str:
        if self.kind == "literal":
            return "literal:***"
        return f"{self.kind}:{self.value}"

    def __repr__(self) -> str:
        return f"SecretRef({str(self)!r})"


class SecretBox:
    """Seals secrets for the state database: references are stored as they are (they are not
    secrets); literals are encrypted (Fernet) with a key from MXSHIFT_SECRET_KEY or
    DIR/.mxshift.key created with mode 0600.

    Why a key file next to the project: the state database gets copied and backed up; the
    passwords in it should be useless without the key. The key is only created the first time a
    literal is sealed, so projects that use only references never get one. An
    ``MXSHIFT_SECRET_KEY`` in the environment wins over the file, for setups that keep keys in a
    secrets manager.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._fernet: Fernet | None = None

    @property
    def key_path(self) -> Path:
        return self.directory / KEY_FILE

    def seal(self, ref: SecretRef) -> str:
        """``env:NAME`` | ``file:PATH`` | ``fernet:<token>``."""
        if ref.kind != "literal":
            return str(ref)
        token = self._key(create=True).encrypt(ref.value.encode("utf-8"))
        return "fernet:" + token.decode("ascii")

    def open(self, sealed: str) -> SecretRef:
        """Undo :meth:`seal`. A token sealed under another key is an error, not garbage."""
        if sealed.startswith("fernet:"):
            from cryptography.fernet import InvalidToken

            try:
                plain = self._key(create=False).decrypt(sealed[len("fernet:"):].encode("ascii"))
            except (InvalidToken, UnicodeEncodeError):
                raise MxshiftError(
                    f"cannot decrypt a stored password: was it sealed with another key "
                    f"({KEY_ENV} / {self.key_path} changed?)") from None
            return SecretRef("literal", plain.decode("utf-8"))
        for prefix, kind in _PREFIXES[:2]:
            if sealed.startswith(prefix) and sealed[len(prefix):]:
                return SecretRef(kind, sealed[len(prefix):])
        raise MxshiftError("stored password is not in a form mxshift writes "
                           "(expected env:, file: or fernet:)")

    def prepare(self, sealed: Iterable[str | None]) -> None:
        """Load the cipher and the key now if any of ``sealed`` needs them: once per
        process, before its passes. Why: importing the cipher (cryptography's compiled
        core, ~6 ms) is a cost of the process, not of the first mailbox's pass, which
        waited for it before its first login. A missing key is left for the pass to
        report, as before."""
        if any(s is not None and s.startswith("fernet:") for s in sealed):
            try:
                self._key(create=False)
            except MxshiftError:
                pass

    def _key(self, *, create: bool) -> Fernet:
        if self._fernet is None:
            from cryptography.fernet import Fernet

            self._fernet = Fernet(self._load_key(create=create))
        return self._fernet

    def _load_key(self, *, create: bool) -> bytes:
        from_env = os.environ.get(KEY_ENV)
        if from_env:
            return _check_key(from_env.strip().encode("ascii", "replace"), KEY_ENV)
        path = self.key_path
        try:
            return _check_key(path.read_bytes().strip(), str(path))
        except FileNotFoundError:
            if not create:
                raise MxshiftError(f"cannot decrypt a stored password: no key ({KEY_ENV} is not "
                                   f"set and {path} does not exist; {KEY_ENV} / .mxshift.key "
                                   f"changed?)") from None
        except OSError as exc:
            raise MxshiftError(f"cannot read key file {path}: {exc.strerror or exc}") from None
        return _create_key_file(path)


def _check_key(key: bytes, origin: str) -> bytes:
    from cryptography.fernet import Fernet

    try:
        Fernet(key)
    except ValueError:
        raise MxshiftError(
            f"{origin} does not hold a valid key (32 url-safe base64-encoded bytes); make one "
            f"with: python -c \"from cryptography.fernet import Fernet; "
            f"print(Fernet.generate_key().decode())\"") from None
    return key


def _create_key_file(path: Path) -> bytes:
    """Write a fresh key with mode 0600, atomically: two processes starting at once must end up
    with the same key, so the file appears complete or not at all (link fails if it exists)."""
    from cryptography.fernet import Fernet

    key = Fernet.generate_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".mxshift.key.", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp already uses 0600; be explicit where we can
            os.fchmod(fd, 0o600)
        os.write(fd, key + b"\n")
        os.fsync(fd)
        os.close(fd)
        fd = -1
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _check_key(path.read_bytes().strip(), str(path))
    finally:
        if fd >= 0:
            os.close(fd)
        os.unlink(tmp)
    return key


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of a known secret by ``***`` (used by log filters).

    Longest secrets are matched first and in one pass, so a password that contains another
    password is masked whole and ``***`` is never re-scanned.
    """
    needles = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not needles:
        return text
    return re.sub("|".join(map(re.escape, needles)), "***", text)
