"""The exact comparison the tests use to prove two mailboxes "identical".

A snapshot maps every selectable folder of the account's personal namespace, keyed by its
*logical* path (namespace prefix stripped, split on the separator, modified UTF-7 decoded,
any case of INBOX spelled ``INBOX``), to the sorted list of its messages' states:
SHA-256 and size of the full message bytes, flags (without ``\\Recent``) and INTERNALDATE.

Two accounts on different servers (one with prefix "" and "/", one Maildir++ with
"INBOX." and ".") have equal snapshots when they hold the same folders with the same
messages, byte for byte, with the same flags and internal dates. UIDs, sequence numbers,
folder order and message order are deliberately not part of it.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from mxshift.testbed.corpus import CorpusMessage
from mxshift.testbed.corpus_load import personal_namespace

if TYPE_CHECKING:  # pragma: no cover
    from imapclient import IMAPClient

__all__ = ["MessageState", "Snapshot", "snapshot", "expected", "diff", "logical_path",
           "normalise_flags"]


@dataclass(frozen=True)
class MessageState:
    sha256: str
    size: int
    flags: frozenset[str]
    internaldate: datetime  # timezone-aware; equality compares the instant

    def sort_key(self) -> tuple:
        return (self.sha256, self.internaldate, tuple(sorted(self.flags)))

    def describe(self) -> str:
        return f"sha256={self.sha256[:12]} size={self.size}"


Snapshot = dict[tuple[str, ...], list[MessageState]]

_SYSTEM_FLAGS = {f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted",
                                        "\\Draft", "\\Recent")}

#: Upper bound of message bytes fetched in one BODY.PEEK[] round trip (a bigger message
#: is fetched alone).
_FETCH_BYTES = 16 * 1024 * 1024
#: UIDs per FLAGS/INTERNALDATE/RFC822.SIZE fetch.
_META_BATCH = 1000


def normalise_flags(flags: Iterable[str | bytes]) -> frozenset[str]:
    """Flags as ``str``, system flags in canonical case, without ``\\Recent``."""
    out = set()
    for flag in flags:
        if isinstance(flag, bytes):
            flag = flag.decode("utf-8", "replace")
        flag = _SYSTEM_FLAGS.get(flag.lower(), flag)
        if flag != "\\Recent":
            out.add(flag)
    return frozenset(out)


def logical_path(name: str, prefix: str, separator: str | None) -> tuple[str, ...]:
    """A server folder name (unicode) as a logical path."""
    if name.upper() == "INBOX":
        return ("INBOX",)
    if prefix and name.startswith(prefix):
        name = name[len(prefix):]
    parts = tuple(name.split(separator)) if separator else (name,)
    if parts and parts[0].upper() == "INBOX":
        parts = ("INBOX",) + parts[1:]
    return parts


def _sorted(states: Iterable[MessageState]) -> list[MessageState]:
    return sorted(states, key=MessageState.sort_key)


def expected(messages: Iterable[CorpusMessage], *,
             folders: Iterable[tuple[str, ...]] = ()) -> Snapshot:
    """The snapshot an account should have after ``corpus_load.load(client, messages, folders=...)``.

    Includes every folder in *folders*, every message's folder, and all their ancestors
    (``load`` creates ancestors), empty ones with ``[]``.
    """
    result: dict[tuple[str, ...], list[MessageState]] = defaultdict(list)

    def touch(folder: tuple[str, ...]) -> None:
        for depth in range(1, len(folder) + 1):
            result[tuple(folder[:depth])]  # noqa: B018 - creates the entry

    for folder in folders:
        touch(tuple(folder))
    for m in messages:
        touch(m.folder)
        result[m.folder].append(MessageState(
            sha256=hashlib.sha256(m.raw).hexdigest(),
            size=len(m.raw),
            flags=normalise_flags(m.flags),
            internaldate=m.internaldate,
        ))
    return {folder: _sorted(states) for folder, states in result.items()}


def snapshot(client: "IMAPClient", *, batch: int = 100) -> Snapshot:
    """Snapshot every selectable folder of the account's personal namespace.

    Folders are EXAMINEd (read-only) and bodies read with BODY.PEEK[], so nothing is
    marked \\Seen. Bodies are fetched at most *batch* messages / 16 MiB at a time and
    hashed as they arrive, so memory is bounded. Leaves no folder selected.
    """
    if batch < 1:
        raise ValueError("batch must be >= 1")
    prefix, separator = personal_namespace(client)
    foreign: list[str] = []
    if client.has_capability("NAMESPACE"):
        ns = client.namespace()
        for group in (ns.other, ns.shared):
            for other_prefix, _sep in group or ():
                if isinstance(other_prefix, bytes):
                    other_prefix = other_prefix.decode("utf-8")
                if other_prefix and other_prefix != prefix:
                    foreign.append(other_prefix)

    saved_normalise = client.normalise_times
    client.normalise_times = False
    try:
        result: Snapshot = {}
        for flags, delimiter, name in client.list_folders():
            lowered = {(f.decode() if isinstance(f, bytes) else f).lower() for f in flags}
            if "\\noselect" in lowered or "\\nonexistent" in lowered:
                continue
            if isinstance(name, bytes):
                name = name.decode("utf-8")
            if name.upper() != "INBOX":
                # Skip other users' / shared namespaces and anything outside ours.
                if any(name.startswith(p) and len(p) > len(prefix) for p in foreign):
                    continue
                if prefix and not name.startswith(prefix):
                    continue
            sep = delimiter.decode() if isinstance(delimiter, bytes) else delimiter
            logical = logical_path(name, prefix, sep or separator)
            if logical in result:
                raise ValueError(f"two server folders map to logical path {logical!r}")
            result[logical] = _folder_states(client, name, batch)
        if result:
            client.close_folder()
        return result
    finally:
        client.normalise_times = saved_normalise


def _folder_states(client: "IMAPClient", name: str, batch: int) -> list[MessageState]:
    info = client.select_folder(name, readonly=True)
    if not info.get(b"EXISTS"):
        return []
    uids = sorted(client.search(["ALL"]))
    meta: dict[int, dict] = {}
    for start in range(0, len(uids), _META_BATCH):  # keeps command lines short
        meta.update(client.fetch(uids[start:start + _META_BATCH],
                                 ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]))
    uids = [uid for uid in uids if uid in meta]
    states: list[MessageState] = []
    start = 0
    while start < len(uids):
        chunk: list[int] = []
        chunk_bytes = 0
        while start < len(uids) and len(chunk) < batch:
            size = meta[uids[start]].get(b"RFC822.SIZE", 0)
            if chunk and chunk_bytes + size > _FETCH_BYTES:
                break
            chunk.append(uids[start])
            chunk_bytes += size
            start += 1
        bodies = client.fetch(chunk, ["BODY.PEEK[]"])
        for uid in chunk:
            body = bodies.get(uid, {}).get(b"BODY[]")
            if body is None:  # expunged meanwhile
                continue
            states.append(MessageState(
                sha256=hashlib.sha256(body).hexdigest(),
                size=len(body),
                flags=normalise_flags(meta[uid][b"FLAGS"]),
                internaldate=meta[uid][b"INTERNALDATE"],
            ))
        del bodies
    return _sorted(states)


def _folder_name(folder: Sequence[str]) -> str:
    return "/".join(folder)


def _fmt_flags(flags: frozenset[str]) -> str:
    return "(" + " ".join(sorted(flags)) + ")"


def diff(a: Mapping[tuple[str, ...], Sequence[MessageState]],
         b: Mapping[tuple[str, ...], Sequence[MessageState]]) -> list[str]:
    """Human-readable differences between snapshots *a* and *b*; ``[]`` means identical.

    Per folder: ``missing folder`` (in a only), ``extra folder`` (in b only), ``count
    differs``, ``missing message`` / ``extra message`` (by SHA-256 prefix and size), and,
    for a message present on both sides with the same bytes, ``flags differ`` or
    ``internaldate differs``.
    """
    out: list[str] = []
    for folder in sorted(set(a) | set(b)):
        fname = _folder_name(folder)
        if folder not in b:
            out.append(f"missing folder {fname} ({len(a[folder])} messages)")
            continue
        if folder not in a:
            out.append(f"extra folder {fname} ({len(b[folder])} messages)")
            continue
        left, right = a[folder], b[folder]
        if len(left) != len(right):
            out.append(f"{fname}: count differs: {len(left)} != {len(right)}")
        ca, cb = Counter(left), Counter(right)
        common = ca & cb
        rest_a = _sorted((ca - common).elements())
        rest_b = _sorted((cb - common).elements())
        by_sha_b: dict[str, list[MessageState]] = defaultdict(list)
        for s in rest_b:
            by_sha_b[s.sha256].append(s)
        for s in rest_a:
            candidates = by_sha_b.get(s.sha256)
            if not candidates:
                out.append(f"{fname}: missing message {s.describe()}")
                continue
            # Prefer the counterpart differing in one attribute only.
            match = next((c for c in candidates if c.internaldate == s.internaldate), None) \
                or next((c for c in candidates if c.flags == s.flags), None) \
                or candidates[0]
            candidates.remove(match)
            if match.flags != s.flags:
                only_a = " ".join(sorted(s.flags - match.flags)) or "-"
                only_b = " ".join(sorted(match.flags - s.flags)) or "-"
                out.append(f"{fname}: message {s.describe()}: flags differ: "
                           f"{_fmt_flags(s.flags)} != {_fmt_flags(match.flags)} "
                           f"(only in a: {only_a}; only in b: {only_b})")
            if match.internaldate != s.internaldate:
                out.append(f"{fname}: message {s.describe()}: internaldate differs: "
                           f"{s.internaldate.isoformat()} != {match.internaldate.isoformat()}")
        for sha in sorted(by_sha_b):
            for s in by_sha_b[sha]:
                out.append(f"{fname}: extra message {s.describe()}")
    return out
