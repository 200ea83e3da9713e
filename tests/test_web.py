"""The dashboard in-process (issue 7): pages, JSON twins, login, CSRF, actions, over a
project that really migrated mail between the test Dovecots."""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from mxshift.project import OpenProject, open_project
from mxshift.state.dns_models import DnsCheck
from mxshift.state.models import Pass
from mxshift.state.schedule_models import Setting, StrayMessage
from mxshift.state.verify_models import Acceptance
from mxshift.testbed.corpus import CorpusSpec
from mxshift.testbed.dovecot import DovecotServer
from mxshift.web import auth, reads
from mxshift.web.app import create_app, duration, folder_name, human_size
from mxshift.web.serve import base_url
from test_cli import Proj, cli, fill, imported, ok, simple_message

ADMIN_PW = "admin-pw-for-tests"
VIEW_TOKEN = "view-token-for-tests"


@dataclass
class Site:
    p: Proj
    proj: OpenProject
    client: TestClient
    ids: dict[str, int]       # source user -> mailbox id
    missing_finding: int      # an open "missing" finding of s1


def _put(server: DovecotServer, user: str, password: str, messages: list[bytes]) -> None:
    c = server.connect(user, password)
    try:
        for raw in messages:
            c.append("INBOX", raw)
    finally:
        c.logout()


