"""A deterministic, streaming generator of realistic mail, and a loader for IMAP servers.

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
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.generator import BytesGenerator
from email import policy as _policy
from email.utils import format_datetime
from io import BytesIO
from typing import TYPE_CHECKING, Iterable, Iterator

if TYPE_CHECKING:  # pragma: no cover
    from imapclient import IMAPClient

__all__ = [
    "CorpusMessage",
    "CorpusSpec",
    "folder_tree",
    "generate",
    "total_size",
    "load",
    "server_folder_name",
    "personal_namespace",
]

KiB = 1024
MiB = 1024 * 1024

#: SMTP policy: CRLF line ends, headers folded at 78, RFC 2047 for non-ASCII headers,
#: no "From " mangling. Used both to build and to serialise messages.
POLICY = _policy.SMTP

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


# ----------------------------------------------------------------- text material

_WORDS = (
    "the of and to in is that for it as with was on be by this are at from or have an "
    "they which one you were all we can her has there been if more when will would who "
    "so no meeting project budget report quarter deadline review draft proposal customer "
    "invoice contract schedule release server migration mailbox backup update team plan "
    "agenda notes follow-up feedback design launch estimate approval shipment delivery "
    "account password policy training office travel hotel flight conference workshop "
    "analysis results figures summary attached please thanks regards tomorrow monday "
    "friday next week month deploy staging production incident ticket support question"
).split()

_UNICODE_SENTENCES = (
    "Voilà le compte rendu de la réunion d'hier, à relire avant vendredi.",
    "Die Präsentation für nächste Woche ist fertig, schöne Grüße aus München.",
    "Пожалуйста, посмотрите отчёт за квартал и ответьте до понедельника.",
    "会議の資料を添付しますので、ご確認ください。",
    "¿Podemos mover la reunión al miércoles? Gracias de antemano.",
    "Ολοκληρώθηκε η μετάβαση του διακομιστή χωρίς προβλήματα.",
    "Bitte beachten: die Straße ist ab Montag gesperrt.",
    "Le café est prêt ☕ — on commence à 10 h.",
)

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

_PEOPLE = (
    ("Alice Smith", "alice.smith", "example.com"),
    ("Bob Jones", "bob", "example.net"),
    ("Carol White", "carol.white", "example.org"),
    ("Dave Brown", "dave", "mail.example.com"),
    ("Erin Clark", "erin.clark", "example.com"),
    ("Frank Miller", "frank", "example.net"),
    ("Zoë Müller", "zoe.mueller", "example.de"),
    ("José García", "jose.garcia", "example.es"),
    ("Иван Петров", "ivan.petrov", "example.ru"),
    ("田中 太郎", "tanaka", "example.jp"),
    ("Élodie Lefèvre", "elodie", "example.fr"),
    ("Søren Ærø", "soren", "example.dk"),
    ("", "noreply", "notifications.example.com"),
    ("Support Team", "support", "helpdesk.example.org"),
)

_OWNER = ("Alex Martin", "owner", "example.org")

_ATTACHMENTS = (
    ("application", "pdf", "report{n}.pdf"),
    ("application", "pdf", "Résumé {n}.pdf"),
    ("image", "jpeg", "IMG_{n}.jpg"),
    ("image", "png", "screenshot-{n}.png"),
    ("application", "zip", "archive-{n}.zip"),
    ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet", "budget_{n}.xlsx"),
    ("application", "octet-stream", "отчёт_{n}.bin"),
    ("application", "msword", "contract v{n}.doc"),
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


class _Plan:
    """Corpus-wide decisions: small index sets only, never message data."""

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


# --------------------------------------------------------------- message bodies


def _sentence(rng: random.Random, unicode_p: float) -> str:
    if rng.random() < unicode_p:
        return rng.choice(_UNICODE_SENTENCES)
    words = [rng.choice(_WORDS) for _ in range(rng.randrange(6, 18))]
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice(".......?!")


def _paragraphs(rng: random.Random, chars: int, unicode_p: float) -> list[str]:
    """Paragraphs totalling about *chars* characters; a prefix of any longer budget."""
    paras: list[str] = []
    total = 0
    while total < chars:
        para = " ".join(_sentence(rng, unicode_p) for _ in range(rng.randrange(2, 7)))
        left = chars - total
        if len(para) > left:
            cut = para.rfind(" ", 0, left)
            para = para[: cut if cut > 0 else left].rstrip()
            if para:
                paras.append(para)
            break
        paras.append(para)
        total += len(para) + 2
    return paras


def _wrap(text: str, width: int = 72) -> list[str]:
    """Greedy word wrap, like textwrap.wrap for our text but without its regex cost."""
    lines: list[str] = []
    current: list[str] = []
    length = -1
    for word in text.split():
        if current and length + 1 + len(word) > width:
            lines.append(" ".join(current))
            current, length = [], -1
        current.append(word)
        length += 1 + len(word)
    if current:
        lines.append(" ".join(current))
    return lines


def _text_body(paras: list[str], greeting: str, signature: str, quote: list[str]) -> str:
    lines = [greeting, ""]
    for para in paras:
        lines.extend(_wrap(para) or [""])
        lines.append("")
    lines.extend(["-- ", signature])
    if quote:
        lines.append("")
        lines.extend("> " + q for q in quote)
    return "\n".join(lines) + "\n"


def _html_body(paras: list[str], greeting: str, signature: str, subject: str) -> str:
    def esc(s: str) -> str:
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "<head><meta charset=\"utf-8\"><title>" + esc(subject) + "</title></head>",
        "<body style=\"font-family: Arial, sans-serif; font-size: 14px;\">",
        "<p>" + esc(greeting) + "</p>",
    ]
    for para in paras:
        wrapped = _wrap(esc(para)) or [""]
        lines.append("<p>" + wrapped[0])
        lines.extend(wrapped[1:])
        lines[-1] += "</p>"
    lines.append("<p>--<br>" + esc(signature) + "</p>")
    lines.extend(["</body>", "</html>"])
    return "\n".join(lines) + "\n"


def _addr(person: tuple[str, str, str]) -> Address:
    display, user, domain = person
    return Address(display_name=display, username=user, domain=domain)


def _pick_cte(rng: random.Random) -> str:
    """Transfer encoding for a non-ASCII text part (ASCII text is always 7bit)."""
    r = rng.random()
    if r < 0.6:
        return "quoted-printable"
    if r < 0.85:
        return "8bit"
    return "base64"


def _serialise(msg: EmailMessage, boundary_tag: str) -> bytes:
    # email picks MIME boundaries from the global RNG: set them ourselves.
    for k, part in enumerate(p for p in msg.walk() if p.is_multipart()):
        part.set_boundary(f"=_mxshift_{boundary_tag}_{k}")
    for part in msg.walk():
        if part is not msg:  # EmailMessage.add_* puts MIME-Version on sub-parts too
            del part["MIME-Version"]
    buf = BytesIO()
    BytesGenerator(buf, mangle_from_=False, policy=POLICY).flatten(msg)
    return buf.getvalue()


def _build(plan: _Plan, i: int) -> bytes:
    """The raw bytes of original (non-duplicate) message *i*."""
    spec = plan.spec
    rng = _rng(spec, "msg", i)
    folder = plan.folder(i)
    target, kind = plan.target_size(i)
    internaldate = plan.internaldate(i)
    subject = plan.subject(i)
    top = folder[0] if len(folder) == 1 else None

    outgoing = top in ("Sent", "Drafts")
    others = list(_PEOPLE)
    sender = _OWNER if outgoing else rng.choice(others)
    if outgoing:
        recipients = rng.sample([p for p in others if p[0]], rng.randrange(1, 4))
    else:
        recipients = [_OWNER] + rng.sample([p for p in others if p != sender and p[0]],
                                           rng.randrange(0, 3))
    cc = rng.sample([p for p in others if p not in recipients and p != sender],
                    rng.randrange(0, 3)) if rng.random() < 0.3 else []

    # Reply to an earlier message that has a Message-ID.
    reply_to: int | None = None
    if i > 0 and rng.random() < 0.2:
        k = rng.randrange(max(0, i - 200), i)
        if plan.message_id(k) is not None:
            reply_to = k
            subject = "Re: " + plan.subject(k)

    unicode_p = 0.25 if rng.random() < 0.3 else 0.0
    sent_at = internaldate - timedelta(seconds=rng.randrange(1, 181))

    headers: list[tuple[str, object]] = []
    if not outgoing:
        hop = rng.randrange(1, 250)
        headers.append(("Return-Path", f"<{sender[1]}@{sender[2]}>"))
        headers.append(("Received", (
            f"from mx{hop}.{sender[2]} (mx{hop}.{sender[2]} [192.0.2.{hop}]) "
            f"by mx.example.org with ESMTPS id {rng.getrandbits(48):012x} "
            f"for <owner@example.org>; {format_datetime(internaldate)}"
        )))
    headers.append(("From", _addr(sender)))
    headers.append(("To", [_addr(p) for p in recipients]))
    if cc:
        headers.append(("Cc", [_addr(p) for p in cc]))
    headers.append(("Subject", subject))
    headers.append(("Date", format_datetime(sent_at)))
    mid = plan.message_id(i)
    if mid is not None:
        headers.append(("Message-ID", mid))
    if reply_to is not None:
        parent = plan.message_id(reply_to)
        refs = [parent]
        if reply_to > 0 and rng.random() < 0.5:
            grand = plan.message_id(rng.randrange(reply_to))
            if grand is not None:
                refs.insert(0, grand)
        headers.append(("In-Reply-To", parent))
        headers.append(("References", " ".join(refs)))
    if rng.random() < 0.4:
        headers.append(("X-Mailer", rng.choice(
            ("mxshift-corpus 1.0", "Thunderbird 115.3.1", "Apple Mail (2.3731)",
             "Microsoft Outlook 16.0", "Roundcube Webmail/1.6.5"))))
    if folder[0] == "Lists":
        headers.append(("List-Id", f"<{folder[-1]}.lists.example.org>"))

    greeting = f"Hello {recipients[0][0].split(' ')[0] or 'there'},"
    signature = sender[0] or sender[1]
    quote: list[str] = []
    if reply_to is not None:
        quote = [f"On {format_datetime(plan.internaldate(reply_to))}, someone wrote:"] + \
            _wrap(_sentence(rng, 0.0), 70)

    with_html = kind == "alternative" or (kind == "mixed" and rng.random() < 0.5)
    text_cte = _pick_cte(rng)
    html_cte = _pick_cte(rng)
    boundary_tag = f"{spec.seed}_{i}"

    # The header block is folded once; bodies are serialised separately (they are what
    # gets resized) and appended: "headers CRLF" + "MIME headers CRLF CRLF body".
    head = EmailMessage(policy=POLICY)
    for name, value in headers:
        head[name] = value
    head_bytes = _serialise(head, boundary_tag)[:-2]  # drop the empty line ending it

    def assemble(body_chars: int) -> EmailMessage:
        msg = EmailMessage(policy=POLICY)
        # The body text is a deterministic stream cut at body_chars, so a longer budget
        # only extends it: size grows linearly with body_chars.
        paras = _paragraphs(_rng(spec, "text", i), body_chars, unicode_p)
        text = _text_body(paras, greeting, signature, quote)
        msg.set_content(text, cte=None if text.isascii() else text_cte)
        if with_html:
            html = _html_body(paras, greeting, signature, subject)
            msg.add_alternative(html, subtype="html", cte=None if html.isascii() else html_cte)
        return msg

    target_body = target - len(head_bytes)
    if kind != "mixed":
        # Fit the body to the target: measure the fixed part and the per-char cost.
        base = len(_serialise(assemble(0), boundary_tag))
        probe = max(200, target_body - base)
        if with_html:
            probe = max(150, probe // 2)
        body = _serialise(assemble(probe), boundary_tag)
        if abs(len(body) - target_body) > 0.05 * target:
            per_char = max(0.5, (len(body) - base) / probe)
            body_chars = max(40, int((target_body - base) / per_char))
            body = _serialise(assemble(body_chars), boundary_tag)
        return head_bytes + body

    # multipart/mixed: a short body, then base64 attachments fill the rest of the target.
    body_chars = rng.randrange(200, 1500)
    if target < 8 * KiB:
        body_chars = min(body_chars, max(40, target // 8))
    msg = assemble(body_chars)
    fixed = len(_serialise(msg, boundary_tag))
    attach_rng = _rng(spec, "attach", i)
    nattach = 1 if target < 100 * KiB or attach_rng.random() < 0.7 else attach_rng.randrange(2, 4)
    room = max(nattach * 64, target_body - fixed)
    for a in range(nattach):
        maintype, subtype, fname = attach_rng.choice(_ATTACHMENTS)
        filename = fname.format(n=attach_rng.randrange(1, 100) + a)
        # Part headers ~200 bytes; base64 packs 57 raw bytes in a 78-byte line.
        raw_len = max(32, int((room / nattach - 200 - 2 * len(filename)) * 57 / 78))
        msg.add_attachment(attach_rng.randbytes(raw_len), maintype=maintype, subtype=subtype,
                           filename=filename)
    return head_bytes + _serialise(msg, boundary_tag)


# ------------------------------------------------------------------ public API


def generate(spec: CorpusSpec) -> Iterator[CorpusMessage]:
    """Yield the corpus's messages one at a time (never the whole corpus in memory)."""
    plan = _Plan(spec)
    for i in range(spec.messages):
        source = plan.dup_source.get(i)
        if source is None:
            raw = _build(plan, i)
            internaldate = plan.internaldate(i)
        else:
            raw = _build(plan, source)  # byte-identical re-delivery
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
    plan = _Plan(spec)
    total = 0
    for i in range(spec.messages):
        total += plan.target_size(plan.dup_source.get(i, i))[0]
    return total


