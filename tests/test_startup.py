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

#: Needed only by some commands: dashboard, Celery workers and their broker, cloud OAuth,
#: DNS check, reports, schema migrations. ``google.auth`` is a package inside ``google``.
#: Pydantic: Typer would coerce every option value with it; cli/coercion.py spares the
#: plain ones.
HEAVY = ("celery", "kombu", "redis", "fastapi", "uvicorn", "msal", "google.auth", "jinja2",
         "dns", "alembic", "mako", "pydantic", "pydantic_core")

#: Not for a pass that finds nothing to do either: notifications (SMTP), the verification
#: reader behind the completion gate, the CSV import, the templates, progress bars (not a
#: terminal), Rich tables (sync prints lines).
NOT_FOR_A_NO_CHANGE_SYNC = ("smtplib", "urllib.request", "mxshift.verify.run",
                            "mxshift.mailbox_csv", "mxshift.templates", "rich.progress",
                            "rich.table")

#: Nor for any delta before the cutover: the sweep pass (after the cutover), the verification
#: package and its tables (the "complete" mark is read by mxshift.completion), the schedule's
#: and DNS checks' tables and parsers (a pass reads one timeline column, Core, in sync.py),
#: the DNS address and filter parsers (no [dns] entries to check).
NOT_FOR_A_DELTA = ("mxshift.engine.sweep", "mxshift.verify", "mxshift.state.verify_models",
                   "mxshift.state.schedule_models", "mxshift.state.dns_models",
                   "mxshift.schedule.plan", "mxshift.dns")

#: Not at all when the output is not a terminal (cron, a log, a pipe), with -q or not: the
#: result lines are plain text (cli/console.py).
NOT_WITHOUT_A_TERMINAL = ("rich",)


