"""The bytes of several folders' messages in one round trip (pipelined EXAMINE + FETCH).

Why: a delta's new messages are few per folder, spread over many folders; fetched
folder by folder that is two round trips each (EXAMINE, UID FETCH), on a connection per
copy worker. Every argument is known beforehand (folder, UIDs), so the commands go out
together and their answers are read in order, as the QRESYNC scan does
(store/qresync_batch.py; RFC 3501 5.5 allows it: an EXAMINE that fails leaves no folder
selected, so the FETCH after it fails too and never reads another folder).

What the caller gets per folder: UID -> :class:`RawMessage`, as ``fetch_raw`` gives them,
or None when the answer is not the whole story (a refusal, another UIDVALIDITY than the
scan saw, an answer of another shape): the caller then leaves that folder to the copy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mxshift.store.base import RawMessage
from mxshift.store.fetch_parse import _flags, parse_fetch_fast
from mxshift.store.qresync_batch import begin_burst
from mxshift.store.uidset import compress_uids

if TYPE_CHECKING:
    from mxshift.store.imap import ImapStore

_ITEMS = "(BODY.PEEK[] FLAGS INTERNALDATE)"


def fetch_bodies_many(store: "ImapStore", requests: list[tuple[str, int, list[int]]]
                      ) -> list[dict[int, RawMessage] | None]:
    """For each (folder, UIDVALIDITY, UIDs): the messages found, or None."""
    if not requests:
        return []

    def burst() -> list[dict[int, RawMessage] | None]:
        c = store._c
        imap = begin_burst(store)
        tags = [(imap._command("EXAMINE", c._normalise_folder(folder)),
                 imap._command("UID", "FETCH", compress_uids(uids), _ITEMS))
                for folder, _validity, uids in requests]
        out: list[dict[int, RawMessage] | None] = []
        try:
            for (_folder, validity, _uids), (examine, fetch) in zip(requests, tags):
                ok = _complete(imap, "EXAMINE", examine)
                found = imap.untagged_responses.get("UIDVALIDITY", [b""])[-1]
                imap.untagged_responses = {}
                ok = ok and found == str(validity).encode()
                ok = _complete(imap, "FETCH", fetch) and ok
                fetched, imap.untagged_responses = imap.untagged_responses.pop("FETCH", []), {}
                data = parse_fetch_fast(fetched) if ok else None
                out.append(None if data is None else _messages(data))
        finally:
            imap.state = "AUTH"  # which folder is selected is not tracked: select again
            store._selected = None
        return out

    return store._retry("SELECT", burst)


def _complete(imap, name: str, tag: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        typ, _data = imap._command_complete(name, tag)
    except imap.abort:
        raise  # the connection is gone: the caller's retry logs in again
    except imap.error:  # BAD or NO: read on, the answers of the others follow
        return False
    return typ == "OK"


def _messages(data: dict[int, dict[bytes, object]]) -> dict[int, RawMessage]:
    out: dict[int, RawMessage] = {}
    for uid, item in data.items():
        body, date = item.get(b"BODY[]"), item.get(b"INTERNALDATE")
        if isinstance(body, bytes) and date is not None:
            out[uid] = RawMessage(uid=uid, raw=body, flags=_flags(item.get(b"FLAGS", ())),  # type: ignore[arg-type]
                                  internaldate=date)  # type: ignore[arg-type]
    return out
