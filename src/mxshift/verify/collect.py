"""Reading what verification compares: both servers, and our journal for the UID map.

Why apart from the comparison: this is all the I/O; :mod:`mxshift.verify.compare` decides.
Cheap by default (sizes, flags, INTERNALDATE, four identity headers). ``deep`` also streams
every message's bytes through SHA-256 on both sides, in batches bounded by a message count
and a byte budget, so memory never holds more than one batch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email.header import decode_header, make_header
from typing import Callable, Iterator

from sqlalchemy import select

from mxshift.errors import MxshiftError
from mxshift.identity import fingerprint, identity_fields
from mxshift.state.db import StateDB
from mxshift.state.models import Finding, FolderPair, Message
from mxshift.store.base import MessageMeta, Store
from mxshift.verify.compare import Item, JournalEntry, PairInput


@dataclass(frozen=True)
class Batching:
    messages: int = 200
    bytes: int = 32 * 1024 * 1024


def _text(value: bytes | None) -> str:
    if not value:
        return ""
    raw = value.decode("utf-8", "replace")
    try:
        return str(make_header(decode_header(raw)))
    except Exception:  # malformed encoded-words: show them as they are
        return raw


def item_from_meta(meta: MessageMeta) -> Item:
    fields = identity_fields(meta.headers)
    loose = None
    if fields.get(b"message-id"):
        h = hashlib.sha256()
        for key in (b"message-id", b"date", b"from", b"subject"):
            h.update(key + b"\0" + fields.get(key, b"") + b"\0")
        loose = h.hexdigest()[:40]
    return Item(uid=meta.uid, size=meta.size, flags=meta.flags, internaldate=meta.internaldate,
                fingerprint=fingerprint(meta.headers, meta.size).value, loose=loose,
                subject=_text(fields.get(b"subject")), sender=_text(fields.get(b"from")),
                date=_text(fields.get(b"date")))


def batches(metas: list[MessageMeta], limit: Batching) -> Iterator[list[int]]:
    """UIDs grouped so that a batch stays under both the count and the byte budget."""
    batch: list[int] = []
    size = 0
    for m in metas:
        if batch and (len(batch) >= limit.messages or size + m.size > limit.bytes):
            yield batch
            batch, size = [], 0
        batch.append(m.uid)
        size += m.size
    if batch:
        yield batch


def read_folder(store: Store, folder: str, limit: Batching, *, deep: bool) -> tuple[int, list[Item]]:
    """(UIDVALIDITY, items) of ``folder``, selected read-only."""
    status = store.select(folder, readonly=True)
    uids = sorted(store.all_uids())
    metas: list[MessageMeta] = []
    for i in range(0, len(uids), limit.messages):
        metas.extend(store.fetch_meta(uids[i:i + limit.messages]))
    hashes: dict[int, str] = {}
    if deep:
        for batch in batches(metas, limit):
            for raw in store.fetch_raw(batch):
                hashes[raw.uid] = hashlib.sha256(raw.raw).hexdigest()
    items = []
    for m in metas:
        it = item_from_meta(m)
        if deep:
            it = Item(**{**it.__dict__, "content_hash": hashes.get(m.uid)})
        items.append(it)
    return status.uidvalidity, items


def journal(db: StateDB, mailbox_id: int) -> tuple[list[FolderPair], dict[int, dict[int, JournalEntry]]]:
    with db.session() as s:
        pairs = list(s.scalars(select(FolderPair).where(
            FolderPair.mailbox_id == mailbox_id, FolderPair.present.is_(True),
            FolderPair.selectable.is_(True)).order_by(FolderPair.id)))
        reasons: dict[tuple[str, int], str] = {}
        for f in s.scalars(select(Finding).where(Finding.mailbox_id == mailbox_id,
                                                 Finding.kind == "skipped")
                           .order_by(Finding.id)):
            if f.folder is not None and f.source_uid is not None:
                reasons[(f.folder, f.source_uid)] = f.reason
        out: dict[int, dict[int, JournalEntry]] = {}
        for p in pairs:
            names = (p.display_name or p.source_name, p.source_name)
            rows: dict[int, JournalEntry] = {}
            for m in s.scalars(select(Message).where(Message.folder_pair_id == p.id)):
                reason = next((reasons[(n, m.source_uid)] for n in names
                               if (n, m.source_uid) in reasons), None)
                rows[m.source_uid] = JournalEntry(m.source_uid, m.destination_uid, m.state,
                                                  reason)
            out[p.id] = rows
    return pairs, out


def collect(db: StateDB, mailbox_id: int, source: Callable[[], Store],
            destination: Callable[[], Store], limit: Batching, *,
            deep: bool) -> list[PairInput]:
    """Everything :func:`mxshift.verify.compare.compare` needs for one mailbox."""
    pairs, rows = journal(db, mailbox_id)
    src = source()
    try:
        dst = destination()
        try:
            return [_pair_input(src, dst, p, rows[p.id], limit, deep) for p in pairs]
        finally:
            dst.close()
    finally:
        src.close()


def _pair_input(src: Store, dst: Store, pair: FolderPair, rows: dict[int, JournalEntry],
                limit: Batching, deep: bool) -> PairInput:
    _, s_items = read_folder(src, pair.source_name, limit, deep=deep)
    d_items: list[Item] = []
    error = None
    use_map = True
    try:
        d_validity, d_items = read_folder(dst, pair.destination_name, limit, deep=deep)
        use_map = (pair.destination_uidvalidity is None
                   or pair.destination_uidvalidity == d_validity)
    except MxshiftError as exc:
        if s_items:
            error = str(exc)
    return PairInput(pair_id=pair.id, folder=pair.display_name or pair.source_name,
                     source=s_items, destination=d_items, journal=rows, use_uid_map=use_map,
                     destination_error=error)


