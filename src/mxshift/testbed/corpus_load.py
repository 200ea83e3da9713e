"""Putting a generated corpus on a real IMAP server, under the server's own folder names.

Why a module of its own: generating mail is pure and needs no server; loading it needs an
IMAP connection and knowledge of how servers name folders (a personal namespace prefix
such as ``INBOX.``, the hierarchy separator, modified UTF-7). The same naming rule is used
by :mod:`mxshift.testbed.snapshot` to read an account back and by the tests to find a
logical folder on a server.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from mxshift.testbed.corpus import CorpusMessage, MiB

if TYPE_CHECKING:  # pragma: no cover
    from imapclient import IMAPClient

__all__ = [
    "load",
    "server_folder_name",
    "personal_namespace",
]


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
