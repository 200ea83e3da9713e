"""A project directory: its config, its state, and the mailboxes imported into it.

Why one place: every command (init, import, preflight, sync, status) starts from the
directory and needs the same three things opened the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from mxshift.config import Endpoint, ProjectConfig, load_project
from mxshift.errors import MxshiftError
from mxshift.secrets import SecretBox
from mxshift.state.db import StateDB, open_state
from mxshift.state.models import Mailbox, Project

# The CSV parser and the templates are imported by init and import, the two commands that
# use them; every other command opens a project (tests/test_startup.py).


@dataclass
class OpenProject:
    config: ProjectConfig
    db: StateDB
    box: SecretBox
    project_id: int

    def mailboxes(self, only: str | None = None) -> list[Mailbox]:
        with self.db.session() as s:
            q = select(Mailbox).where(Mailbox.project_id == self.project_id)
            if only:
                q = q.where((Mailbox.source_user == only) | (Mailbox.destination_user == only))
            rows = list(s.scalars(q.order_by(Mailbox.id)))
        if only and not rows:
            raise MxshiftError(f"no mailbox {only!r} in this project")
        return rows

    def close(self) -> None:
        self.db.dispose()


def open_project(directory: Path, *, create_state: bool = False) -> OpenProject:
    config = load_project(directory)
    db = open_state(directory, create=True)
    with db.session() as s, s.begin():
        project = s.scalar(select(Project).order_by(Project.id).limit(1))
        if project is None:
            project = Project(name=config.name)
            s.add(project)
            s.flush()
        project_id = project.id
    return OpenProject(config, db, SecretBox(directory), project_id)


def init(directory: Path, *, force: bool = False) -> list[Path]:
    from mxshift.templates import write_templates

    directory.mkdir(parents=True, exist_ok=True)
    return write_templates(directory, force=force)


@dataclass
class ImportResult:
    added: int
    updated: int
    unchanged: int


def import_mailboxes(directory: Path, csv_path: Path) -> ImportResult:
    """Validate the CSV completely, then add or update mailbox rows (secrets sealed)."""
    from mxshift.mailbox_csv import parse_mailbox_csv

    proj = open_project(directory)
    try:
        entries = parse_mailbox_csv(csv_path,
                                    source_admin=_no_password(proj.config.source),
                                    destination_admin=_no_password(proj.config.destination))
        added = updated = unchanged = 0
        with proj.db.session() as s, s.begin():
            existing = {m.source_user: m for m in s.scalars(
                select(Mailbox).where(Mailbox.project_id == proj.project_id))}
            for e in entries:
                src = proj.box.seal(e.source_password) if e.source_password else None
                dst = proj.box.seal(e.destination_password) if e.destination_password else None
                mb = existing.get(e.source_user)
                if mb is None:
                    s.add(Mailbox(project_id=proj.project_id, source_user=e.source_user,
                                  destination_user=e.destination_user, source_secret=src,
                                  destination_secret=dst, csv_line=e.line))
                    added += 1
                    continue
                same = (mb.destination_user == e.destination_user
                        and _same_secret(proj.box, mb.source_secret, src)
                        and _same_secret(proj.box, mb.destination_secret, dst))
                if same:
                    unchanged += 1
                    continue
                mb.destination_user, mb.csv_line = e.destination_user, e.line
                mb.source_secret, mb.destination_secret = src, dst
                updated += 1
        return ImportResult(added, updated, unchanged)
    finally:
        proj.close()


def _no_password(endpoint: Endpoint) -> bool:
    """A side logged in by an admin (master user) or by OAuth2 needs no password per row."""
    return endpoint.admin is not None or endpoint.auth != "password"


def _same_secret(box: SecretBox, a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is b
    return box.open(a) == box.open(b)
