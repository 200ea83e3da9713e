"""SPF records (RFC 7208): parsing, and the count of DNS look-ups a receiver must make.

Receivers stop after 10 look-ups and treat the record as a permanent error, so a record that
works in a web checker today can break when one more ``include`` is added. Counted, as RFC
7208 section 4.6.4 says, recursively: ``include``, ``a``, ``mx``, ``ptr``, ``exists`` and the
``redirect`` modifier cost one each, and an included record's own terms count too.

Pure: fetching TXT records is the caller's job (a function ``name -> list of TXT strings``
that raises :class:`LookupFailed`), so this is tested without DNS.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

LOOKUP_LIMIT = 10
LOOKUP_TERMS = ("include", "a", "mx", "ptr", "exists")
_MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")


class SpfSyntaxError(ValueError):
    pass


class LookupFailed(Exception):
    """The fetcher could not get a name's TXT records; the message says why."""


@dataclass(frozen=True)
class Term:
    """``qualifier`` is one of ``+-~?`` for mechanisms and ``=`` for modifiers."""

    qualifier: str
    name: str
    value: str


def is_spf(txt: str) -> bool:
    text = txt.strip().lower()
    return text == "v=spf1" or text.startswith("v=spf1 ")


def parse(txt: str) -> list[Term]:
    if not is_spf(txt):
        raise SpfSyntaxError("does not start with v=spf1")
    terms = []
    for word in txt.split()[1:]:
        modifier = re.fullmatch(r"([A-Za-z][A-Za-z0-9_.-]*)=(.*)", word)
        if modifier:
            terms.append(Term("=", modifier.group(1).lower(), modifier.group(2)))
            continue
        m = re.fullmatch(r"([+\-~?]?)([A-Za-z0-9]+)(?:[:/](.*))?", word)
        if not m or m.group(2).lower() not in _MECHANISMS:
            raise SpfSyntaxError(f"unknown term {word!r}")
        name = m.group(2).lower()
        value = m.group(3) or ""
        if name in ("include", "exists") and not value:
            raise SpfSyntaxError(f"{name} needs a domain ({word!r})")
        terms.append(Term(m.group(1) or "+", name, value))
    return terms


def includes(txt: str) -> list[str]:
    """The domains named by ``include:`` (lower case), in order."""
    return [t.value.lower().rstrip(".") for t in parse(txt) if t.name == "include"]


@dataclass
class LookupCount:
    lookups: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def over_limit(self) -> bool:
        return self.lookups > LOOKUP_LIMIT


Fetch = Callable[[str], list[str]]


def count_lookups(txt: str, fetch: Fetch, *, domain: str = "") -> LookupCount:
    """Look-ups needed to evaluate ``txt`` (the record of ``domain``), following includes
    and redirects through ``fetch``. Problems (a missing include, a loop, two records at an
    include) are collected, not raised; the count covers what could be followed."""
    result = LookupCount()

    def walk(record: str, name: str, path: tuple[str, ...]) -> None:
        try:
            terms = parse(record)
        except SpfSyntaxError as exc:
            result.problems.append(f"SPF of {name or 'the domain'} {exc}")
            return
        has_all = any(t.name == "all" for t in terms)
        for t in terms:
            if t.name in LOOKUP_TERMS:
                result.lookups += 1
                if t.name == "include":
                    follow(t.value, path)
        redirect = next((t.value for t in terms if t.qualifier == "=" and t.name == "redirect"),
                        None)
        if redirect and not has_all:
            result.lookups += 1
            follow(redirect, path)

    def follow(target: str, path: tuple[str, ...]) -> None:
        target = target.lower().rstrip(".")
        if "%{" in target:
            result.problems.append(f"{target} uses SPF macros: not followed")
            return
        if target in path:
            result.problems.append(f"SPF include loop: {' -> '.join(path + (target,))}")
            return
        try:
            records = [t for t in fetch(target) if is_spf(t)]
        except LookupFailed as exc:
            result.problems.append(f"include {target}: {exc}")
            return
        if len(records) != 1:
            result.problems.append(f"include {target} has {len(records)} SPF records, "
                                   f"receivers need exactly one")
            return
        walk(records[0], target, path + (target,))

    walk(txt, domain, (domain.lower(),) if domain else ())
    return result
