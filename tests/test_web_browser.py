"""The dashboard end to end (issue 7): a real ``mxshift serve`` process, a real headless
Chromium (Debian's, driven by Playwright), a project that really migrated mail between the
test Dovecots. Screenshots land in the test's tmp dir (``shots/``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx2
import pytest

from mxshift.testbed.corpus import CorpusSpec
from mxshift.testbed.dovecot import DovecotServer, free_port
from test_cli import Proj, cli, fill, imported, ok, simple_message

CHROMIUM = "/usr/bin/chromium"
ADMIN_PW = "browser-admin-pw"
VIEW_TOKEN = "browser-view-token"
BIG = 2500  # messages put on s2's source before the pass started from the browser

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                 reason="Debian chromium not installed "
                                        "(scripts/install-system-deps installs it)")]

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run",
               "--disable-dev-shm-usage"]


def _put(server: DovecotServer, user: str, password: str, messages: list[bytes]) -> None:
    c = server.connect(user, password)
    try:
        for raw in messages:
            c.append("INBOX", raw)
    finally:
        c.logout()


@pytest.fixture
def served(tmp_project: Path, dovecot_src: DovecotServer, dovecot_dst: DovecotServer,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Proj, str]]:
    """A migrated project (s1: 3 messages, one then lost on the destination and verified
    missing; s2: 1 message, then BIG more on the source not yet synced) and ``mxshift
    serve`` over it."""
    p = imported(tmp_project, dovecot_src, dovecot_dst, monkeypatch)
    with (p.dir / "mxshift.toml").open("a", encoding="utf-8") as f:
        f.write("\n[options]\nbatch_messages = 25\n")  # commits often: progress is visible
        # ... and lasts a few of the page's 1 s polls: without a rate limit the copy of
        # 2,500 small messages now ends between two polls
        f.write("\n[destination.throttle]\nmessages_per_second = 600\n")
    _put(dovecot_src, p.s1, p.sp1, [simple_message(i) for i in range(3)])
    _put(dovecot_src, p.s2, p.sp2, [simple_message(10)])
    ok(cli(p.dir, "-q", "sync"))
    c = dovecot_dst.connect(p.d1, p.dp1)
    c.select_folder("INBOX")
    c.delete_messages(sorted(c.search("ALL"))[:1])
    c.expunge()
    c.logout()
    ok(cli(p.dir, "verify"), 2)
    fill(dovecot_src, p.s2, CorpusSpec(seed=7, messages=BIG, folders=3, size_profile="small"))

    port = free_port()
    env = {**os.environ, "MXSHIFT_ADMIN_PASSWORD": ADMIN_PW,
           "MXSHIFT_READONLY_TOKEN": VIEW_TOKEN}
    log = (p.dir / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "mxshift", "-C", str(p.dir), "serve",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx2.get(f"{url}/login", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert proc.poll() is None, (p.dir / "serve.log").read_text()
            assert time.monotonic() < deadline, "mxshift serve did not answer in 30 s"
            time.sleep(0.1)
        yield p, url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    output = (p.dir / "serve.log").read_text()
    assert f"dashboard: {url}/" in output
    for secret in [*p.passwords, ADMIN_PW, VIEW_TOKEN]:
        assert secret not in output  # chosen by env: not echoed, and no access log


def test_dashboard_in_a_real_browser(served: tuple[Proj, str], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    p, url = served
    shots = tmp_path / "shots"
    shots.mkdir()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)

            # log in
            page.goto(url + "/")
            assert page.url.startswith(url + "/login")
            page.screenshot(path=str(shots / "1-login.png"))
            page.fill("input[name=secret]", "not the password")
            page.click("button[type=submit]")
            expect(page.locator(".error")).to_contain_text("wrong password or token")
            page.fill("input[name=secret]", ADMIN_PW)
            page.click("button[type=submit]")
            expect(page.locator(".stats")).to_be_visible()
            assert page.url == url + "/"
            expect(page.locator(".badge.admin")).to_be_visible()
            expect(page.locator("text=What blocks completion")).to_be_visible()
            page.screenshot(path=str(shots / "2-overview.png"), full_page=True)

            # the mailbox table with the right counts
            page.click("nav >> text=Mailboxes")
            row1 = page.locator(f"tr:has(a:text-is('{p.s1}'))")
            row2 = page.locator(f"tr:has(a:text-is('{p.s2}'))")
            expect(row1.locator("[data-k=messages_on_destination]")).to_have_text("3")
            expect(row2.locator("[data-k=messages_on_destination]")).to_have_text("1")
            expect(row1.locator("[data-k=status]")).to_have_text("synced")
            page.screenshot(path=str(shots / "3-mailboxes.png"), full_page=True)

            # start a pass for s2 only and watch its progress change without a reload
            row2.locator("input[name=mailbox]").check()
            page.click("#start-pass")
            expect(page.locator(".notice")).to_contain_text(f"pass started for {p.s2}")
            page.evaluate("window.__noReload = true")
            cell = row2.locator("[data-k=messages_on_destination]")
            seen: list[int] = []
            progress_texts: set[str] = set()
            mid_shot = False
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                seen.append(int(cell.inner_text()))
                text = row2.locator("[data-k=progress]").inner_text()
                if text:
                    progress_texts.add(text)
                    if not mid_shot and 1 < seen[-1] < BIG + 1 and " 0 copied" not in text:
                        page.screenshot(path=str(shots / "4-pass-running.png"), full_page=True)
                        mid_shot = True
                if seen[-1] == BIG + 1 and not text:
                    break
                time.sleep(0.1)
            assert seen[-1] == BIG + 1, seen[-20:]
            values = sorted(set(seen))
            assert any(1 < v < BIG + 1 for v in values), values  # seen mid-pass
            assert seen == sorted(seen)  # only ever grows
            assert page.evaluate("window.__noReload") is True  # no full reload happened
            live = [int(m.group(1)) for t in progress_texts
                    if (m := re.search(r"(\d+) copied", t))]
            assert any(0 < n < BIG for n in live), progress_texts  # the pass row's counter
            expect(row1.locator("[data-k=messages_on_destination]")).to_have_text("3")
            page.reload()
            expect(page.locator("table.compact")).to_contain_text("2500 copied")
            page.screenshot(path=str(shots / "5-pass-done.png"), full_page=True)

            # open s1 and accept its finding
            page.click(f"a:text-is('{p.s1}')")
            expect(page.locator("h1")).to_have_text(p.s1)
            finding = page.locator("tr:has-text('cli test 0')").first
            expect(finding.locator(".pill.open")).to_be_visible()
            page.screenshot(path=str(shots / "6-mailbox.png"), full_page=True)
            finding.locator("input[name=finding]").check()
            page.fill("input[name=reason]", "the customer deleted it on purpose")
            page.click("text=Accept ticked findings")
            expect(page.locator(".notice")).to_contain_text("1 finding(s) accepted")
            finding = page.locator("tr:has-text('cli test 0')").first
            expect(finding.locator(".pill.accepted")).to_be_visible()
            expect(finding).to_contain_text("the customer deleted it on purpose")
            page.screenshot(path=str(shots / "7-accepted.png"), full_page=True)

            # the customer's read-only link: sees everything, can do nothing
            viewer = browser.new_page(viewport={"width": 1280, "height": 900})
            viewer.goto(f"{url}/view?token={VIEW_TOKEN}")
            assert viewer.url == url + "/"
            expect(viewer.locator(".badge.viewer")).to_be_visible()
            viewer.goto(url + "/mailboxes")
            expect(viewer.locator(f"tr:has(a:text-is('{p.s2}')) "
                                  "[data-k=messages_on_destination]")).to_have_text(str(BIG + 1))
            assert viewer.locator("#start-pass").count() == 0
            assert viewer.locator("input[name=mailbox]").count() == 0
            csrf = viewer.locator("input[name=csrf]").first.input_value()
            status = viewer.evaluate(
                """async (csrf) => (await fetch('/actions/sync', {method: 'POST',
                   headers: {'content-type': 'application/x-www-form-urlencoded'},
                   body: 'csrf=' + encodeURIComponent(csrf)})).status""", csrf)
            assert status == 403
            viewer.goto(url + "/cutover")
            expect(viewer.locator("body")).not_to_contain_text("Cut over now")
            viewer.screenshot(path=str(shots / "8-readonly.png"), full_page=True)

            # useful without JavaScript: log in, read the table, act through plain forms
            nojs = browser.new_context(java_script_enabled=False).new_page()
            nojs.goto(url + "/mailboxes")
            nojs.fill("input[name=secret]", ADMIN_PW)
            nojs.click("button[type=submit]")
            expect(nojs.locator(f"tr:has(a:text-is('{p.s2}')) "
                                "[data-k=messages_on_destination]")).to_have_text(str(BIG + 1))
            nojs.locator(f"tr:has(a:text-is('{p.s1}')) input[name=mailbox]").check()
            nojs.click("text=Verify")
            expect(nojs.locator(".notice")).to_contain_text(f"verification started for {p.s1}")
        finally:
            browser.close()
    jobs = httpx2.get(f"{url}/jobs.json",
                      headers={"authorization": f"Bearer {ADMIN_PW}"}).json()["jobs"]
    # newest first: the no-JS verify, the pass; the viewer's attempt started nothing
    assert [j["kind"] for j in jobs] == ["verify", "sync"]
    assert re.search(rf"{re.escape(p.s2)}: delta ok, {BIG} copied", jobs[1]["message"])
    if os.environ.get("MXSHIFT_KEEP_SHOTS"):
        shutil.copytree(shots, os.environ["MXSHIFT_KEEP_SHOTS"], dirs_exist_ok=True)
