"""verify / accept / complete / report through the command line, on real Dovecot servers."""

from __future__ import annotations

import csv
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mxshift.testbed.dovecot import DovecotServer
from test_cli import cli, imported, ok, one_line_error, simple_message


class _Cells(HTMLParser):
    """Rows of the findings tables, and all text."""

    def __init__(self) -> None:
        super().__init__()
        self.findings = 0
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "tr" and ("class", "finding") in attrs:
            self.findings += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _put(server: DovecotServer, user: str, password: str, messages: list[bytes]) -> None:
    c = server.connect(user, password)
    try:
        for raw in messages:
            c.append("INBOX", raw)
    finally:
        c.logout()


def test_gate_accept_report_and_sync_refusal(tmp_project: Path, dovecot_src: DovecotServer,
                                             dovecot_dst: DovecotServer,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    p = imported(tmp_project, dovecot_src, dovecot_dst, monkeypatch)
    _put(dovecot_src, p.s1, p.sp1, [simple_message(i) for i in range(3)])
    _put(dovecot_src, p.s2, p.sp2, [simple_message(10)])
    d = p.dir
    ok(cli(d, "-q", "sync"))

    res = ok(cli(d, "complete"), 2)
    assert f"{p.s1}: never verified" in res.stdout and f"{p.s2}: never verified" in res.stdout

    ok(cli(d, "verify"))
    ok(cli(d, "-q", "sync"))  # a pass after the verification: it no longer counts
    res = ok(cli(d, "complete"), 2)
    assert "before its last pass" in res.stdout

    c = dovecot_dst.connect(p.d1, p.dp1)
    c.select_folder("INBOX")
    c.delete_messages(sorted(c.search("ALL"))[:1])
    c.expunge()
    c.logout()

    res = ok(cli(d, "verify", "--json"), 2)
    by_user = {r["mailbox"]: r for r in json.loads(res.stdout)}
    assert by_user[p.s2]["verdict"] == "verified"
    [finding] = by_user[p.s1]["findings"]
    assert finding["kind"] == "missing" and finding["open"]
    assert finding["subject"] == "cli test 0"

    res = ok(cli(d, "complete"), 2)
    open_lines = [ln for ln in res.stdout.splitlines() if ln.startswith("  ")]
    assert len(open_lines) == 1 and f"finding #{finding['id']} missing" in open_lines[0]

    one_line_error(cli(d, "accept", "9999", "--reason", "x"))
    ok(cli(d, "accept", str(finding["id"]), "--reason", "customer deleted it on purpose",
           "--by", "ops"))
    ok(cli(d, "findings"))
    [after] = [f for r in json.loads(ok(cli(d, "findings", "--json")).stdout)
               for f in r["findings"]]
    assert not after["open"] and after["accepted"]["by"] == "ops"

    for fmt in ("html", "csv", "json"):
        ok(cli(d, "report", "--format", fmt, "-o", str(d / f"report.{fmt}")))
    parser = _Cells()
    parser.feed((d / "report.html").read_text(encoding="utf-8"))
    text = " ".join(parser.text)
    assert parser.findings == 1 and "customer deleted it on purpose" in text
    assert "<script" not in (d / "report.html").read_text() and "link" not in parser.tags
    rows = list(csv.DictReader(io.StringIO((d / "report.csv").read_text(encoding="utf-8"))))
    assert len(rows) == 1 and rows[0]["kind"] == "missing" and rows[0]["open"] == "no"
    assert rows[0]["accepted_reason"] == "customer deleted it on purpose"
    data = json.loads((d / "report.json").read_text(encoding="utf-8"))
    assert data["schema"] == "mxshift.report/1"
    assert set(data) == {"schema", "project", "summary", "mailboxes", "accepted", "timeline",
                         "cutover"}
    assert data["summary"]["mailboxes"] == 2 and data["summary"]["verified"] == 2
    assert data["summary"]["messages_copied"] == 4 and data["summary"]["open_findings"] == 0
    assert [a["reason"] for a in data["accepted"]] == ["customer deleted it on purpose"]
    assert {mb["source_user"] for mb in data["mailboxes"]} == {p.s1, p.s2}

    res = ok(cli(d, "complete"))
    assert "project complete" in res.stdout
    err = one_line_error(cli(d, "sync"))
    assert "complete" in err
    ok(cli(d, "report", "--format", "json", "-o", str(d / "after.json")))
    assert json.loads((d / "after.json").read_text())["project"]["phase"] == "complete"