def _modules_after(code: str, tmp_path: Path, env: dict[str, str] | None = None
                   ) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``code`` in a fresh interpreter (no MXSHIFT_* settings from the caller: SQLite
    state, local runner; plus ``env``); the modules it had loaded when it exited."""
    dump = tmp_path / "modules.json"
    prelude = ("import atexit, json, sys\n"
               f"atexit.register(lambda: open({str(dump)!r}, 'w').write("
               "json.dumps(sorted(sys.modules))))\n")
    proc = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True,
                          text=True, cwd=ROOT, timeout=120,
                          env={**{k: v for k, v in os.environ.items()
                                  if not k.startswith("MXSHIFT_")}, **(env or {})})
    assert dump.exists(), proc.stderr
    return proc, set(json.loads(dump.read_text()))


def _heavy(modules: set[str], heavy: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(m for m in modules for h in heavy if m == h or m.startswith(h + "."))


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
    # the state layer is the commands' business too, not the command tree's; so are the
    # schedule's parsers, Rich's tables and progress bars, and decrypting passwords
    assert "sqlalchemy" not in modules and "mxshift.state.db" not in modules
    assert _heavy(modules, ("mxshift.schedule", "rich.table", "rich.progress", "cryptography",
                            "imapclient")) == []
    assert _heavy(modules, ("rich",)) == []  # the consoles are made on first use


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
    assert "mxshift.completion" in modules and "mxshift.engine.mailbox_pass" in modules
    assert _heavy(modules) == []
    assert _heavy(modules, NOT_FOR_A_NO_CHANGE_SYNC + NOT_FOR_A_DELTA
                  + NOT_WITHOUT_A_TERMINAL) == []

    # without -q but not at a terminal (cron, a pipe): the result lines, no progress bars
    proc, modules = _modules_after(_cli("-C", str(project), "sync"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "delta ok" in proc.stdout and "━" not in proc.stdout, proc.stdout
    assert _heavy(modules, HEAVY + NOT_FOR_A_NO_CHANGE_SYNC + NOT_FOR_A_DELTA
                  + NOT_WITHOUT_A_TERMINAL) == []
    # at a terminal (Rich takes TTY_COMPATIBLE=1 for one): the bars, then the result lines
    proc, modules = _modules_after(_cli("-C", str(project), "sync"), tmp_path,
                                   env={"TTY_COMPATIBLE": "1", "TERM": "xterm"})
    assert proc.returncode == 0, proc.stderr
    assert "all mailboxes" in proc.stdout and "━" in proc.stdout, proc.stdout
    assert "delta ok" in proc.stdout and "rich.progress" in modules

    # status reads the state database: no IMAP pass, no password to decrypt
    proc, modules = _modules_after(_cli("-C", str(project), "status"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert su in proc.stdout
    assert "sqlalchemy.orm" in modules  # it did read the state
    assert _heavy(modules, HEAVY + ("cryptography", "mxshift.engine", "rich.progress",
                                    "smtplib", "imapclient", "imaplib")) == []


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


# -- the garbage collector around a command's start-up (cli/startup.py) ------------------


def _project_without_servers(directory: Path) -> None:
    """A project with a state database and one mailbox; no server is contacted by
    ``mailboxes import`` or ``status``."""
    directory.mkdir()
    (directory / "mxshift.toml").write_text(
        '[source]\nhost = "127.0.0.1"\nport = 1\nsecurity = "none"\n\n'
        '[destination]\nhost = "127.0.0.1"\nport = 2\nsecurity = "none"\n', encoding="utf-8")
    csv = directory / "users.csv"
    csv.write_text("source_user,source_password,destination_user,destination_password\n"
                   "alice,pw1,alice,pw2\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "mxshift", "-C", str(directory), "mailboxes",
                           "import", str(csv)], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items()
                               if not k.startswith("MXSHIFT_")})
    assert proc.returncode == 0, proc.stderr


def _gc_at_exit(code: str, tmp_path: Path) -> dict[str, object]:
    dump = tmp_path / "gc.json"
    prelude = ("import atexit, gc, json\n"
               f"atexit.register(lambda: open({str(dump)!r}, 'w').write(json.dumps("
               "{'threshold': gc.get_threshold(), 'frozen': gc.get_freeze_count()})))\n")
    proc = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True,
                          text=True, cwd=ROOT, timeout=120,
                          env={k: v for k, v in os.environ.items()
                               if not k.startswith("MXSHIFT_")})
    assert dump.exists(), proc.stderr
    return {"returncode": proc.returncode, "stderr": proc.stderr,
            **json.loads(dump.read_text())}


def test_console_script_collects_as_usual_once_the_project_is_open(tmp_path: Path) -> None:
    import gc

    from mxshift.cli import startup

    project = tmp_path / "project"
    _project_without_servers(project)
    default = list(gc.get_threshold())  # this interpreter's: pytest leaves them alone
    # a command that opens the project: paused during start-up, usual thresholds after,
    # and what start-up built is frozen (later collections skip it)
    seen = _gc_at_exit("import sys\n" + _cli("-C", str(project), "status"), tmp_path)
    assert seen["returncode"] == 0, seen["stderr"]
    assert seen["threshold"] == default
    assert isinstance(seen["frozen"], int) and seen["frozen"] > 10_000
    # one that opens nothing ends while still paused: proof the pause is real
    seen = _gc_at_exit("import sys\n" + _cli("--version"), tmp_path)
    assert seen["returncode"] == 0, seen["stderr"]
    assert seen["threshold"] == [startup.START_UP_THRESHOLD, *default[1:]]


def test_calling_the_app_in_process_leaves_the_collector_alone(tmp_path: Path) -> None:
    import gc

    from typer.testing import CliRunner

    from mxshift.cli import app

    project = tmp_path / "project"
    _project_without_servers(project)
    before = (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled())
    res = CliRunner().invoke(app, ["-C", str(project), "status", "--json"])
    assert res.exit_code == 0, res.output
    assert '"alice"' in res.output
    assert (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled()) == before
