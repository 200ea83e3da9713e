"""The command line, end to end, against real Dovecot servers (no mocks).

Most tests run the Typer app in-process with ``CliRunner`` (stdout and stderr are kept
apart); the ones about exit codes and "one line, no traceback" also run ``python -m
mxshift`` as a real subprocess, with a narrow terminal so that a wrapped error would show.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import typer.main
from sqlalchemy import select
from typer.testing import CliRunner, Result

from mxshift.cli import app
from mxshift.config import load_project
from mxshift.state.db import DB_FILE, open_state
from mxshift.state.models import Finding
from mxshift.templates import MAILBOX_TEMPLATE, PROJECT_TEMPLATE
from mxshift.testbed.corpus import CorpusSpec, folder_tree, generate
from mxshift.testbed.corpus_load import load
from mxshift.testbed.dovecot import DovecotServer, free_port
from mxshift.testbed.snapshot import diff, snapshot

ROOT = Path(__file__).resolve().parent.parent
HEADER = "source_user,source_password,destination_user,destination_password\n"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """State in DIR/mxshift.db and the key in DIR/.mxshift.key, whatever the caller's env."""
    monkeypatch.delenv("MXSHIFT_DATABASE_URL", raising=False)
    monkeypatch.delenv("MXSHIFT_SECRET_KEY", raising=False)


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def cli(directory: Path, *args: str) -> Result:
    """``mxshift -C DIRECTORY ARGS`` in-process."""
    return CliRunner().invoke(app, ["-C", str(directory), *args])


def ok(result: Result, code: int = 0) -> Result:
    """The command ended with ``code`` and raised nothing but its own exit."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"unexpected exception {result.exception!r}\n{result.stdout}\n{result.stderr}")
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def one_line_error(result: Result) -> str:
    """Exit 1, exactly one line on stderr starting with "error:", no traceback anywhere."""
    ok(result, 1)
    text = result.stderr.strip()
    assert text.startswith("error: "), result.stderr
    assert "\n" not in text, f"error spans several lines:\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr
    return text


def run_subprocess(directory: Path, *args: str, columns: int = 40,
                   env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m mxshift -C DIRECTORY ARGS`` in a narrow "terminal"."""
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("MXSHIFT_DATABASE_URL", "MXSHIFT_SECRET_KEY")}
    full_env.update(COLUMNS=str(columns), PYTHONWARNINGS="error", **(env or {}))
    return subprocess.run([sys.executable, "-m", "mxshift", "-C", str(directory), *args],
                          capture_output=True, text=True, env=full_env, timeout=60,
                          stdin=subprocess.DEVNULL, check=False)


