"""Typed access to a TOML table, with errors that point at the file, line and key.

Why apart from :mod:`mxshift.config`: this is the reading machinery (types, ranges, sizes,
a best-effort key -> line index over the TOML text); config.py says what the project file
may contain, using it.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from mxshift.errors import ConfigError

_MISSING: Any = object()


class _Context:
    """The file being parsed: its name for messages and a best-effort key -> line index."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self._lines = _line_index(text)

    def line_of(self, keypath: tuple[str | int, ...]) -> int | None:
        for end in range(len(keypath), 0, -1):
            line = self._lines.get(keypath[:end])
            if line is not None:
                return line
        return None


class _Table:
    def __init__(self, ctx: _Context, data: dict[str, Any] | None,
                 keypath: tuple[str | int, ...]) -> None:
        self.ctx = ctx
        self.present = data is not None
        self.data = data or {}
        self.keypath = keypath

    def child(self, data: dict[str, Any] | None, keys: tuple[str | int, ...]) -> _Table:
        return _Table(self.ctx, data, self.keypath + keys)

    def table(self, name: str, *, required: bool = False) -> _Table:
        value = self.data.get(name)
        if value is None:
            if required:
                raise self.fail(None, f"missing table [{_display(self.keypath + (name,))}]")
            return self.child(None, (name,))
        if not isinstance(value, dict):
            raise self.fail(name, f"must be a table ([{_display(self.keypath + (name,))}]), "
                                  f"got {_kind(value)}")
        return self.child(value, (name,))

    def allow(self, *known: str) -> None:
        """Reject unknown keys first, so a typo is reported as a typo and not as a missing key."""
        for key, value in self.data.items():
            if key in known:
                continue
            what = (f"table [{_display(self.keypath + (key,))}]" if isinstance(value, dict)
                    else f"key {_display(self.keypath + (key,))}")
            guess = difflib.get_close_matches(key, known, n=1) or [
                k for k in known if len(key) >= 3 and k.startswith(key)][:1]
            hint = f" (did you mean {guess[0]}?)" if guess else f"; known: {', '.join(known)}"
            raise self.fail(key, f"unknown {what}{hint}", bare=True)

    def get(self, name: str, default: Any = _MISSING) -> Any:
        value = self.data.get(name, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                where = _display(self.keypath)
                raise self.fail(None, f"missing required key {name}"
                                      + (f" in [{where}]" if where else ""))
            return default
        return value

    def fail(self, name: str | int | None, message: str, *, bare: bool = False) -> ConfigError:
        keypath = self.keypath if name is None else self.keypath + (name,)
        if name is not None and not bare:
            message = f"{_display(keypath)} {message}"
        return ConfigError(message, path=self.ctx.path, line=self.ctx.line_of(keypath))


def _display(keypath: tuple[str | int, ...]) -> str:
    out = ""
    for part in keypath:
        out += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    return {int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), "a date/time")


def _got(value: Any) -> str:
    shown = repr(value)
    return f"{_kind(value)} {shown if len(shown) <= 40 else shown[:37] + '...'}"


def _string(t: _Table, name: str, default: Any = _MISSING, *, secret: bool = False) -> Any:
    if name not in t.data and default is not _MISSING:
        return default
    value = t.get(name)
    if not isinstance(value, str):
        raise t.fail(name, "must be a string" + ("" if secret else f", got {_got(value)}"))
    if not value.strip():
        raise t.fail(name, "must not be empty")
    return value if secret else value.strip()


def _choice(t: _Table, name: str, choices: tuple[Any, ...], default: Any) -> Any:
    value = _string(t, name, default)
    if value not in choices:
        raise t.fail(name, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _integer(t: _Table, name: str, default: int, *, minimum: int,
             maximum: int | None = None) -> int:
    value = t.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise t.fail(name, f"must be a whole number, got {_got(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        limit = (f"between {minimum} and {maximum}" if maximum is not None
                 else ("0 or more" if minimum == 0 else f"at least {minimum}"))
        raise t.fail(name, f"must be {limit}, got {value}")
    return value


def _number(t: _Table, name: str, default: float) -> float:
    """A number greater than 0 (callers add upper bounds)."""
    value = t.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise t.fail(name, f"must be a number, got {_got(value)}")
    if not 0 < value < float("inf"):  # also rejects nan
        raise t.fail(name, f"must be more than 0, got {value}")
    return float(value)


def _string_list(t: _Table, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if name not in t.data:
        return default
    value = t.get(name)
    if isinstance(value, str):
        raise t.fail(name, f"must be a list of strings, like [{value!r}]")
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise t.fail(name, f"must be a list of non-empty strings, got {_got(value)}")
    return tuple(v.strip() for v in value)


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def parse_size(text: str) -> int:
    """Bytes from ``"35MB"``. Units are 1024-based (KB = KiB = 1024 bytes, MB = 1024 KB,
    GB = 1024 MB) because mail servers' size limits are; ``K``, ``KB``, ``KiB``, ``B`` and no
    unit are accepted, case-insensitively. Raises ValueError."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a size like 35MB, 512KB or 1GB")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _size(t: _Table, name: str, default: int | None) -> int | None:
    """A size in bytes: an integer or a string with a KB/MB/GB unit (1024-based)."""
    if name not in t.data:
        return default
    value = t.get(name)
    if isinstance(value, str):
        try:
            value = parse_size(value)
        except ValueError as exc:
            raise t.fail(name, f"must be a size: {exc}") from None
    elif isinstance(value, bool) or not isinstance(value, int):
        raise t.fail(name, f"must be bytes or a size like \"35MB\", got {_got(value)}")
    if value < 1:
        raise t.fail(name, f"must be at least 1 byte, got {value}")
    return value


_BARE = r"""[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'"""
_KEY = rf"(?:{_BARE})(?:[ \t]*\.[ \t]*(?:{_BARE}))*"
_HEADER = re.compile(rf"[ \t]*(\[\[?)[ \t]*({_KEY})[ \t]*\]")
_ASSIGN = re.compile(rf"[ \t]*({_KEY})[ \t]*=")
_PART = re.compile(_BARE)


def _key_parts(key: str) -> tuple[str, ...]:
    return tuple(p[1:-1] if p[0] in "\"'" else p for p in _PART.findall(key))


def _line_index(text: str) -> dict[tuple[str | int, ...], int]:
    """First line of every table header and key, by key path. Best effort: it does not parse
    TOML (tomllib already did), it only needs to point a human at the right line."""
    index: dict[tuple[str | int, ...], int] = {}
    table: tuple[str | int, ...] = ()
    arrays: dict[tuple[str, ...], int] = {}
    in_multiline: str | None = None
    for number, line in enumerate(text.split("\n"), 1):
        if in_multiline:
            if line.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        header = _HEADER.match(line)
        if header:
            parts = _key_parts(header.group(2))
            if header.group(1) == "[[":
                count = arrays.get(parts, 0)
                arrays[parts] = count + 1
                index.setdefault(parts, number)
                table = parts + (count,)
            else:
                table = parts
            index.setdefault(table, number)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            full = table + _key_parts(assign.group(1))
            for end in range(len(table) + 1, len(full) + 1):
                index.setdefault(full[:end], number)
            rest = line[assign.end():]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_multiline = quote
                    break
    return index