# ------------------------------------------------------------------ IMAP loading


def personal_namespace(client: "IMAPClient") -> tuple[str, str | None]:
    """(prefix, separator) of the account's personal namespace.

    From NAMESPACE when advertised, else ``("", <delimiter of LIST "" "">)``. Names are
    unicode (as imapclient returns them with ``folder_encode`` on).
    """
    if client.has_capability("NAMESPACE"):
        ns = client.namespace()
        if ns.personal:
            prefix, sep = ns.personal[0]
            return _to_str(prefix), (_to_str(sep) if sep is not None else None)
    listing = client.list_folders("", "")
    sep = listing[0][1] if listing else None
    return "", (_to_str(sep) if sep is not None else None)


def _to_str(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def server_folder_name(client: "IMAPClient", logical: tuple[str, ...], *,
                       _namespace: tuple[str, str | None] | None = None) -> str:
    """The server's name for a logical folder path.

    ``("INBOX",)`` is always ``INBOX``; anything else is the personal namespace prefix
    followed by the components joined with the server's separator, e.g. ``("Sent",)`` is
    ``INBOX.Sent`` on a Maildir++-style server (prefix "INBOX.", separator ".") and
    ``Projects/2024`` on a server with prefix "" and separator "/". The result is unicode
    for imapclient to encode to modified UTF-7 (``folder_encode`` on, the default); with
    ``folder_encode`` off it is returned already encoded.
    """
    if not logical:
        raise ValueError("empty folder path")
    prefix, sep = _namespace if _namespace is not None else personal_namespace(client)
    if len(logical) == 1 and logical[0].upper() == "INBOX":
        return "INBOX"
    if len(logical) > 1 and not sep:
        raise ValueError(f"server has a flat namespace; cannot store {logical!r}")
    for part in logical:
        if not part or (sep and sep in part):
            raise ValueError(f"folder component {part!r} is empty or contains the separator {sep!r}")
    name = prefix + (sep or "").join(logical)
    if not getattr(client, "folder_encode", True):
        from imapclient.imap_utf7 import encode

        name = encode(name).decode("ascii")
    return name


#: Flush an APPEND batch once it holds this many bytes (a bigger message goes alone).
_BATCH_BYTES = 16 * MiB


def load(client: "IMAPClient", messages: Iterable[CorpusMessage], *, batch: int = 50,
         folders: Iterable[tuple[str, ...]] = ()) -> int:
    """Create the needed folders and APPEND *messages*, returning how many were appended.

    Folders named in *folders* (e.g. ``folder_tree(spec)``) are created even when no
    message lands in them; every ancestor of a folder is created before it. Messages are
    appended in order, with their flags and internaldate, using MULTIAPPEND batches of at
    most *batch* messages / 16 MiB when the server advertises it, plain APPEND otherwise.
    Memory stays bounded by one batch.
    """
    if batch < 1:
        raise ValueError("batch must be >= 1")
    namespace = personal_namespace(client)
    existing = {_fold(name) for _flags, _sep, name in client.list_folders()}
    names: dict[tuple[str, ...], str] = {}

    def ensure(logical: tuple[str, ...]) -> str:
        name = names.get(logical)
        if name is not None:
            return name
        for depth in range(1, len(logical) + 1):
            part = logical[:depth]
            if part in names:
                continue
            server_name = server_folder_name(client, part, _namespace=namespace)
            if _fold(server_name) not in existing:
                _create(client, server_name)
                existing.add(_fold(server_name))
            names[part] = server_name
        return names[logical]

    for logical in folders:
        ensure(tuple(logical))

    multi = client.has_capability("MULTIAPPEND")
    count = 0
    pending: list[CorpusMessage] = []
    pending_bytes = 0
    pending_folder: str | None = None

    def flush() -> None:
        nonlocal count, pending, pending_bytes
        if not pending:
            return
        if multi and len(pending) > 1:
            typ, data = client.multiappend(
                pending_folder,
                [{"msg": m.raw, "flags": m.flags, "date": m.internaldate} for m in pending],
            )
            if typ != "OK":
                raise RuntimeError(f"MULTIAPPEND to {pending_folder!r} failed: {typ} {data!r}")
        else:
            for m in pending:
                client.append(pending_folder, m.raw, flags=m.flags, msg_time=m.internaldate)
        count += len(pending)
        pending = []
        pending_bytes = 0

    for m in messages:
        name = ensure(m.folder)
        if pending and (name != pending_folder or len(pending) >= batch
                        or pending_bytes + len(m.raw) > _BATCH_BYTES):
            flush()
        pending_folder = name
        pending.append(m)
        pending_bytes += len(m.raw)
    flush()
    return count


def _fold(name: str) -> str:
    return "INBOX" if name.upper() == "INBOX" else name


def _create(client: "IMAPClient", name: str) -> None:
    from imapclient.exceptions import IMAPClientError

    try:
        client.create_folder(name)
    except IMAPClientError as exc:
        text = str(exc).upper()
        if "ALREADYEXISTS" in text or "ALREADY EXISTS" in text:
            return
        raise
