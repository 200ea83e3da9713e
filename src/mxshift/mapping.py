"""Folder mapping: decide, without touching any server, where every source folder goes.

Why a pure function: the folder plan is the one part of a migration an operator must be
able to review (dry run), reproduce (re-runs must hit the very same destination folders,
or messages get duplicated) and unit-test against the odd trees real servers produce.
So the IMAP code lists folders and NAMESPACE, hands them here, and acts on the result.

Vocabulary: a *wire name* is the raw, modified-UTF-7 encoded name a server sends and
accepts, prefix and separator included ("INBOX.Entw&APw-rfe"). A *logical path* is a
tuple of unicode components, without namespace prefix or separator (("Entwürfe",)); it
is what rules match against and what reports show.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from imapclient import imap_utf7

from mxshift.errors import ConfigError
from mxshift.folder_names import NameRules, safe_path

INBOX = "INBOX"
ROLES = ("inbox", "sent", "drafts", "trash", "junk", "archive", "all", "flagged")


@dataclass(frozen=True)
class Namespace:
    prefix: str  # personal namespace prefix, as the server sends it (e.g. "INBOX." or "")
    separator: str  # hierarchy separator, e.g. "." or "/"; "" means a flat server


@dataclass(frozen=True)
class RemoteFolder:
    name: str  # raw wire name (modified UTF-7 encoded, as listed with folder_encode=False)
    flags: frozenset[str] = frozenset()  # LIST flags incl. special-use


@dataclass(frozen=True)
class RenameRule:
    pattern: str  # regex, full-match against the "/"-joined source logical path
    replacement: str  # Match.expand template producing a "/"-joined logical path


@dataclass(frozen=True)
class MappingRules:
    include: tuple[str, ...] = ("*",)  # fnmatch globs (case-sensitive); exclude wins
    exclude: tuple[str, ...] = ()
    renames: tuple[RenameRule, ...] = ()  # first matching rule applies
    # LIST flags whose folders are not copied (a Gmail source's views: \All, \Important,
    # \Flagged; mxshift.providers): the flag holds in any display language, names do not
    exclude_flags: tuple[str, ...] = ()
    # The destination service's folder-name rules (mxshift.folder_names): a path to be
    # created that it would refuse is renamed, with the reason in the folder's notes
    name_rules: NameRules | None = None


@dataclass(frozen=True)
class FolderMapping:
    source: str  # raw source wire name; "" for a parent synthesised only to hold the tree
    destination: str  # raw destination wire name
    logical: tuple[str, ...]  # destination logical path, for display and reports
    role: str | None
    selectable: bool  # False: create on the destination, copy nothing
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class MappingResult:
    mappings: tuple[FolderMapping, ...]
    excluded: tuple[tuple[str, str], ...]  # (source name, reason)
    collisions: tuple[str, ...]


# SPECIAL-USE (RFC 6154) flags, plus the older Gmail XLIST spellings still seen in the wild.
_FLAG_ROLES = {"\\sent": "sent", "\\drafts": "drafts", "\\trash": "trash", "\\junk": "junk",
               "\\spam": "junk", "\\archive": "archive", "\\all": "all", "\\allmail": "all",
               "\\flagged": "flagged", "\\starred": "flagged"}

# Servers without SPECIAL-USE (Courier, old Exchange, many hosters) only tell us by name.
# Order matters: earlier names win when a mailbox has several candidates for one role.
ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "sent": ("Sent", "Sent Items", "Sent Mail", "Sent Messages", "Gesendete Elemente",
             "Gesendete Objekte", "Envoyés", "Éléments envoyés", "[Gmail]/Sent Mail",
             "[Google Mail]/Sent Mail"),
    "drafts": ("Drafts", "Draft", "Entwürfe", "Brouillons", "[Gmail]/Drafts",
               "[Google Mail]/Drafts"),
    "trash": ("Trash", "Deleted Items", "Deleted Messages", "Deleted", "Bin", "Papierkorb",
              "Gelöschte Elemente", "Corbeille", "Éléments supprimés", "[Gmail]/Trash",
              "[Gmail]/Bin", "[Google Mail]/Papierkorb"),
    "junk": ("Junk", "Junk E-mail", "Junk Email", "Junk-E-Mail", "Spam", "Bulk Mail",
             "[Gmail]/Spam", "[Google Mail]/Spam"),
    "archive": ("Archive", "Archives"),
    "all": ("[Gmail]/All Mail", "[Google Mail]/Alle Nachrichten"),
    "flagged": ("[Gmail]/Starred", "[Google Mail]/Markiert"),
}
_NAME_ROLES = {name.casefold(): (role, i)
               for role, names in ROLE_NAMES.items() for i, name in enumerate(names)}
_UNSELECTABLE = {"\\noselect", "\\nonexistent"}


def _is_inbox(component: str) -> bool:
    # isascii: "ınbox".upper() == "INBOX" in Python, but no server means that.
    return component.isascii() and component.upper() == INBOX


def decode_component(raw: str) -> str:
    """Modified UTF-7 -> unicode for one name component.

    Text that is not valid modified UTF-7 (a bare "&" from a sloppy client, 8-bit names from
    a UTF8=ACCEPT server) is kept literally: guessing would rename the folder, and encoding
    the literal text again gives the destination a correct name ("AT&T" -> "AT&-T").
    """
    try:
        data = raw.encode("ascii")
        text = imap_utf7.decode(data)
    except (UnicodeError, ValueError):
        return raw
    return text if imap_utf7.encode(text) == data else raw


def encode_component(text: str) -> str:
    """Unicode -> modified UTF-7 for one name component."""
    return imap_utf7.encode(text).decode("ascii")


def _prefix(ns: Namespace) -> str:
    """The prefix with its trailing separator: servers send both "INBOX." and "INBOX"."""
    p = ns.prefix
    if p and ns.separator and not p.endswith(ns.separator):
        p += ns.separator
    return p


def logical_path(raw_name: str, ns: Namespace) -> tuple[str, ...]:
    """Split a raw wire name into its logical path; () means the namespace root itself.

    INBOX is special (RFC 3501: case-insensitive) and always comes back as ("INBOX",). On a
    prefix-"INBOX." server the children of INBOX are the user's top-level folders, so
    "INBOX.Sent" -> ("Sent",). Names outside the prefix (another namespace) are split whole.
    """
    if _is_inbox(raw_name):
        return (INBOX,)
    prefix, sep = _prefix(ns), ns.separator
    rest = raw_name
    if prefix:
        root = prefix[: -len(sep)] if sep else prefix
        if raw_name.startswith(prefix) or (
            _is_inbox(root) and raw_name.upper().startswith(prefix.upper())
        ):
            rest = raw_name[len(prefix):]
        elif raw_name == root:
            return ()
    if not rest:
        return ()
    comps = tuple(decode_component(p) for p in (rest.split(sep) if sep else [rest]))
    if _is_inbox(comps[0]):
        comps = (INBOX,) + comps[1:]
    return comps


def _replacement(sep: str, replacement: str) -> str:
    return "-" if replacement == sep else replacement


def sanitize_component(component: str, sep: str, replacement: str = "_") -> tuple[str, str | None]:
    """Replace the separator inside one component, so it stays one level (with a note)."""
    if not sep or sep not in component:
        return component, None
    repl = _replacement(sep, replacement)
    return (component.replace(sep, repl),
            f"separator '{sep}' in name component '{component}' replaced by '{repl}'")


def wire_name(logical: Iterable[str], ns: Namespace, replacement: str = "_") -> str:
    """Inverse of logical_path: encode, join with the separator, add the prefix.

    A component containing the separator gets it replaced (it must not become a new level).
    """
    comps = [sanitize_component(c, ns.separator, replacement)[0] for c in logical]
    if not comps:
        raise ValueError("the empty logical path has no wire name")
    if not ns.separator and len(comps) > 1:
        raise ValueError(f"flat namespace cannot hold nested folder {'/'.join(comps)!r}")
    if _is_inbox(comps[0]):
        return ns.separator.join([INBOX] + [encode_component(c) for c in comps[1:]])
    return _prefix(ns) + ns.separator.join(encode_component(c) for c in comps)


def _flags(folder: RemoteFolder) -> frozenset[str]:
    return frozenset((f.decode("ascii", "replace") if isinstance(f, bytes) else f).lower()
                     for f in folder.flags)


def _display(path: tuple[str, ...]) -> str:
    return "/".join(path)


@dataclass(eq=False)
class _Entry:
    raw: str
    src: tuple[str, ...]
    flags: frozenset[str]
    notes: list[str] = field(default_factory=list)
    role: str | None = None
    own: tuple[str, ...] | None = None  # destination fixed by INBOX/rule/role, else None
    anchor: _Entry | None = None  # nearest included source ancestor (followed if own is None)
    rest: tuple[str, ...] = ()  # components below the anchor, sanitised
    depth: int = 0
    final: tuple[str, ...] = ()

    def role_rank(self) -> tuple[str, tuple[int, int, str]] | None:
        """(role, rank): SPECIAL-USE flag beats name; then name-list order; then raw name."""
        named = _NAME_ROLES.get(_display(self.src).casefold())
        for flag in sorted(self.flags):
            if flag in _FLAG_ROLES:
                role = _FLAG_ROLES[flag]
                idx = named[1] if named and named[0] == role else len(ROLE_NAMES.get(role, ()))
                return role, (0, idx, self.raw)
        return (named[0], (1, named[1], self.raw)) if named else None


def _service_safe(rules: NameRules, path: tuple[str, ...],
                  canon: dict[tuple[str, ...], tuple[str, ...]], notes: list[str]
                  ) -> tuple[str, ...]:
    """``path`` renamed where the destination service would refuse it (folder_names.py).

    Components that already exist on the destination, or that this plan already made
    safe (a parent), are kept: the server took them, and re-runs must hit them again."""
    keep = 0
    while keep < len(path) and tuple(c.casefold() for c in path[:keep + 1]) in canon:
        keep += 1
    safe, why = safe_path(rules, path, keep)
    if why:
        notes.append(why)
    return safe


def map_folders(source_folders: Iterable[RemoteFolder], source_ns: Namespace,
                dest_folders: Iterable[RemoteFolder], dest_ns: Namespace,
                rules: MappingRules = MappingRules()) -> MappingResult:
    """Plan where every source folder goes on the destination. Pure: no I/O.

    The destination is treated as case-insensitive (Exchange/M365 are), so no two source
    folders ever share a destination: later ones get " (2)", " (3)". Existing destination
    folders are not collisions; they are reused (re-runs must land in the same folders).
    """
    dsep = dest_ns.separator
    if not dsep:
        raise ValueError("destination without a hierarchy separator is not supported")
    try:
        renames = [(re.compile(r.pattern), r) for r in rules.renames]
    except re.error as exc:
        raise ConfigError(f"bad rename pattern: {exc}") from exc

    def normalise(path: tuple[str, ...]) -> tuple[str, ...]:
        # ("INBOX", "x") and ("x",) are one folder on a prefix-"INBOX." destination.
        return logical_path(wire_name(path, dest_ns), dest_ns)

    def sanitise(path: tuple[str, ...], notes: list[str]) -> tuple[str, ...]:
        out = []
        for comp in path:
            clean, note = sanitize_component(comp, dsep)
            out.append(clean)
            if note:
                notes.append(note)
        return tuple(out)

    # Duplicates in a listing are merged (flag union) so input order cannot matter.
    merged: dict[str, set[str]] = {}
    for folder in source_folders:
        merged.setdefault(folder.name, set()).update(_flags(folder))
    excluded: list[tuple[str, str]] = []
    entries: list[_Entry] = []
    view_flags = {f.lower(): f for f in rules.exclude_flags}
    for raw in sorted(merged):
        src = logical_path(raw, source_ns)
        path = _display(src)
        hit = next((g for g in rules.exclude if fnmatch.fnmatchcase(path, g)), None)
        flag = next((view_flags[f] for f in sorted(merged[raw]) if f in view_flags), None)
        if not src:
            excluded.append((raw, "namespace root, not a folder"))
        elif hit is not None:
            excluded.append((raw, f"excluded by pattern '{hit}'"))
        elif flag is not None:
            excluded.append((raw, f"a view of other folders ({flag}), not copied as a folder"))
        elif not any(fnmatch.fnmatchcase(path, g) for g in rules.include):
            excluded.append((raw, "not matched by any include pattern"))
        else:
            entries.append(_Entry(raw, src, frozenset(merged[raw])))

    # Destination index: casefolded logical path -> existing spelling.
    canon: dict[tuple[str, ...], tuple[str, ...]] = {}
    dest_roles: dict[str, tuple[tuple[int, int, str], tuple[str, ...]]] = {}
    for folder in sorted(dest_folders, key=lambda f: f.name):
        d = logical_path(folder.name, dest_ns)
        if not d:
            continue
        canon.setdefault(tuple(c.casefold() for c in d), d)
        ranked = _Entry(folder.name, d, _flags(folder)).role_rank()
        if ranked and not (_flags(folder) & _UNSELECTABLE):
            if ranked[0] not in dest_roles or ranked[1] < dest_roles[ranked[0]][0]:
                dest_roles[ranked[0]] = (ranked[1], d)

    # Role contest: one source folder per role gets the destination's role folder.
    contenders: dict[str, list[tuple[tuple[int, int, str], _Entry]]] = {}
    for e in entries:
        if _is_inbox(e.raw):
            e.role = "inbox"  # the one real INBOX; never contested, never renamed
            continue
        ranked = None if e.flags & _UNSELECTABLE else e.role_rank()
        if ranked:
            contenders.setdefault(ranked[0], []).append((ranked[1], e))
    for role, cands in contenders.items():
        cands.sort(key=lambda c: c[0])
        winner = cands[0][1]
        winner.role = role
        for _, loser in cands[1:]:
            loser.notes.append(f"also looks like the {role} folder, but '{winner.raw}' "
                               f"takes that role; keeps its own name")

    by_src: dict[tuple[str, ...], list[_Entry]] = {}
    for e in entries:
        by_src.setdefault(e.src, []).append(e)
    entries.sort(key=lambda e: (len(e.src), e.raw))  # ancestors before descendants
    for e in entries:
        rule = None if e.role == "inbox" else next(
            ((rx, r) for rx, r in renames if rx.fullmatch(_display(e.src))), None)
        if e.role == "inbox":
            e.own = (INBOX,)
        elif rule is not None:
            m = rule[0].fullmatch(_display(e.src))
            assert m is not None
            e.own = tuple(c for c in m.expand(rule[1].replacement).split("/") if c)
            e.notes.append(f"renamed by rule '{rule[1].pattern}' -> '{_display(e.own)}'")
        elif e.role is not None:
            e.own = dest_roles[e.role][1] if e.role in dest_roles else e.src
            e.notes.append(f"{e.role} folder: mapped to destination '{_display(e.own)}'")
        else:
            for i in range(len(e.src) - 1, 0, -1):
                if e.src[:i] in by_src:
                    e.anchor = max(by_src[e.src[:i]], key=lambda a: (len(a.raw), a.raw))
                    e.rest = sanitise(e.src[i:], e.notes)
                    break
            else:
                e.own = e.src
        if e.own is not None:
            e.own = sanitise(e.own, e.notes)
        base = e.own if e.anchor is None else e.anchor.final + e.rest
        e.final = normalise(base) if base else ()  # provisional, for the depth only
        e.depth = len(e.final)
    # A rule renaming to "" drops that folder; its children then hang one level up.
    live = [e for e in entries if e.final]
    excluded += [(e.raw, "renamed to an empty path") for e in entries if not e.final]

    # Assign final names level by level, so a renamed parent's children follow it.
    collisions: list[str] = []
    taken: dict[tuple[str, ...], _Entry | None] = {(INBOX.casefold(),): None}
    bent: set[str] = set()  # raw names of folders the name rules renamed
    key = lambda p: tuple(c.casefold() for c in p)  # noqa: E731
    for depth in sorted({e.depth for e in live}):
        wave = sorted((e for e in live if e.depth == depth),
                      key=lambda e: (e.role is None, e.raw))
        for e in wave:
            path = normalise(e.own if e.anchor is None else e.anchor.final + e.rest)
            e.final = tuple(canon.get(key(path[:i]), path[:i])[-1] for i in range(1, len(path))
                            ) + path[-1:]
            if rules.name_rules is not None and e.role != "inbox":
                before = e.final
                e.final = _service_safe(rules.name_rules, e.final, canon, e.notes)
                if e.final != before:
                    bent.add(e.raw)
        # a folder that has its natural name keeps it; one renamed for the service yields
        wave.sort(key=lambda e: (e.role is None, e.raw in bent, e.raw))
        natural = {key(e.final) for e in wave}
        for e in wave:
            k = key(e.final)
            if k in taken and not (taken[k] is None and e.role == "inbox"):
                holder = taken[k]
                n, new = 2, e.final
                while key(new) in taken or key(new) in natural:
                    new = e.final[:-1] + (f"{e.final[-1]} ({n})",)
                    n += 1
                other = f"'{holder.raw}'" if holder else "INBOX"
                msg = (f"'{e.raw}' -> '{_display(e.final)}' collides case-insensitively "
                       f"with {other}; renamed to '{_display(new)}'")
                collisions.append(msg)
                e.notes.append(msg)
                e.final = new
            if canon.get(key(e.final), e.final) != e.final:
                e.final = canon[key(e.final)]
                e.notes.append(f"uses existing destination folder '{_display(e.final)}'")
            taken[key(e.final)] = e
            for i in range(1, len(e.final) + 1):
                canon.setdefault(key(e.final[:i]), e.final[:i])

    made: dict[tuple[str, ...], FolderMapping] = {}
    for e in live:
        made[key(e.final)] = FolderMapping(
            e.raw, wire_name(e.final, dest_ns), e.final, e.role,
            not (e.flags & _UNSELECTABLE), tuple(e.notes))
    for e in live:
        for i in range(1, len(e.final)):
            k = key(e.final[:i])
            if k not in made:
                parent = canon[k]
                made[k] = FolderMapping("", wire_name(parent, dest_ns), parent, None, False,
                                        (f"parent not listed on the source; created to hold "
                                         f"'{_display(e.final)}'",))

    ordered: list[FolderMapping] = []
    seen: set[tuple[str, ...]] = set()

    def emit(k: tuple[str, ...]) -> None:
        if k in seen:
            return
        seen.add(k)
        if len(k) > 1:
            emit(k[:-1])  # parents before children
        ordered.append(made[k])

    for k in sorted(made, key=lambda k: (made[k].source == "", made[k].source, k)):
        emit(k)
    return MappingResult(tuple(ordered), tuple(sorted(excluded)), tuple(collisions))