def write_toml(directory: Path, src_port: int, dst_port: int) -> None:
    """The minimal project file of the issue."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "mxshift.toml").write_text(
        "[source]\n"
        'host = "127.0.0.1"\n'
        f"port = {src_port}\n"
        'security = "none"\n'
        "\n"
        "[destination]\n"
        'host = "127.0.0.1"\n'
        f"port = {dst_port}\n"
        'security = "none"\n', encoding="utf-8")


@dataclass
class Proj:
    """A project directory with two imported mailbox pairs on real servers."""

    dir: Path
    csv: Path
    src: DovecotServer
    dst: DovecotServer
    s1: str
    sp1: str
    d1: str
    dp1: str
    s2: str
    sp2: str
    d2: str
    dp2: str

    @property
    def passwords(self) -> list[str]:
        return [self.sp1, self.dp1, self.sp2, self.dp2]

    def write_csv(self, *, dp2: str | None = None) -> None:
        """s1: literal password; d1: env:; s2: file: (relative to the CSV); d2: literal."""
        self.csv.write_text(HEADER
                            + f"{self.s1},{self.sp1},{self.d1},env:MXSHIFT_TEST_D1_PW\n"
                            + f"{self.s2},file:secrets/s2.pw,{self.d2},{dp2 or self.dp2}\n",
                            encoding="utf-8")


def make_project(directory: Path, src: DovecotServer, dst: DovecotServer,
                 monkeypatch: pytest.MonkeyPatch) -> Proj:
    s1, sp1 = src.new_user("s")
    s2, sp2 = src.new_user("s")
    d1, dp1 = dst.new_user("d")
    d2, dp2 = dst.new_user("d")
    write_toml(directory, src.port, dst.port)
    monkeypatch.setenv("MXSHIFT_TEST_D1_PW", dp1)
    (directory / "secrets").mkdir()
    (directory / "secrets" / "s2.pw").write_text(sp2 + "\n", encoding="utf-8")
    proj = Proj(directory, directory / "mailboxes.csv", src, dst,
                s1, sp1, d1, dp1, s2, sp2, d2, dp2)
    proj.write_csv()
    return proj


def imported(directory: Path, src: DovecotServer, dst: DovecotServer,
             monkeypatch: pytest.MonkeyPatch) -> Proj:
    proj = make_project(directory, src, dst, monkeypatch)
    ok(cli(directory, "mailboxes", "import", str(proj.csv)))
    return proj


def status_json(directory: Path) -> dict[str, dict]:
    rows = json.loads(ok(cli(directory, "status", "--json")).stdout)
    return {r["source_user"]: r for r in rows}


def fill(server: DovecotServer, user: str, spec: CorpusSpec) -> int:
    client = server.connect(user)
    try:
        return load(client, generate(spec), folders=folder_tree(spec))
    finally:
        client.logout()


def snap(server: DovecotServer, user: str, password: str | None = None):  # type: ignore[no-untyped-def]
    client = server.connect(user, password)
    try:
        return snapshot(client)
    finally:
        client.logout()


def simple_message(i: int, body: bytes = b"") -> bytes:
    return (f"Message-ID: <cli{i}@mxshift.test>\r\nFrom: a@example.test\r\n"
            f"To: b@example.test\r\nSubject: cli test {i}\r\n"
            f"Date: Thu, 4 Mar 2021 05:06:07 +0000\r\n\r\nbody {i}\r\n").encode() + body


# ---------------------------------------------------------------------------------------
# 1. init
# ---------------------------------------------------------------------------------------


def test_init_writes_templates_refuses_second_time_and_force_overwrites(tmp_path: Path) -> None:
    directory = tmp_path / "new-project"  # does not exist yet
    res = ok(cli(directory, "init"))
    toml, csv_file = directory / "mxshift.toml", directory / "mailboxes.csv"
    assert toml.read_text(encoding="utf-8") == PROJECT_TEMPLATE
    assert csv_file.read_text(encoding="utf-8") == MAILBOX_TEMPLATE
    assert str(toml) in res.stdout and str(csv_file) in res.stdout
    assert load_project(directory).source.port == 11143  # the template parses

    toml.write_text("# my edits\n", encoding="utf-8")
    csv_file.write_text(HEADER, encoding="utf-8")
    line = one_line_error(cli(directory, "init"))
    assert "mxshift.toml" in line and "--force" in line
    assert toml.read_text(encoding="utf-8") == "# my edits\n"  # nothing written
    assert csv_file.read_text(encoding="utf-8") == HEADER

    ok(cli(directory, "init", "--force"))
    assert toml.read_text(encoding="utf-8") == PROJECT_TEMPLATE
    assert csv_file.read_text(encoding="utf-8") == MAILBOX_TEMPLATE


def test_init_refusal_as_subprocess_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "mailboxes.csv").write_text(HEADER, encoding="utf-8")
    proc = run_subprocess(tmp_path, "init")
    assert proc.returncode == 1, proc
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert "mailboxes.csv" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "mxshift.toml").exists()  # refused before writing anything


# ---------------------------------------------------------------------------------------
# 2. Project file and mailbox import
# ---------------------------------------------------------------------------------------


def test_import_adds_then_leaves_unchanged_then_updates(
        tmp_path: Path, dovecot_src: DovecotServer, dovecot_dst: DovecotServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    proj = make_project(tmp_path, dovecot_src, dovecot_dst, monkeypatch)
    res = ok(cli(tmp_path, "mailboxes", "import", str(proj.csv)))
    assert res.stdout.strip() == "2 added, 0 updated, 0 unchanged"
    res = ok(cli(tmp_path, "mailboxes", "import", str(proj.csv)))
    assert res.stdout.strip() == "0 added, 0 updated, 2 unchanged"
    proj.write_csv(dp2="another-Passw0rd")
    res = ok(cli(tmp_path, "mailboxes", "import", str(proj.csv)))
    assert res.stdout.strip() == "0 added, 1 updated, 1 unchanged"
    rows = status_json(tmp_path)
    assert set(rows) == {proj.s1, proj.s2}
    assert rows[proj.s1]["destination_user"] == proj.d1
    assert all(r["status"] == "new" for r in rows.values())
    assert "another-Passw0rd" not in res.stdout + res.stderr


# ---------------------------------------------------------------------------------------
# 3. Malformed CSV
# ---------------------------------------------------------------------------------------

SECRET_A, SECRET_B, SECRET_C = "Sekr3t-alpha", "Sekr3t-bravo", "Sekr3t-charlie"


@pytest.mark.parametrize("content, expect", [
    pytest.param(b"source_user,source_password,destination_user\n"
                 + f"a@x.test,{SECRET_A},a@y.test\n".encode(),
                 [":1 (column destination_password)", "missing column"], id="missing-column"),
    pytest.param(HEADER.encode()
                 + f"a@x.test,{SECRET_A},a@y.test,{SECRET_B}\n".encode()
                 + f"b@x.test,{SECRET_B},b@y.test,{SECRET_C}\n".encode()
                 + f"A@x.test,{SECRET_C},c@y.test,{SECRET_A}\n".encode(),
                 [":4 (column source_user)", "line 2"], id="duplicate-source-user"),
    pytest.param(HEADER.encode()
                 + f"a@x.test,{SECRET_A},a@y.test,{SECRET_B}\n".encode()
                 + b"b@x.test,p\xe4ss" + SECRET_C.encode() + b",b@y.test,x\n",
                 [":3 (column source_password)", "UTF-8"], id="bad-utf8-line-3"),
])
def test_malformed_csv_is_one_line_naming_where_and_imports_nothing(
        tmp_path: Path, content: bytes, expect: list[str]) -> None:
    write_toml(tmp_path, 1, 2)  # import never contacts a server
    csv_file = tmp_path / "bad.csv"
    csv_file.write_bytes(content)
    res = cli(tmp_path, "mailboxes", "import", str(csv_file))
    line = one_line_error(res)
    assert f"{csv_file}:" in line
    for part in expect:
        assert part in line, line
    for secret in (SECRET_A, SECRET_B, SECRET_C):
        assert secret not in res.stdout + res.stderr
    assert json.loads(ok(cli(tmp_path, "status", "--json")).stdout) == []


def test_malformed_csv_as_subprocess(tmp_path: Path) -> None:
    write_toml(tmp_path, 1, 2)
    csv_file = tmp_path / "bad.csv"
    csv_file.write_bytes(HEADER.encode() + f"a@x.test,,a@y.test,{SECRET_A}\n".encode())
    proc = run_subprocess(tmp_path, "mailboxes", "import", str(csv_file))
    assert proc.returncode == 1, proc
    assert proc.stderr.count("\n") == 1, proc.stderr
    # "[source.admin]" is text, not Rich markup to be swallowed
    assert f"{csv_file}:2 (column source_password)" in proc.stderr
    assert "[source.admin]" in proc.stderr
    assert "Traceback" not in proc.stderr and SECRET_A not in proc.stderr + proc.stdout


# ---------------------------------------------------------------------------------------
# 4. preflight
# ---------------------------------------------------------------------------------------


def test_preflight_ready_wrong_password_and_unreachable(
        tmp_path: Path, dovecot_src: DovecotServer, dovecot_dst: DovecotServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    proj = imported(tmp_path, dovecot_src, dovecot_dst, monkeypatch)
    client = dovecot_src.connect(proj.s1)
    for i in range(3):
        client.append("INBOX", simple_message(i))
    client.logout()

    res = ok(cli(tmp_path, "preflight"))
    for s, d in ((proj.s1, proj.d1), (proj.s2, proj.d2)):
        assert re.search(rf"\b{s} -> {d}\b", res.stdout), res.stdout
    assert "NO" not in res.stdout

    rows = {r["source_user"]: r for r in json.loads(ok(cli(tmp_path, "preflight", "--json"))
                                                    .stdout)}
    assert set(rows) == {proj.s1, proj.s2}
    assert all(r["ready"] is True and r["blockers"] == [] for r in rows.values())
    assert rows[proj.s1]["source"]["messages"] == 3
    assert rows[proj.s2]["source"]["messages"] == 0
    assert rows[proj.s1]["destination"]["ok"] is True

    # A wrong destination password for the second mailbox only.
    wrong = "Wr0ng-pass-Xyz"
    proj.write_csv(dp2=wrong)
    assert "1 updated" in ok(cli(tmp_path, "mailboxes", "import", str(proj.csv))).stdout
    res = ok(cli(tmp_path, "preflight", "--json"), 2)
    rows = {r["source_user"]: r for r in json.loads(res.stdout)}
    assert rows[proj.s1]["ready"] is True and rows[proj.s1]["blockers"] == []
    assert rows[proj.s2]["ready"] is False
    [blocker] = rows[proj.s2]["blockers"]
    assert blocker.startswith("destination:")
    assert f"login as {proj.d2} failed" in blocker
    assert "AUTHENTICATIONFAILED" in blocker
    table = ok(cli(tmp_path, "preflight"), 2)
    # Rich markup must not eat the server's "[AUTHENTICATIONFAILED]"
    assert "AUTHENTICATIONFAILED" in re.sub(r"[\s│]+", "", table.stdout)
    for out in (res.stdout + res.stderr, table.stdout + table.stderr):
        assert wrong not in out
        assert not any(p in out for p in proj.passwords)

    # --mailbox narrows to one pair; the ready one exits 0.
    rows = json.loads(ok(cli(tmp_path, "preflight", "--mailbox", proj.s1, "--json")).stdout)
    assert [r["source_user"] for r in rows] == [proj.s1]
    one_line_error(cli(tmp_path, "preflight", "--mailbox", "nobody@nowhere"))

    # The exit status of a real process.
    proc = run_subprocess(tmp_path, "preflight", "--json",
                          env={"MXSHIFT_TEST_D1_PW": proj.dp1})
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stderr and wrong not in proc.stdout + proc.stderr

    # Unreachable destination: a port nobody listens on.
    write_toml(tmp_path, dovecot_src.port, free_port())
    res = ok(cli(tmp_path, "preflight", "--json"), 2)
    rows = {r["source_user"]: r for r in json.loads(res.stdout)}
    for r in rows.values():
        assert r["ready"] is False and r["source"]["ok"] is True
        assert any(b.startswith("destination:") and "cannot connect" in b
                   for b in r["blockers"]), r["blockers"]


# ---------------------------------------------------------------------------------------
# 5. sync of a realistic corpus, then a delta
# ---------------------------------------------------------------------------------------


def test_sync_moves_corpus_and_second_pass_copies_nothing(
        tmp_path: Path, dovecot_src: DovecotServer, dovecot_dst: DovecotServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    proj = imported(tmp_path, dovecot_src, dovecot_dst, monkeypatch)
    big = CorpusSpec(seed=5, messages=120, size_profile="realistic", max_size=2 * 1024 * 1024)
    small = CorpusSpec(seed=6, messages=25, folders=6, size_profile="small")
    assert fill(dovecot_src, proj.s1, big) == 120
    assert fill(dovecot_src, proj.s2, small) == 25

    res = ok(cli(tmp_path, "-q", "sync"))
    assert res.stderr == ""
    assert "━" not in res.stdout  # quiet: no progress bars
    for s in (proj.s1, proj.s2):
        assert re.search(rf"^{s}: prestage ok: ", res.stdout, re.M), res.stdout
    pairs = ((proj.s1, proj.sp1, proj.d1, proj.dp1), (proj.s2, proj.sp2, proj.d2, proj.dp2))
    counts = {}
    for s, sp, d, dp in pairs:
        src_snap = snap(dovecot_src, s, sp)
        assert diff(src_snap, snap(dovecot_dst, d, dp)) == []
        counts[s] = sum(len(v) for v in src_snap.values())
    assert counts == {proj.s1: 120, proj.s2: 25}

    # Second pass, with progress bars this time: a delta that copies nothing.
    res = ok(cli(tmp_path, "sync"))
    for s in (proj.s1, proj.s2):
        assert re.search(rf"^{s}: delta ok: 0 copied \(0 B\)", res.stdout, re.M), res.stdout
    rows = status_json(tmp_path)
    for s in (proj.s1, proj.s2):
        r = rows[s]
        assert r["status"] == "synced"
        assert r["last_pass_kind"] == "delta" and r["last_pass"] == "ok"
        assert r["messages_on_destination"] == counts[s]
        assert r["copied"] == counts[s]
        assert r["skipped"] == 0 and r["failed"] == 0 and r["last_error"] is None
        when = datetime.fromisoformat(r["last_pass_at"])
        assert when.utcoffset() is not None, "last_pass_at without a time zone"
        assert abs(datetime.now(timezone.utc) - when) < timedelta(minutes=5)
    for s, sp, d, dp in pairs:
        assert diff(snap(dovecot_src, s, sp), snap(dovecot_dst, d, dp)) == []


# ---------------------------------------------------------------------------------------
# 6. sync --mailbox
# ---------------------------------------------------------------------------------------


def test_sync_one_mailbox_leaves_the_other_alone(
        tmp_path: Path, dovecot_src: DovecotServer, dovecot_dst: DovecotServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    proj = imported(tmp_path, dovecot_src, dovecot_dst, monkeypatch)
    fill(dovecot_src, proj.s1, CorpusSpec(seed=7, messages=15, folders=4, size_profile="small"))
    fill(dovecot_src, proj.s2, CorpusSpec(seed=8, messages=10, folders=3, size_profile="small"))

    res = ok(cli(tmp_path, "sync", "--mailbox", proj.s1))  # progress bars, real copying
    assert re.search(rf"^{proj.s1}: prestage ok: 15 copied", res.stdout, re.M), res.stdout
    assert f"{proj.s2}:" not in res.stdout
    rows = status_json(tmp_path)
    assert rows[proj.s1]["status"] == "synced"
    assert rows[proj.s1]["messages_on_destination"] == 15
    assert rows[proj.s2]["status"] == "new"
    assert rows[proj.s2]["last_pass"] is None and rows[proj.s2]["messages_on_destination"] == 0
    assert diff(snap(dovecot_src, proj.s1), snap(dovecot_dst, proj.d1)) == []
    untouched = snap(dovecot_dst, proj.d2)
    assert sum(len(v) for v in untouched.values()) == 0
    assert set(untouched) <= {("INBOX",)}  # no folder created either

    # the destination user selects the pair too
    res = ok(cli(tmp_path, "-q", "sync", "--mailbox", proj.d1))
    assert re.search(rf"^{proj.s1}: delta ok: 0 copied", res.stdout, re.M), res.stdout
    assert status_json(tmp_path)[proj.s2]["status"] == "new"
    line = one_line_error(cli(tmp_path, "sync", "--mailbox", "nobody@nowhere"))
    assert "nobody@nowhere" in line


# ---------------------------------------------------------------------------------------
# 7. The destination refuses a message
# ---------------------------------------------------------------------------------------


def test_message_refused_by_destination_is_skipped_and_recorded(
        tmp_path: Path, dovecot_src: DovecotServer, dovecot_limited: DovecotServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    proj = imported(tmp_path, dovecot_src, dovecot_limited, monkeypatch)
    client = dovecot_src.connect(proj.s1)
    big = simple_message(0, (b"y" * 998 + b"\r\n") * 1500)  # ~1.5 MB
    assert 1_400_000 < len(big) < 1_600_000
    client.append("INBOX", big)
    for i in range(1, 4):
        client.append("INBOX", simple_message(i))
    client.logout()

    # A skipped message is recorded, not a failure: the pass is ok and exits 0.
    res = ok(cli(tmp_path, "-q", "sync", "--mailbox", proj.s1))
    assert re.search(rf"^{proj.s1}: prestage ok: 3 copied .* 1 skipped, 0 errors",
                     res.stdout, re.M), res.stdout
    r = status_json(tmp_path)[proj.s1]
    assert r["status"] == "synced" and r["skipped"] == 1 and r["failed"] == 0
    assert r["messages_on_destination"] == 3

    dest = snap(dovecot_limited, proj.d1)
    assert sorted(m.size for m in dest[("INBOX",)]) == sorted(
        len(simple_message(i)) for i in range(1, 4))

    db = open_state(tmp_path, create=False)
    try:
        with db.session() as s:
            findings = list(s.scalars(select(Finding).where(Finding.kind == "skipped")))
    finally:
        db.dispose()
    assert len(findings) == 1
    [finding] = findings
    assert finding.size == len(big) and finding.folder == "INBOX"
    assert "[LIMIT]" in finding.reason or "maximum size" in finding.reason.lower(), finding.reason

    # A delta does not retry it forever nor count it twice.
    ok(cli(tmp_path, "-q", "sync", "--mailbox", proj.s1))
    r = status_json(tmp_path)[proj.s1]
    assert r["skipped"] == 1 and r["messages_on_destination"] == 3


# ---------------------------------------------------------------------------------------
# 8. Secrets never reach the state database or the output
# ---------------------------------------------------------------------------------------


def test_passwords_stay_out_of_state_and_status(
        tmp_path: Path, dovecot_src: DovecotServer, dovecot_dst: DovecotServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    proj = imported(tmp_path, dovecot_src, dovecot_dst, monkeypatch)
    client = dovecot_src.connect(proj.s2)
    client.append("INBOX", simple_message(1))
    client.logout()
    res = ok(cli(tmp_path, "-q", "sync"))
    status = ok(cli(tmp_path, "status", "--json"))
    table = ok(cli(tmp_path, "status"))
    rows = {r["source_user"]: r for r in json.loads(status.stdout)}
    assert rows[proj.s2]["messages_on_destination"] == 1  # the passwords did work

    files = [p for p in (tmp_path / DB_FILE, tmp_path / (DB_FILE + "-wal"),
                         tmp_path / (DB_FILE + "-shm")) if p.exists()]
    assert tmp_path / DB_FILE in files
    blobs = [p.read_bytes() for p in files]
    for secret in proj.passwords:
        for blob in blobs:
            assert secret.encode() not in blob
        for out in (res, status, table):
            assert secret not in out.stdout + out.stderr


# ---------------------------------------------------------------------------------------
# 9. State written by a newer mxshift
# ---------------------------------------------------------------------------------------


def test_state_from_newer_schema_is_refused_in_one_line(tmp_path: Path) -> None:
    write_toml(tmp_path, 1, 2)
    (tmp_path / "m.csv").write_text(HEADER + "a@x.test,env:A,a@y.test,env:B\n",
                                    encoding="utf-8")
    ok(cli(tmp_path, "mailboxes", "import", str(tmp_path / "m.csv")))
    with sqlite3.connect(tmp_path / DB_FILE) as conn:
        conn.execute("UPDATE alembic_version SET version_num='9999_future'")
    conn.close()

    proc = run_subprocess(tmp_path, "status")
    assert proc.returncode == 1, proc
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "newer" in proc.stderr and "9999_future" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    # and it was left alone, not "upgraded" or stamped
    with sqlite3.connect(tmp_path / DB_FILE) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("9999_future",)]
    conn.close()
    assert "newer" in one_line_error(cli(tmp_path, "status", "--json"))


# ---------------------------------------------------------------------------------------
# 10. Help text and README
# ---------------------------------------------------------------------------------------


def _is_group(cmd: Any) -> bool:
    return isinstance(getattr(cmd, "commands", None), dict)


def _commands() -> list[tuple[list[str], Any]]:
    """Every command and group under the root, as (path, command), the root first.

    (Typer 0.29 vendors click; its groups are told apart by their ``commands``.)"""
    found: list[tuple[list[str], Any]] = []

    def walk(path: list[str], cmd: Any) -> None:
        found.append((path, cmd))
        if _is_group(cmd):
            for name, sub in sorted(cmd.commands.items()):
                walk([*path, name], sub)

    walk([], typer.main.get_command(app))
    return found


def _leaf_names() -> list[str]:
    return [" ".join(path) for path, cmd in _commands()
            if path and not _is_group(cmd)]


def test_command_tree_is_complete() -> None:
    assert sorted(_leaf_names()) == ["accept", "complete", "cutover", "db upgrade",
                                     "dns check", "findings", "init", "mailboxes import",
                                     "preflight", "report", "run", "schedule", "serve",
                                     "status", "strays", "sweep", "sync", "verify", "worker"]


@pytest.mark.parametrize("path, cmd", _commands(), ids=lambda v: " ".join(v) or "mxshift"
                         if isinstance(v, list) else "")
def test_every_command_has_help(path: list[str], cmd: Any) -> None:
    assert (cmd.help or "").strip(), f"no help text for {' '.join(['mxshift', *path])}"
    for param in cmd.params:
        if param.param_type_name == "option" and not getattr(param, "hidden", False):
            assert (getattr(param, "help", None) or "").strip(), (
                f"option {param.opts} of {' '.join(['mxshift', *path])} has no help")
    res = CliRunner().invoke(app, [*path, "--help"])
    assert res.exit_code == 0, res.output
    assert cmd.help.strip().split("\n")[0][:40] in " ".join(res.stdout.split())


def test_readme_mentions_every_command() -> None:
    readme = ROOT / "README.md"
    assert readme.exists(), "README.md is missing"
    text = readme.read_text(encoding="utf-8")
    for name in _leaf_names():
        # "mxshift sync", also with global options between: "mxshift -C acme -q sync"
        pattern = (r"\bmxshift(?:\s+(?:-C\s+\S+|--directory[ =]\S+|-q|--quiet))*\s+"
                   + r"\s+".join(map(re.escape, name.split())) + r"\b")
        assert re.search(pattern, text), f"README.md does not mention `mxshift {name}`"
