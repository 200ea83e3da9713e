"""Preflight: log in on both sides and say, per mailbox, what would block the migration.

Why before any copy: a wrong password or a full destination must fail here, in daylight,
with the mailbox named, not at 2 a.m. in the middle of a pass.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mxshift.connect import store_factory
from mxshift.errors import MxshiftError
from mxshift.project import OpenProject
from mxshift.state.models import Mailbox
from mxshift.store.base import QuotaInfo, Store

USEFUL = ("UIDPLUS", "MOVE", "CONDSTORE", "QRESYNC", "MULTIAPPEND", "SPECIAL-USE", "LITERAL+")


@dataclass
class SideReport:
    ok: bool = False
    error: str | None = None
    folders: int = 0
    messages: int = 0
    size: int | None = None   # bytes, when the server reports STATUS=SIZE
    capabilities: list[str] = field(default_factory=list)
    quota: QuotaInfo | None = None


@dataclass
class PreflightResult:
    source_user: str
    destination_user: str
    source: SideReport
    destination: SideReport
    blockers: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.blockers


def _side(open_store, count: bool) -> SideReport:  # type: ignore[no-untyped-def]
    rep = SideReport()
    store: Store | None = None
    try:
        store = open_store()
        rep.ok = True
        rep.capabilities = sorted(c for c in store.capabilities if c in USEFUL)
        folders = [f for f in store.list_folders()
                   if not {"\\noselect", "\\nonexistent"} & {x.lower() for x in f.flags}]
        rep.folders = len(folders)
        if count:
            sizes = []
            for f in folders:
                st = store.status(f.name)
                rep.messages += st.messages
                sizes.append(st.size)
            rep.size = None if None in sizes else sum(s for s in sizes if s is not None)
        rep.quota = store.quota()
    except MxshiftError as exc:
        rep.error = str(exc)
    finally:
        if store is not None:
            store.close()
    return rep


def check_mailbox(proj: OpenProject, mb: Mailbox) -> PreflightResult:
    cfg = proj.config
    src = _side(store_factory(cfg.source, mb.source_user, mb.source_secret, proj.box), True)
    dst = _side(store_factory(cfg.destination, mb.destination_user, mb.destination_secret,
                              proj.box), False)
    res = PreflightResult(mb.source_user, mb.destination_user, src, dst)
    if not src.ok:
        res.blockers.append(f"source: {src.error}")
    if not dst.ok:
        res.blockers.append(f"destination: {dst.error}")
    q = dst.quota
    if dst.ok and src.ok and q and q.limit_bytes is not None and src.size is not None:
        free = q.limit_bytes - (q.used_bytes or 0)
        if src.size > free:
            res.blockers.append(f"destination quota: {free // 1024} KiB free, the source holds "
                                f"{src.size // 1024} KiB")
    for label, endpoint, user, side in (("source", cfg.source, mb.source_user, src),
                                        ("destination", cfg.destination, mb.destination_user,
                                         dst)):
        if side.ok and endpoint.oauth is not None and endpoint.auth != "password":
            # logged in with a token; say if it still lacks something (a role, a scope)
            from mxshift.oauth.settings import token_problems

            res.warnings += [f"{label}: {p}" for p in token_problems(endpoint.oauth, user)]
    if dst.ok and "UIDPLUS" not in dst.capabilities:
        res.warnings.append("destination lacks UIDPLUS: copies are found again by fingerprint "
                            "(slower)")
    return res


def preflight(proj: OpenProject, only: str | None = None) -> list[PreflightResult]:
    mailboxes = proj.mailboxes(only)
    workers = max(1, min(proj.config.options.mailbox_parallelism,
                         proj.config.source.max_connections,
                         proj.config.destination.max_connections))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda mb: check_mailbox(proj, mb), mailboxes))