@pytest.fixture
def site(tmp_project: Path, dovecot_src: DovecotServer, dovecot_dst: DovecotServer,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    p = imported(tmp_project, dovecot_src, dovecot_dst, monkeypatch)
    _put(dovecot_src, p.s1, p.sp1, [simple_message(i) for i in range(3)])
    _put(dovecot_src, p.s2, p.sp2, [simple_message(10)])
    ok(cli(p.dir, "-q", "sync"))
    c = dovecot_dst.connect(p.d1, p.dp1)  # lose one message on the destination
    c.select_folder("INBOX")
    c.delete_messages(sorted(c.search("ALL"))[:1])
    c.expunge()
    c.logout()
    ok(cli(p.dir, "verify"), 2)
    proj = open_project(p.dir)
    auth.ensure_credentials(proj.db, admin_password=ADMIN_PW, readonly_token=VIEW_TOKEN)
    with TestClient(create_app(proj), follow_redirects=False) as client:
        ids = {m.source_user: m.id for m in proj.mailboxes()}
        detail = client.get(f"/mailboxes/{ids[p.s1]}.json",
                            headers={"authorization": f"Bearer {ADMIN_PW}"}).json()
        [finding] = [f for f in detail["verification"]["findings"] if f["open"]]
        yield Site(p, proj, client, ids, finding["id"])
    proj.close()


def login(client: TestClient, secret: str = ADMIN_PW) -> str:
    """Log in through the form; returns the CSRF token of the session."""
    r = client.post("/login", data={"secret": secret, "next": "/mailboxes"})
    assert r.status_code == 303 and r.headers["location"] == "/mailboxes"
    page = client.get("/mailboxes").text
    m = re.search(r'name="csrf" value="([^"]*)"', page)
    assert m is not None
    return m.group(1)


def wait_job(client: TestClient, job_id: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = {j["id"]: j for j in client.get("/jobs.json").json()["jobs"]}
        if jobs[job_id]["status"] != "running":
            return jobs[job_id]
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still running after {timeout}s")


# -- access -------------------------------------------------------------------------------------
def test_reading_needs_login_and_viewer_cannot_act(site: Site) -> None:
    c = site.client
    r = c.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/"
    assert c.get("/mailboxes.json").status_code == 401
    assert c.get("/mailboxes.json", headers={"authorization": "Bearer nope"}).status_code == 401
    r = c.post("/login", data={"secret": "wrong", "next": "/"})
    assert r.status_code == 401 and "wrong password or token" in r.text
    assert c.post("/actions/sync", data={}).status_code == 303  # to the login page

    # the customer's link: reading works, acting does not (form or API)
    assert c.get("/view", params={"token": ADMIN_PW}).status_code == 403  # not a viewer token
    r = c.get("/view", params={"token": VIEW_TOKEN})
    assert r.status_code == 303 and r.headers["location"] == "/"
    page = c.get("/mailboxes").text
    assert "read-only" in page and "Start a pass" not in page and 'name="csrf"' in page
    csrf = re.search(r'name="csrf" value="([^"]*)"', page).group(1)  # type: ignore[union-attr]
    r = c.post("/actions/sync", data={"csrf": csrf})
    assert r.status_code == 403 and "read-only access" in r.text
    r = c.post(f"/mailboxes/{site.ids[site.p.s1]}/accept",
               data={"csrf": csrf, "finding": str(site.missing_finding), "reason": "x"})
    assert r.status_code == 403
    viewer = {"authorization": f"Bearer {VIEW_TOKEN}"}
    fresh = TestClient(c.app)
    assert fresh.get("/mailboxes.json", headers=viewer).status_code == 200
    r = fresh.post("/actions/verify", headers=viewer)
    assert r.status_code == 403 and r.json() == {"error": "read-only access: log in as admin "
                                                          "to act"}
    with site.proj.db.session() as s:
        assert s.scalar(select(Acceptance)) is None
        assert len(list(s.scalars(select(Pass)))) == 2  # only the fixture's sync


def test_forms_need_the_csrf_token(site: Site) -> None:
    c = site.client
    csrf = login(c)
    for bad in ({}, {"csrf": "forged"}):
        r = c.post("/actions/sync", data=bad)
        assert r.status_code == 403 and "CSRF" in r.text
    r = c.post("/logout")
    assert r.status_code == 303
    assert c.post("/actions/sync", data={"csrf": csrf}).status_code == 303  # to login
    assert c.get("/mailboxes.json").status_code == 401  # the session is gone


def test_credentials_are_stored_hashed_and_reset(site: Site) -> None:
    with site.proj.db.session() as s:
        values = {r.key: r.value for r in s.scalars(select(Setting))}
    stored = values[auth.ADMIN_KEY] + values[auth.READONLY_KEY]
    assert ADMIN_PW not in stored and VIEW_TOKEN not in stored
    assert values[auth.ADMIN_KEY].startswith("scrypt$")
    assert auth.verify_secret(ADMIN_PW, values[auth.ADMIN_KEY])
    assert not auth.verify_secret(VIEW_TOKEN, values[auth.ADMIN_KEY])
    again = auth.ensure_credentials(site.proj.db)
    assert again.admin_password is None and again.readonly_token is None  # kept
    new = auth.ensure_credentials(site.proj.db, reset=True)
    assert new.admin_password and new.readonly_token and new.admin_password != ADMIN_PW
    assert auth.Authenticator(site.proj.db).role_for(ADMIN_PW) is None
    assert auth.Authenticator(site.proj.db).role_for(new.admin_password) == "admin"


# -- pages and twins ------------------------------------------------------------------------
def test_pages_and_json_twins_show_the_migration_and_never_a_password(site: Site) -> None:
    c, p = site.client, site.p
    login(c)
    table = c.get("/mailboxes.json").json()
    rows = {r["source_user"]: r for r in table["mailboxes"]}
    # s1: 3 copied, one then lost on the destination (state still says 3: it is the journal)
    assert rows[p.s1]["messages_on_destination"] == 3 and rows[p.s1]["status"] == "synced"
    assert rows[p.s2]["messages_on_destination"] == 1
    assert rows[p.s1]["verification"] == "failed" and rows[p.s2]["verification"] == "verified"
    assert table["totals"]["messages_on_destination"] == 4
    assert table["totals"]["by_state"] == {"synced": 2}

    r = c.get("/mailboxes")
    html = r.text
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert f'href="/mailboxes/{site.ids[p.s1]}"' in html and 'href="/mailboxes.json"' in html

    only = c.get("/mailboxes.json", params={"state": "failed"}).json()
    assert only["mailboxes"] == [] and only["totals"]["mailboxes"] == 2
    by_size = c.get("/mailboxes.json", params={"sort": "messages_on_destination",
                                               "desc": "1"}).json()
    assert [r["source_user"] for r in by_size["mailboxes"]] == [p.s1, p.s2]
    asc = c.get("/mailboxes.json", params={"sort": "messages_on_destination"}).json()
    assert [r["source_user"] for r in asc["mailboxes"]] == [p.s2, p.s1]

    detail = c.get(f"/mailboxes/{site.ids[p.s1]}.json").json()
    inbox = next(f for f in detail["folders"] if f["source"] == "INBOX")
    assert inbox["on_destination"] == 3 and inbox["sync_mode"]
    assert detail["passes"][0]["copied"] == 3 and detail["passes"][0]["status"] == "ok"
    assert detail["gate"]["verified"] is False
    page = c.get(f"/mailboxes/{site.ids[p.s1]}").text
    assert "cli test 0" in page and f'value="{site.missing_finding}"' in page

    over = c.get("/index.json").json()
    assert over["totals"]["mailboxes"] == 2
    assert any(f"finding #{site.missing_finding} missing" in b
               for b in over["verification"]["blockers"])
    assert "What blocks completion" in c.get("/").text
    assert c.get("/mailboxes/999").status_code == 404
    assert c.get("/mailboxes/999.json").json() == {"error": "no mailbox 999"}

    report = c.get("/reports/report.csv")
    assert report.status_code == 200 and "cli test 0" in report.text
    assert "attachment" in report.headers["content-disposition"]

    spec = c.get("/openapi.json").json()
    for path in ("/index.json", "/mailboxes.json", "/mailboxes/{mailbox_id}.json",
                 "/actions/sync", "/actions/cutover", "/mailboxes/{mailbox_id}/accept"):
        assert path in spec["paths"], path
    assert not any(not k.endswith(".json") and k in ("/", "/mailboxes") for k in spec["paths"])

    everything = "".join(c.get(u).text for u in (
        "/", "/index.json", "/mailboxes", "/mailboxes.json", "/cutover", "/cutover.json",
        f"/mailboxes/{site.ids[p.s1]}", f"/mailboxes/{site.ids[p.s1]}.json",
        f"/mailboxes/{site.ids[p.s2]}.json", "/reports/report.json", "/jobs.json"))
    for secret in p.passwords:
        assert secret not in everything
    sealed = [m.source_secret for m in site.proj.mailboxes() if m.source_secret]
    assert sealed and not any(x in everything for x in sealed)


# -- actions -------------------------------------------------------------------------------------
def test_start_pass_and_accept_finding_from_the_forms(site: Site, dovecot_src: DovecotServer
                                                      ) -> None:
    c, p = site.client, site.p
    csrf = login(c)
    _put(dovecot_src, p.s2, p.sp2, [simple_message(20), simple_message(21)])
    t0 = time.monotonic()
    r = c.post("/actions/sync", data={"csrf": csrf, "mailbox": str(site.ids[p.s2]),
                                      "back": "/mailboxes"})
    assert r.status_code == 303 and r.headers["location"] == "/mailboxes"
    assert time.monotonic() - t0 < 2  # returns at once; the pass runs in the background
    assert "pass started for " + p.s2 in c.get("/mailboxes").text  # the notice, once
    assert "pass started for" not in c.get("/mailboxes").text
    job = c.get("/jobs.json").json()["jobs"][0]
    done = wait_job(c, job["id"])
    assert done["status"] == "ok" and f"{p.s2}: delta ok, 2 copied" in done["message"]
    rows = {r["source_user"]: r for r in c.get("/mailboxes.json").json()["mailboxes"]}
    assert rows[p.s2]["messages_on_destination"] == 3
    assert rows[p.s1]["last_pass"]["kind"] == "prestage"  # not selected: untouched
    assert rows[p.s2]["verification"] == "outdated"  # verified before this pass
    assert rows[p.s1]["verification"] == "failed"

    mb = site.ids[p.s1]
    r = c.post(f"/mailboxes/{mb}/accept", data={"csrf": csrf, "reason": "  "})
    assert r.status_code == 400
    r = c.post(f"/mailboxes/{site.ids[p.s2]}/accept",
               data={"csrf": csrf, "finding": str(site.missing_finding), "reason": "x"})
    assert r.status_code == 400 and "not in this mailbox" in r.text
    r = c.post(f"/mailboxes/{mb}/accept", data={"csrf": csrf, "reason": "deleted on purpose",
                                                "finding": str(site.missing_finding)})
    assert r.status_code == 303 and r.headers["location"] == f"/mailboxes/{mb}"
    page = c.get(f"/mailboxes/{mb}").text
    assert "1 finding(s) accepted" in page and "deleted on purpose" in page
    detail = c.get(f"/mailboxes/{mb}.json").json()
    assert detail["verification"]["verdict"] == "verified"
    assert detail["verification"]["findings"][0]["accepted"]["by"] == "dashboard admin"
    rows = {r["source_user"]: r for r in c.get("/mailboxes.json").json()["mailboxes"]}
    assert rows[p.s1]["verification"] == "verified"  # the table agrees with the gate

    # the API with a Bearer credential: no CSRF, JSON answers
    api = TestClient(c.app)
    r = api.post("/actions/verify", headers={"authorization": f"Bearer {ADMIN_PW}"})
    assert r.status_code == 202 and r.json()["job"]["kind"] == "verify"
    done = wait_job(api_client(api), r.json()["job"]["id"])
    assert done["status"] == "ok", done


def api_client(client: TestClient) -> TestClient:
    client.headers["authorization"] = f"Bearer {ADMIN_PW}"
    return client


def test_cutover_needs_confirmation_and_the_dns_gate(site: Site) -> None:
    c, proj = site.client, site.proj
    csrf = login(c)
    name = proj.config.name
    assert "Cut over now" in c.get("/cutover").text
    r = c.post("/actions/cutover", data={"csrf": csrf, "confirm": "wrong"})
    assert r.status_code == 400 and f"type the project name ({name})" in r.text

    # a project domain whose last stored DNS check failed: refused, naming it
    set_domains(site, ("acme.test",))
    with proj.db.session() as s, s.begin():
        s.add(DnsCheck(project_id=proj.project_id, domain="acme.test", provider="m365",
                       verdict="error", details=json.dumps({"checks": [
                           {"record": "MX", "verdict": "error", "found": "mx.old.test",
                            "expected": "acme-test.mail.protection.outlook.com",
                            "message": "MX still lists mx.old.test: remove it"}]})))
    page = c.get("/cutover").text
    assert "acme.test: last DNS check" in page and 'name="force"' in page
    assert "MX still lists mx.old.test" in c.get("/").text  # overview: each record's verdict
    r = c.post("/actions/cutover", data={"csrf": csrf, "confirm": name})
    assert r.status_code == 409 and "DNS is not ready" in r.text and "acme.test" in r.text
    assert c.get("/jobs.json").json()["jobs"] == []

    # DNS fixed (no domains left): the cutover runs the final pass in the background
    set_domains(site, ())
    r = c.post("/actions/cutover", data={"csrf": csrf, "confirm": name})
    assert r.status_code == 303 and r.headers["location"] == "/cutover"
    job = wait_job(c, c.get("/jobs.json").json()["jobs"][0]["id"])
    assert job["kind"] == "cutover" and job["status"] == "ok", job
    assert job["message"] == "cutover done: final pass of 2 mailbox(es)"
    over = c.get("/index.json").json()
    assert over["timeline"]["phase"] == "sweeping" and over["timeline"]["cutover_done_at"]
    assert "Cutover done" in c.get("/cutover").text
    with proj.db.session() as s:
        kinds = [p.kind for p in s.scalars(select(Pass).order_by(Pass.id))]
    assert kinds == ["prestage", "prestage", "final", "final"]

    # stray mail after the cutover: the overview's trend and the mailbox's list
    done_at = datetime.fromisoformat(over["timeline"]["cutover_done_at"])
    with proj.db.session() as s, s.begin():
        for minutes in (5, 70, 75):
            s.add(StrayMessage(mailbox_id=site.ids[site.p.s1], folder="INBOX",
                               source_uid=100 + minutes, subject=f"late {minutes}",
                               sender="x@example.test", size=1000,
                               arrived_at=done_at + timedelta(minutes=minutes)))
    over = c.get("/index.json").json()
    assert [(p["hour"], p["count"]) for p in over["strays"]][:2] == [(1, 1), (2, 2)]
    assert 'class="bars"' in c.get("/").text
    page = c.get(f"/mailboxes/{site.ids[site.p.s1]}").text
    assert "late 70" in page and "Stray mail carried over" in page


def set_domains(site: Site, domains: tuple[str, ...]) -> None:
    """As if mxshift.toml listed ``domains`` (the app's write and read-only views)."""
    for proj in (site.proj, site.client.app.state.ro):  # type: ignore[attr-defined]
        proj.config = dataclasses.replace(proj.config, domains=domains)


def test_reads_do_not_wait_for_a_writer(site: Site) -> None:
    """A writer holding the write lock (as a pass does for each commit) must not make the
    dashboard wait or fail with "database is locked"."""
    login(site.client)
    db_file = site.p.dir / "mxshift.db"
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        con = sqlite3.connect(db_file, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        con.execute("UPDATE mailbox SET messages_failed = messages_failed")
        held.set()
        release.wait(10)
        con.execute("COMMIT")
        con.close()

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(5)
        t0 = time.monotonic()
        for url in ("/mailboxes.json", f"/mailboxes/{site.ids[site.p.s1]}.json", "/index.json"):
            assert site.client.get(url).status_code == 200
        assert time.monotonic() - t0 < 3
    finally:
        release.set()
        t.join()


def test_dashboard_beside_a_sync_process_on_the_same_database(
        site: Site, dovecot_src: DovecotServer) -> None:
    """`mxshift sync` in another process while the dashboard polls and writes: neither
    side sees "database is locked", and the table follows the pass as it commits."""
    c, p = site.client, site.p
    csrf = login(c)
    fill(dovecot_src, p.s2, CorpusSpec(seed=3, messages=1000, folders=2, size_profile="small"))
    with (p.dir / "mxshift.toml").open("a", encoding="utf-8") as f:
        f.write("\n[options]\nbatch_messages = 20\n")
    proc = subprocess.Popen([sys.executable, "-m", "mxshift", "-C", str(p.dir), "-q", "sync",
                             "--mailbox", p.s2], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen: list[int] = []
    live: list[int] = []  # the running pass row's own counter (updated about once a second)
    accepted = False
    try:
        while proc.poll() is None:
            r = c.get("/mailboxes.json")
            assert r.status_code == 200, r.text
            rows = {x["source_user"]: x for x in r.json()["mailboxes"]}
            seen.append(rows[p.s2]["messages_on_destination"])
            if rows[p.s2]["running"]:
                live.append(rows[p.s2]["running"]["copied"])
            if not accepted and seen[-1] > 1:  # a write from the dashboard mid-pass
                r = c.post(f"/mailboxes/{site.ids[p.s1]}/accept", data={
                    "csrf": csrf, "finding": str(site.missing_finding), "reason": "ok"})
                assert r.status_code == 303, r.text
                accepted = True
            time.sleep(0.05)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "locked" not in err + out
    assert accepted and seen == sorted(seen)
    assert any(1 < n < 1001 for n in seen), seen  # progress seen while the pass ran
    assert any(0 < n < 1000 for n in live) and live == sorted(live), live
    final = {x["source_user"]: x for x in c.get("/mailboxes.json").json()["mailboxes"]}
    assert final[p.s2]["messages_on_destination"] == 1001


def test_serve_on_a_busy_port_is_one_line_and_makes_no_credentials(tmp_project: Path) -> None:
    (tmp_project / "mxshift.toml").write_text(
        '[source]\nhost = "127.0.0.1"\nport = 1\nsecurity = "none"\n\n'
        '[destination]\nhost = "127.0.0.1"\nport = 2\nsecurity = "none"\n', encoding="utf-8")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "mxshift", "-C", str(tmp_project), "serve",
                              "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use (choose another "
        "with --port)"]
    assert "password" not in res.stdout


# -- pure helpers ----------------------------------------------------------------------------------
def test_hashing_round_trip_and_tamper() -> None:
    h = auth.hash_secret("s3cret", n=2 ** 10)
    assert auth.verify_secret("s3cret", h) and not auth.verify_secret("s3cret!", h)
    assert h != auth.hash_secret("s3cret", n=2 ** 10)  # salted
    assert not auth.verify_secret("s3cret", "md5$abc") and not auth.verify_secret("x", "garbage")


def test_sort_totals_and_formatting() -> None:
    rows = [{"source_user": "b", "status": "synced", "messages_on_destination": 5,
             "messages_copied": 5, "bytes_copied": 10, "messages_skipped": 1, "errors": 0,
             "last_pass_at": None, "verification": None,
             "running": {"messages_per_second": 2.5, "bytes_per_second": 100}},
            {"source_user": "a", "status": "new", "messages_on_destination": 0,
             "messages_copied": 0, "bytes_copied": 0, "messages_skipped": 0, "errors": 2,
             "last_pass_at": "2026-01-01T00:00:00+00:00", "verification": "failed",
             "running": None}]
    assert [r["source_user"] for r in reads.sort_rows(rows, "source_user", False)] == ["a", "b"]
    assert [r["source_user"] for r in reads.sort_rows(rows, "last_pass_at", False)] == ["b", "a"]
    assert reads.sort_rows(rows, "source_secret", False) is rows  # not a sort key
    t = reads.totals(rows)
    assert t["by_state"] == {"new": 1, "synced": 1} and t["running_passes"] == 1
    assert t["bytes_per_second"] == 100 and t["messages_skipped"] == 1
    assert human_size(0) == "0 B" and human_size(1536) == "1.5 KiB"
    assert human_size(5 * 1024 ** 3) == "5.0 GiB"
    assert duration(3 * 86400 + 7200) == "3d 2h" and duration(125) == "2m 5s"
    assert duration(0.44) == "0.4s" and duration(3700) == "1h 1m"
    assert folder_name("Projects/D&AOk-ploiement") == "Projects/Déploiement"
    assert folder_name("R&-D") == "R&D" and folder_name("Caf\u00e9") == "Caf\u00e9"
    assert base_url("0.0.0.0", 8025) == "http://127.0.0.1:8025/"
    assert base_url("::1", 80) == "http://[::1]:80/"
