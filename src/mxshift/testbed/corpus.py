"""A deterministic, streaming generator of realistic mail: what a test corpus holds.

Used by the test suite, the README demo and the benchmarks. The same :class:`CorpusSpec`
always yields the same bytes: everything is drawn from :class:`random.Random` instances
seeded from strings (``random`` hashes ``str`` seeds with SHA-512, so this does not depend
on ``PYTHONHASHSEED``), never from the clock, ``uuid`` or the global RNG. The ``email``
package's own randomness (MIME boundaries) is replaced by deterministic boundaries.

Streaming: message *n* is a pure function of ``(spec, n)``; :func:`generate` builds one
message at a time. The only per-corpus state is a few small sets of indices (which
messages are duplicates, lack a Message-ID, or belong to the large-size tail), a few
percent of ``spec.messages`` integers. A duplicate is produced by building its source
message again, not by remembering it.

Shape of a corpus (``size_profile="realistic"``):

* most messages 2-20 KB (log-uniform: median ~6 KB) as text/plain, multipart/alternative
  (text + html) or multipart/mixed with a small attachment;
* ~10 % multipart/mixed with base64 attachments of 20-500 KB;
* ~1 % a tail from 512 KiB up to ``max_size`` (the first tail message is at least 1 MiB when
  ``max_size`` allows);
* non-ASCII subjects, display names and attachment file names (RFC 2047 / RFC 2231),
  bodies in 7bit, quoted-printable, 8bit and base64;
* replies with In-Reply-To/References pointing at earlier messages of the corpus;
* ``Message-ID: <n.seed@corpus.mxshift.test>`` except on ``no_message_id_fraction``;
* ``Date:`` is the INTERNALDATE minus a 1-180 s "delivery delay", same UTC offset;
* flags: ~70 % \\Seen, ~5 % \\Flagged, ~3 % \\Answered, some $Forwarded, $Label1,
  Important, $Junk (in Junk); \\Draft only in Drafts; never \\Deleted.

``size_profile="small"`` keeps every message 1-4 KB (no big attachments); it is meant for
fast tests and message-count benchmarks.

This module decides *what* the corpus holds: the spec, the folder tree and, per message,
its folder, target size, dates, subject, Message-ID and flags. Turning one planned message
into bytes is :mod:`mxshift.testbed.corpus_build`'s job; putting a corpus on an IMAP server
is :mod:`mxshift.testbed.corpus_load`'s.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from mxshift.testbed.corpus_build import build_message

__all__ = [
    "CorpusMessage",
    "CorpusSpec",
    "folder_tree",
    "generate",
    "total_size",
]

KiB = 1024
MiB = 1024 * 1024

DOMAIN = "corpus.mxshift.test"


@dataclass(frozen=True)
class CorpusMessage:
    folder: tuple[str, ...]
    """Logical path, unicode components, e.g. ``("INBOX",)``, ``("Projects", "2024")``."""
    raw: bytes
    """The full RFC 5322 message, CRLF line ends."""
    flags: tuple[str, ...]
    """IMAP flags, e.g. ``("\\\\Seen", "$Label1")``."""
    internaldate: datetime
    """Timezone-aware, whole seconds, 2005-2025."""


@dataclass(frozen=True)
class CorpusSpec:
    seed: int = 1
    messages: int = 200
    folders: int = 17
    size_profile: str = "realistic"  # or "small"
    max_size: int = 10 * MiB
    duplicate_fraction: float = 0.01
    no_message_id_fraction: float = 0.03

    def __post_init__(self) -> None:
        if self.size_profile not in ("realistic", "small"):
            raise ValueError(f"size_profile must be 'realistic' or 'small', not {self.size_profile!r}")
        if self.messages < 0:
            raise ValueError("messages must be >= 0")
        if self.folders < 1:
            raise ValueError("folders must be >= 1 (INBOX)")
        if self.max_size < 2 * KiB:
            raise ValueError("max_size must be at least 2 KiB")
        for name in ("duplicate_fraction", "no_message_id_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")


# --------------------------------------------------------------------------- folders

# Parents always come before their children, so any prefix of this list is a closed tree.
_BASE_FOLDERS: tuple[tuple[str, ...], ...] = (
    ("INBOX",),
    ("Sent",),
    ("Drafts",),
    ("Trash",),
    ("Junk",),
    ("Archive",),
    ("Projects",),
    ("Projects", "2024"),
    ("Projects", "2024", "Q1"),
    ("Été",),
    ("Проекты",),
    ("日本語",),
    ("R&D",),
    ("Archive", "2023"),
    ("Clients",),
    ("Clients", "Acme & Co"),
    ("Projects", "2024", "Q1", "Déploiement"),
)

# Relative weight of a folder when a message picks where it lives.
_FOLDER_WEIGHTS = {
    ("INBOX",): 40,
    ("Sent",): 12,
    ("Drafts",): 1.5,
    ("Trash",): 3,
    ("Junk",): 3,
    ("Archive",): 8,
}
_DEFAULT_WEIGHT = 3.0


def folder_tree(spec: CorpusSpec) -> list[tuple[str, ...]]:
    """The corpus's folders as logical paths, parents before children.

    The first 17 are fixed (INBOX, the special-use folders, 4 levels under Projects,
    "Été", "Проекты", "日本語", "R&D", "Clients/Acme & Co"...); more are added as
    ``("Lists", "list-NNN")``; fewer takes a prefix of the fixed list.
    """
    tree = list(_BASE_FOLDERS[: spec.folders])
    extra = spec.folders - len(tree)
    if extra > 0:
        tree.append(("Lists",))
        tree.extend(("Lists", f"list-{i:03d}") for i in range(1, extra))
    return tree


# ---------------------------------------------------------------- planning material

_SUBJECTS_ASCII = (
    "Quarterly report", "Meeting notes", "Budget review {n}", "Re-scheduling the workshop",
    "Server migration plan", "Invoice {n}", "Contract draft v{v}", "Team lunch on Friday",
    "Release {v}.{n} checklist", "Travel arrangements", "Incident report #{n}",
    "Question about the mailbox quota", "Weekly status", "Design review feedback",
    "Your ticket #{n} has been updated", "Conference agenda", "Backup policy update",
)

_SUBJECTS_UNICODE = (
    "Réunion de lundi — ordre du jour", "Résumé des résultats {n}", "Grüße aus Köln",
    "Отчёт за квартал {n}", "Совещание в пятницу", "会議のお知らせ", "見積書 {n} の件",
    "Café ☕ à 10 h ?", "Übersicht Projekt {v}", "Presupuesto año {n}", "Ελέγξτε το έγγραφο",
    "Déploiement en production 🚀",
)

_TZ_OFFSETS = (0, 0, 60, 60, 120, 120, -300, -300, -480, 330, 540, 600, -180)  # minutes

_T0 = datetime(2005, 1, 1, tzinfo=timezone.utc).timestamp()
_T1 = datetime(2025, 12, 31, 12, 0, tzinfo=timezone.utc).timestamp()


# ------------------------------------------------------------------- planning


def _rng(spec: CorpusSpec, *parts: object) -> random.Random:
    return random.Random("mxshift-corpus/" + "/".join(str(p) for p in (spec.seed, *parts)))


def _log_uniform(rng: random.Random, lo: float, hi: float) -> int:
    if hi <= lo:
        return int(lo)
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


class Plan:
    """Corpus-wide decisions: small index sets only, never message data.

    Shared with :mod:`mxshift.testbed.corpus_build`, which asks it everything it needs
    about message *i* (and about the earlier messages a reply points at)."""

    def __init__(self, spec: CorpusSpec) -> None:
        self.spec = spec
        self.folders = folder_tree(spec)
        self.weights = [_FOLDER_WEIGHTS.get(f, _DEFAULT_WEIGHT) for f in self.folders]
        n = spec.messages
        rng = _rng(spec, "plan")

        ndup = round(n * spec.duplicate_fraction)
        if spec.duplicate_fraction > 0 and n >= 2:
            ndup = max(1, ndup)
        ndup = min(ndup, max(0, n - 1))
        dups = sorted(rng.sample(range(1, n), ndup)) if ndup else []
        self.dup_source: dict[int, int] = {}
        for d in dups:
            k = rng.randrange(d)
            while k in self.dup_source:  # chains resolve to an original
                k = self.dup_source[k]
            self.dup_source[d] = k

        originals = [i for i in range(n) if i not in self.dup_source] if n < 100_000 else None

        def sample_originals(count: int) -> set[int]:
            if count <= 0:
                return set()
            if originals is not None:
                return set(rng.sample(originals, min(count, len(originals))))
            chosen: set[int] = set()
            while len(chosen) < count:
                i = rng.randrange(n)
                if i not in self.dup_source:
                    chosen.add(i)
            return chosen

        self.no_mid = sample_originals(round(n * spec.no_message_id_fraction))

        self.tail: set[int] = set()
        self.first_tail = -1
        if spec.size_profile == "realistic" and spec.max_size > 512 * KiB:
            ntail = round(n * 0.01)
            if n >= 100:
                ntail = max(1, ntail)
            self.tail = sample_originals(ntail)
            if self.tail:
                self.first_tail = min(self.tail)

    def rng(self, *parts: object) -> random.Random:
        """The RNG for one decision, e.g. ``rng("msg", i)``; same seeding as everywhere."""
        return _rng(self.spec, *parts)

    # Cheap per-message decisions, each from its own RNG so they can be recomputed
    # (for duplicates, replies and total_size) without building the message.

    def target_size(self, i: int) -> tuple[int, str]:
        """(target bytes, kind) where kind is plain / alternative / mixed."""
        spec = self.spec
        rng = _rng(spec, "size", i)
        r = rng.random()
        if spec.size_profile == "small":
            size = _log_uniform(rng, 1100, 3900)
            kind = "plain" if r < 0.6 else ("alternative" if r < 0.9 else "mixed")
            return min(size, spec.max_size), kind
        if i in self.tail:
            lo = 512 * KiB
            if i == self.first_tail and spec.max_size > MiB:
                lo = MiB
            return _log_uniform(rng, lo, spec.max_size), "mixed"
        if r < 0.10:
            return min(_log_uniform(rng, 20 * KiB, 500 * KiB), spec.max_size), "mixed"
        size = min(_log_uniform(rng, 2 * KiB, 20 * KiB), spec.max_size)
        kind = "plain" if r < 0.55 else ("alternative" if r < 0.90 else "mixed")
        return size, kind

    def folder(self, i: int) -> tuple[str, ...]:
        if i in self.dup_source:
            return self.folder(self.dup_source[i])
        rng = _rng(self.spec, "folder", i)
        return rng.choices(self.folders, weights=self.weights)[0]

    def internaldate(self, i: int) -> datetime:
        rng = _rng(self.spec, "date", i)
        n = max(1, self.spec.messages)
        # Chronological on the whole (message i lives in the i-th slice of 2005-2025).
        ts = _T0 + (_T1 - _T0) * (i + rng.random()) / n
        tz = timezone(timedelta(minutes=rng.choice(_TZ_OFFSETS)))
        return datetime.fromtimestamp(int(ts), tz)

    def subject(self, i: int) -> str:
        rng = _rng(self.spec, "subject", i)
        pool = _SUBJECTS_UNICODE if rng.random() < 0.25 else _SUBJECTS_ASCII
        return rng.choice(pool).format(n=rng.randrange(1, 1000), v=rng.randrange(1, 10))

    def message_id(self, i: int) -> str | None:
        if i in self.dup_source:
            return self.message_id(self.dup_source[i])
        if i in self.no_mid:
            return None
        return f"<{i}.{self.spec.seed}@{DOMAIN}>"


# ----------------------------------------------------------------- flags


def _flags(rng: random.Random, folder: tuple[str, ...]) -> tuple[str, ...]:
    top = folder[0] if len(folder) == 1 else None
    flags: list[str] = []
    if top == "Drafts":
        if rng.random() < 0.5:
            flags.append("\\Seen")
        flags.append("\\Draft")
        return tuple(flags)
    if top == "Sent":
        flags.append("\\Seen")
        if rng.random() < 0.03:
            flags.append("\\Flagged")
        return tuple(flags)
    seen_p = {"Trash": 0.9, "Junk": 0.4}.get(top or "", 0.72)
    if rng.random() < seen_p:
        flags.append("\\Seen")
    if rng.random() < 0.05:
        flags.append("\\Flagged")
    if rng.random() < 0.03:
        flags.append("\\Answered")
    if rng.random() < 0.02:
        flags.append("$Forwarded")
    if rng.random() < 0.03:
        flags.append("$Label1")
    if rng.random() < 0.02:
        flags.append("Important")
    if top == "Junk" and rng.random() < 0.5:
        flags.append("$Junk")
    return tuple(flags)


# ------------------------------------------------------------------ public API


def generate(spec: CorpusSpec) -> Iterator[CorpusMessage]:
    """Yield the corpus's messages one at a time (never the whole corpus in memory)."""
    plan = Plan(spec)
    for i in range(spec.messages):
        source = plan.dup_source.get(i)
        if source is None:
            raw = build_message(plan, i)
            internaldate = plan.internaldate(i)
        else:
            raw = build_message(plan, source)  # byte-identical re-delivery
            internaldate = plan.internaldate(source) + timedelta(
                seconds=_rng(spec, "dupdate", i).randrange(1, 600))
        folder = plan.folder(i)
        flags = _flags(_rng(spec, "flags", i), folder)
        yield CorpusMessage(folder=folder, raw=raw, flags=flags, internaldate=internaldate)


def total_size(spec: CorpusSpec, *, exact: bool = False) -> int:
    """Total bytes of the corpus.

    By default a cheap estimate from the planned target sizes (no message is built;
    typically within a few percent). ``exact=True`` generates the corpus and sums it.
    """
    if exact:
        return sum(len(m.raw) for m in generate(spec))
    plan = Plan(spec)
    total = 0
    for i in range(spec.messages):
        total += plan.target_size(plan.dup_source.get(i, i))[0]
    return total
