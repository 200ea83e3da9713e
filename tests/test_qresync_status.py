"""The per-server switch and what the admin sees: ``disable_capabilities`` in mxshift.toml
really changes the delta mode, and ``status`` (table and JSON) and the report say which
mode each folder used. End to end through the CLI, on real Dovecot servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mxshift.cli import app
from mxshift.cli import out as cli_out
from mxshift.status import modes_text
from mxshift.testbed.dovecot import DovecotServer


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MXSHIFT_DATABASE_URL", raising=False)
    monkeypatch.delenv("MXSHIFT_SECRET_KEY", raising=False)


def cli(directory: Path, *args: str) -> Result:
    result = CliRunner().invoke(app, ["-C", str(directory), *args])
    assert result.exit_code == 0, f"{result.stdout}\n{result.stderr}\n{result.exception!r}"
    return result


def project(directory: Path, src: DovecotServer, dst: DovecotServer,
            disable: str) -> tuple[str, str]:
    su, sp = src.new_user("s")
    du, dp = dst.new_user("d")
    (directory / "mxshift.toml").write_text(
        f'[source]\nhost = "127.0.0.1"\nport = {src.port}\nsecurity = "none"\n{disable}\n\n'
        f'[destination]\nhost = "127.0.0.1"\nport = {dst.port}\nsecurity = "none"\n',
        encoding="utf-8")
    (directory / "users.csv").write_text(
        "source_user,source_password,destination_user,destination_password\n"
        f"{su},{sp},{du},{dp}\n", encoding="utf-8")
    cli(directory, "mailboxes", "import", str(directory / "users.csv"))
    c = src.connect(su, sp)
    try:
        c.create_folder("Work")
        for folder in ("INBOX", "Work"):
            for i in range(3):
                c.append(folder, f"Subject: {folder} {i}\r\n\r\nbody {i}\r\n".encode())
    finally:
        c.logout()
    return su, sp


def change_inbox(src: DovecotServer, user: str, pw: str) -> None:
    c = src.connect(user, pw)
    try:
        c.select_folder("INBOX")
        c.add_flags(sorted(c.search("ALL"))[:1], ["\\Flagged"])
    finally:
        c.logout()


@pytest.mark.parametrize("disable,mode", [
    ("", "qresync"),
    ('disable_capabilities = ["QRESYNC"]', "condstore"),
    ('disable_capabilities = ["CONDSTORE"]', "full-scan"),
])
def test_switch_status_and_report_show_the_mode(
        disable: str, mode: str, tmp_project: Path, dovecot_src: DovecotServer,
        dovecot_dst: DovecotServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_out, "width", 200)  # one table row per line, no folding
    su, sp = project(tmp_project, dovecot_src, dovecot_dst, disable)
    row = json.loads(cli(tmp_project, "status", "--json").stdout)[0]
    assert row["sync_modes"] == {}  # no folder pair yet

    cli(tmp_project, "-q", "sync")
    row = json.loads(cli(tmp_project, "status", "--json").stdout)[0]
    assert row["sync_modes"] == {"full-scan": 2}  # a first pass reads every folder in full

    change_inbox(dovecot_src, su, sp)
    cli(tmp_project, "-q", "sync")
    row = json.loads(cli(tmp_project, "status", "--json").stdout)[0]
    # only INBOX changed; "Work" keeps the mode of its last read unless no modseq exists
    want = {mode: 2} if mode == "full-scan" else {mode: 1, "full-scan": 1}
    assert row["sync_modes"] == want, row

    table = cli(tmp_project, "status").stdout
    assert "delta modes" in table and modes_text(want) in table, table

    out = tmp_project / "report.json"
    cli(tmp_project, "report", "--format", "json", "-o", str(out))
    mb = json.loads(out.read_text())["mailboxes"][0]
    assert {f["folder"]: f["sync_mode"] for f in mb["folders"]} == {
        "INBOX": mode, "Work": "full-scan"}
    assert mb["sync_modes"] == want
    html = tmp_project / "report.html"
    cli(tmp_project, "report", "--format", "html", "-o", str(html))
    text = html.read_text()
    assert "<th>Delta mode</th>" in text and f'<td class="mode">{mode}</td>' in text


def test_modes_text() -> None:
    assert modes_text({"full-scan": 1, "qresync": 3, "not yet": 2}) == \
        "qresync 3, full-scan 1, not yet 2"
    assert modes_text({}) == "-"
