"""Preflight and sync through the project layer: TLS, admin logins, quota blockers."""

from __future__ import annotations

from pathlib import Path

from mxshift.preflight import preflight
from mxshift.project import import_mailboxes, open_project
from mxshift.sync import sync
from mxshift.testbed.corpus import CorpusSpec, generate
from mxshift.testbed.corpus_load import load


def write_project(directory: Path, source, destination, *, dest_extra: str = "",
                  rows: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "mxshift.toml").write_text(
        f'[source]\nhost = "127.0.0.1"\nport = {source.port}\nsecurity = "none"\n\n'
        f'[destination]\nhost = "127.0.0.1"\nport = {destination.port}\n{dest_extra}\n')
    (directory / "users.csv").write_text(
        "source_user,source_password,destination_user,destination_password\n"
        + "\n".join(rows) + "\n")
    import_mailboxes(directory, directory / "users.csv")


def test_quota_too_small_blocks_the_mailbox(dovecot_src, dovecot_limited, tmp_path) -> None:
    big_u, big_p = dovecot_src.new_user()
    small_u, small_p = dovecot_src.new_user()
    c = dovecot_src.connect(big_u, big_p)
    payload = b"x" * 900_000  # under the 1 MB message limit, 7 of them exceed 5 MB quota
    for i in range(7):
        c.append("INBOX", b"Subject: %d\r\nMessage-ID: <q%d@t>\r\n\r\n" % (i, i) + payload)
    c.logout()
    c = dovecot_src.connect(small_u, small_p)
    c.append("INBOX", b"Subject: s\r\n\r\nsmall\r\n")
    c.logout()
    d1, p1 = dovecot_limited.new_user()
    d2, p2 = dovecot_limited.new_user()
    write_project(tmp_path / "p", dovecot_src, dovecot_limited, dest_extra='security = "none"',
                  rows=[f"{big_u},{big_p},{d1},{p1}", f"{small_u},{small_p},{d2},{p2}"])
    proj = open_project(tmp_path / "p")
    try:
        by_user = {r.source_user: r for r in preflight(proj)}
    finally:
        proj.close()
    big, small = by_user[big_u], by_user[small_u]
    assert not big.ready
    assert any("destination quota" in b and "KiB free" in b for b in big.blockers), big.blockers
    assert big.source.messages == 7 and big.source.size and big.source.size > 6_000_000
    assert small.ready, small.blockers
    assert small.destination.quota is not None and small.destination.quota.limit_bytes == 5 * 1024 * 1024


def test_tls_destination_with_admin_login_needs_no_user_passwords(
        dovecot_src, dovecot_tls, tmp_path, monkeypatch) -> None:
    su, sp = dovecot_src.new_user()
    du, _dp = dovecot_tls.new_user()
    c = dovecot_src.connect(su, sp)
    load(c, generate(CorpusSpec(seed=3, messages=25, size_profile="small")))
    c.logout()
    admin, admin_pw = dovecot_tls.master_user
    monkeypatch.setenv("MX_ADMIN_PW", admin_pw)
    extra = (f'security = "tls"\nca_file = "{dovecot_tls.ca_file}"\n\n'
             f'[destination.admin]\nuser = "{admin}"\npassword = "env:MX_ADMIN_PW"\n'
             'mode = "sasl"\n')
    write_project(tmp_path / "p", dovecot_src, dovecot_tls, dest_extra=extra,
                  rows=[f"{su},{sp},{du},"])
    proj = open_project(tmp_path / "p")
    try:
        [report] = preflight(proj)
        assert report.ready, report.blockers
        [result] = sync(proj)
        assert result.status == "ok" and result.copied == 25, result
    finally:
        proj.close()
    # The copies are in the user's own mailbox, seen with the user's own login.
    d = dovecot_tls.connect(du)
    total = sum(d.folder_status(f[2], ["MESSAGES"])[b"MESSAGES"] for f in d.list_folders()
                if b"\\Noselect" not in f[0])
    d.logout()
    assert total == 25


def test_untrusted_certificate_blocks_in_preflight(dovecot_src, dovecot_tls, tmp_path) -> None:
    su, sp = dovecot_src.new_user()
    du, dp = dovecot_tls.new_user()
    write_project(tmp_path / "p", dovecot_src, dovecot_tls, dest_extra='security = "tls"',
                  rows=[f"{su},{sp},{du},{dp}"])
    proj = open_project(tmp_path / "p")
    try:
        [report] = preflight(proj)
    finally:
        proj.close()
    assert not report.ready
    assert any("certificate not trusted" in b for b in report.blockers), report.blockers
