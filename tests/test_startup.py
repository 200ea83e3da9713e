"""Process start-up stays light: the heavy libraries load only for the commands that use them.

Why: every ``mxshift`` process imports the whole command tree, and an admin's hourly
``mxshift sync`` (or a scheduler's) pays each module-level import of every command. These
are guards on *what* is imported, checked in fresh interpreters (``sys.modules``), not
timing tests: timings live in bench/README.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mxshift.state import db as state_db
from mxshift.testbed.dovecot import DovecotServer

ROOT = Path(__file__).resolve().parent.parent

#: Needed only by some commands: dashboard, Celery workers, cloud OAuth, DNS check,
#: reports, schema migrations. ``google.auth`` is a package inside ``google``.
HEAVY = ("celery", "fastapi", "uvicorn", "msal", "google.auth", "jinja2", "dns", "alembic",
         "mako")


def _modules_after(code: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``code`` in a fresh interpreter (no MXSHIFT_* settings from the caller: SQLite
    state, local runner); the modules it had loaded when it exited."""
    dump = tmp_path / "modules.json"
    prelude = ("import atexit, json, sys\n"
               f"atexit.register(lambda: open({str(dump)!r}, 'w').write("
               "json.dumps(sorted(sys.modules))))\n")
    proc = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True,
                          text=True, cwd=ROOT, timeout=120,
                          env={k: v for k, v in os.environ.items()
                               if not k.startswith("MXSHIFT_")})
    assert dump.exists(), proc.stderr
    return proc, set(json.loads(dump.read_text()))


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules for h in HEAVY if m == h or m.startswith(h + "."))


def _cli(*args: str) -> str:
    """Code that runs ``mxshift ARGS`` like the console script does."""
    return ("import runpy\n"
            f"sys.argv = ['mxshift', *{list(args)!r}]\n"
            "runpy.run_module('mxshift', run_name='__main__')\n")


def test_importing_the_cli_pulls_in_no_heavy_library(tmp_path: Path) -> None:
    proc, modules = _modules_after("import mxshift.cli\n", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "mxshift.cli.verify_commands" in modules  # the command tree is all there
    assert _heavy(modules) == []
    # the state layer is the commands' business too, not the command tree's
    assert "sqlalchemy" not in modules and "mxshift.state.db" not in modules


def test_help_lists_every_command_without_heavy_libraries(tmp_path: Path) -> None:
    proc, modules = _modules_after(_cli("--help"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    for command in ("sync", "serve", "worker", "dns", "report", "cutover", "db"):
        assert command in proc.stdout
    assert _heavy(modules) == []


def test_no_change_sync_opens_a_current_schema_without_alembic(
        tmp_path: Path, dovecot_src: DovecotServer, dovecot_dst: DovecotServer) -> None:
    su, sp = dovecot_src.new_user("s")
    du, dp = dovecot_dst.new_user("d")
    project = tmp_path / "project"
    project.mkdir()
    (project / "mxshift.toml").write_text(
        f'[source]\nhost = "127.0.0.1"\nport = {dovecot_src.port}\nsecurity = "none"\n\n'
        f'[destination]\nhost = "127.0.0.1"\nport = {dovecot_dst.port}\nsecurity = "none"\n',
        encoding="utf-8")
    client = dovecot_src.connect(su, sp)
    client.append("INBOX", b"Subject: hello\r\n\r\nbody\r\n")
    client.logout()
    csv = tmp_path / "users.csv"
    csv.write_text("source_user,source_password,destination_user,destination_password\n"
                   f"{su},{sp},{du},{dp}\n", encoding="utf-8")
    # creating the state database migrates it: Alembic is loaded then, and only then
    proc, modules = _modules_after(_cli("-C", str(project), "mailboxes", "import", str(csv)),
                                   tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "alembic" in modules
    proc, _ = _modules_after(_cli("-q", "-C", str(project), "sync"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert " 1 copied" in proc.stdout, proc.stdout

    proc, modules = _modules_after(_cli("-q", "-C", str(project), "sync"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert " 0 copied" in proc.stdout and "delta ok" in proc.stdout, proc.stdout
    assert "imapclient" in modules  # it did talk to the servers
    assert _heavy(modules) == []


# -- the head revision read from the migration files -------------------------------------


def test_head_from_files_is_alembics_head() -> None:
    assert state_db._head_from_files() == state_db._alembic_head()
    assert state_db.head_revision() == state_db._alembic_head()


def _migration(directory: Path, name: str, revision: str, down: str | None,
               annotated: bool = False) -> None:
    ann = ": str | None" if annotated else ""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.py").write_text(
        f'"""{name}\n\nRevision ID: {revision}\nRevises: {down}\n"""\n'
        f"revision{': str' if annotated else ''} = {revision!r}\n"
        f"down_revision{ann} = {down!r}  # comment\n"
        "branch_labels = None\n", encoding="utf-8")


def test_head_from_files_reads_a_chain_and_gives_up_on_anything_else(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    versions = tmp_path / "versions"
    monkeypatch.setattr(state_db, "_MIGRATIONS", tmp_path)
    _migration(versions, "b", "0002_b", "0001")
    _migration(versions, "a", "0001", None)
    _migration(versions, "c", "0003_c", "0002_b", annotated=True)
    assert state_db._head_from_files() == "0003_c"

    _migration(versions, "d", "0003_d", "0002_b")  # a branch: two heads
    assert state_db._head_from_files() is None
    (versions / "d.py").write_text('revision = "0004"\ndown_revision = ("0003_c", "x")\n')
    assert state_db._head_from_files() is None  # a merge: not a literal id
    (versions / "d.py").write_text('revision = "0004"\ndown_revision = "missing"\n')
    assert state_db._head_from_files() is None  # parent not among the files
    (versions / "d.py").write_text('revision = "0004"\n')
    assert state_db._head_from_files() is None  # no down_revision line
    (versions / "d.py").write_text('revision = "0004"\ndown_revision = "0003_c"\n')
    assert state_db._head_from_files() == "0004"


def test_current_revision_reads_the_stamp(tmp_path: Path) -> None:
    engine = state_db.make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        assert state_db.current_revision(engine) is None  # empty database
        state_db.upgrade(engine)
        assert state_db.current_revision(engine) == state_db.head_revision()
    finally:
        engine.dispose()
