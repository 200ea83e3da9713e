"""The bytes of one corpus message: headers, text and HTML bodies, attachments.

Why a module of its own: :mod:`mxshift.testbed.corpus` decides what message *n* is (folder,
size, date, subject, Message-ID); this module is the long, fiddly part that writes it as
RFC 5322 with the ``email`` package: people and words to draw from, RFC 2047/2231 non-ASCII
headers, transfer encodings, body text fitted to the planned size, and MIME boundaries set
deterministically (``email`` would draw them from the global RNG).

Everything random comes from the plan's seeded RNGs (``plan.rng(...)``), so the same plan
and index always give the same bytes.
"""

from __future__ import annotations

import random
from datetime import timedelta
from email import policy as _policy
from email.generator import BytesGenerator
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from io import BytesIO
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from mxshift.testbed.corpus import Plan

KiB = 1024

#: SMTP policy: CRLF line ends, headers folded at 78, RFC 2047 for non-ASCII headers,
#: no "From " mangling. Used both to build and to serialise messages.
POLICY = _policy.SMTP


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


def build_message(plan: Plan, i: int) -> bytes:
    """The raw bytes of original (non-duplicate) message *i*."""
    spec = plan.spec
    rng = plan.rng("msg", i)
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
        paras = _paragraphs(plan.rng("text", i), body_chars, unicode_p)
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
    attach_rng = plan.rng("attach", i)
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
