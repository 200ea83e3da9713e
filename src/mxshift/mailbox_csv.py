"""The mailbox list ``mailboxes.csv``: which source mailbox goes to which destination mailbox.

Why a module of its own: the list is a spreadsheet export, not a config file. It is read row
by row, and every problem in it is reported at once: with hundreds of rows, fixing one error
per run would be miserable. The project file's strict, key-by-key TOML reading lives in
:mod:`mxshift.config`; the two share only the project file name and the way ``file:``
password paths are anchored.

No message ever contains a password cell, and nothing here reads a secret: a cell becomes a
:class:`~mxshift.secrets.SecretRef`, resolved later by whoever needs the password.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mxshift.config import PROJECT_FILE, anchor_ref
from mxshift.errors import ConfigError
from mxshift.secrets import SecretRef

MAILBOX_COLUMNS = ("source_user", "source_password", "destination_user", "destination_password")
MAX_REPORTED_PROBLEMS = 20


@dataclass(frozen=True)
class MailboxEntry:
    """One row of ``mailboxes.csv``. A None password means "use the admin login"."""

    line: int
    source_user: str
    source_password: SecretRef | None
    destination_user: str
    destination_password: SecretRef | None


@dataclass(frozen=True)
class _Problem:
    line: int
    column: str | None
    message: str


def parse_mailbox_csv(path: Path, *, source_admin: bool = False,
                      destination_admin: bool = False) -> list[MailboxEntry]:
    """Read the mailbox pairs. Every problem in the file is reported in one ConfigError.

    ``source_admin`` / ``destination_admin`` say that side has an admin login, so its password
    cells may be empty (None in the entry). User names are compared case-insensitively for
    duplicates, since servers treat them so. ``file:`` paths are taken relative to the CSV's
    directory. No message ever contains a password cell.
    """
    path = Path(path)
    where = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("not found; list the mailboxes to migrate there (`mxshift init` "
                          "writes an example)", path=where) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", path=where) from None

    problems: list[_Problem] = []
    bad_bytes: list[tuple[int, int]] = []  # (line, field index), column named once we know it
    lines: list[tuple[int, str]] = []
    for number, raw in enumerate(data.splitlines(keepends=True), 1):
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            before = raw[:exc.start].decode("utf-8")
            fields = next(csv.reader([before]), [""])
            bad_bytes.append((number, len(fields) - 1))
            continue
        if text.strip() and not text.lstrip().startswith("#"):
            lines.append((number, text))

    consumed: list[int] = []

    def feed() -> Iterator[str]:
        for number, text in lines:
            consumed.append(number)
            yield text

    reader = csv.reader(feed())
    header = next(reader, None)
    names: list[str] = []
    if header is None:
        problems.append(_Problem(bad_bytes[0][0] if bad_bytes else 1, None,
                                 "no header line; the first line must be "
                                 + ",".join(MAILBOX_COLUMNS)))
    else:
        names = [h.strip().lower() for h in header]
        problems += _header_problems(names, consumed[0])

    def column(line: int, index: int) -> str | None:
        if not consumed or line < consumed[0] or index >= len(names):
            return None
        return names[index] if names[index] in MAILBOX_COLUMNS else None

    problems += [_Problem(n, column(n, i), "not valid UTF-8 text; save the file as UTF-8 "
                                           "(\"CSV UTF-8\" in Excel)") for n, i in bad_bytes]
    if header is None or any(p.line == consumed[0] for p in problems):
        raise _collect(where, problems)

    entries: list[MailboxEntry] = []
    first_seen: dict[str, dict[str, int]] = {"source_user": {}, "destination_user": {}}
    admin = {"source": source_admin, "destination": destination_admin}
    while True:
        start = len(consumed)
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(_Problem(consumed[min(start, len(consumed) - 1)], None,
                                     f"cannot read this CSV row: {exc}"))
            continue
        number = consumed[start]
        if len(row) != len(names):
            spanned = len(consumed) - start
            hint = (f"; a quoted field runs over {spanned} lines: missing closing quote?"
                    if spanned > 1 else "")
            problems.append(_Problem(number, None, f"expected {len(names)} fields "
                                                   f"({','.join(names)}), found {len(row)}"
                                                   + hint))
            continue
        cells = dict(zip(names, row))
        row_problems: list[_Problem] = []
        users: dict[str, str] = {}
        passwords: dict[str, SecretRef | None] = {}
        for side in ("source", "destination"):
            user_col, pw_col = f"{side}_user", f"{side}_password"
            user = cells[user_col].strip()
            users[side] = user
            if not user:
                row_problems.append(_Problem(number, user_col, "empty user"))
            else:
                first = first_seen[user_col].setdefault(user.casefold(), number)
                if first != number:
                    row_problems.append(_Problem(number, user_col,
                                                 f"{user} is also listed on line {first}"))
            cell = cells[pw_col]
            passwords[side] = None
            if not cell.strip():
                if not admin[side]:
                    row_problems.append(_Problem(
                        number, pw_col, f"empty password, and {PROJECT_FILE} has neither a "
                                        f"[{side}.admin] login nor OAuth2 for it; give a "
                                        "password, env:VAR or file:PATH"))
                continue
            try:
                passwords[side] = anchor_ref(SecretRef.parse(cell), path.parent)
            except ValueError as exc:
                row_problems.append(_Problem(number, pw_col, str(exc)))
        problems += row_problems
        if not row_problems:
            entries.append(MailboxEntry(line=number, source_user=users["source"],
                                        source_password=passwords["source"],
                                        destination_user=users["destination"],
                                        destination_password=passwords["destination"]))
    if problems:
        raise _collect(where, problems)
    return entries


def _header_problems(names: list[str], line: int) -> list[_Problem]:
    expected = ",".join(MAILBOX_COLUMNS)
    known = [n for n in names if n in MAILBOX_COLUMNS]
    if not known:
        # Probably a data row: do not echo it, it may hold a password.
        return [_Problem(line, None, f"the first line is not the header; it must be {expected} "
                                     f"(columns in any order)")]
    problems = []
    unknown = [n or "(empty)" for n in names if n not in MAILBOX_COLUMNS]
    if unknown:
        problems.append(_Problem(line, None, f"unknown column{'s' * (len(unknown) > 1)} "
                                             f"{', '.join(unknown)}; expected {expected}"))
    for name in MAILBOX_COLUMNS:
        count = names.count(name)
        if count == 0:
            problems.append(_Problem(line, name, "missing column in the header"))
        elif count > 1:
            problems.append(_Problem(line, name, f"column appears {count} times in the header"))
    return problems


def _collect(where: str, problems: list[_Problem]) -> ConfigError:
    """One error for the whole file: a single problem reads as one line; several are listed."""
    problems = sorted(problems, key=lambda p: p.line)
    first = problems[0]
    if len(problems) == 1:
        return ConfigError(first.message, path=where, line=first.line, column=first.column)
    shown = [f"  {where}:{p.line}" + (f" (column {p.column})" if p.column else "")
             + f": {p.message}" for p in problems[:MAX_REPORTED_PROBLEMS]]
    if len(problems) > MAX_REPORTED_PROBLEMS:
        shown.append(f"  ... and {len(problems) - MAX_REPORTED_PROBLEMS} more")
    error = ConfigError(f"{len(problems)} problems:\n" + "\n".join(shown), path=where)
    error.line, error.column = first.line, first.column
    return error
