"""The completion gate waits for the project's domains to pass `mxshift dns check`."""

from __future__ import annotations

import json

from mxshift.project import import_mailboxes, open_project
from mxshift.state.dns_models import DnsCheck
from mxshift.sync import sync
from mxshift.verify.gate import complete
from mxshift.verify.run import verify


def test_gate_waits_for_a_passing_dns_check(dovecot_src, dovecot_dst, tmp_path) -> None:
    su, sp = dovecot_src.new_user()
    du, dp = dovecot_dst.new_user()
    c = dovecot_src.connect(su, sp)
    c.append("INBOX", b"Subject: a\r\nMessage-ID: <g1@t>\r\n\r\nbody\r\n")
    c.logout()
    d = tmp_path / "p"
    d.mkdir()
    (d / "mxshift.toml").write_text(
        '[project]\nname = "acme"\ndomains = ["acme.test"]\n\n'
        f'[source]\nhost = "127.0.0.1"\nport = {dovecot_src.port}\nsecurity = "none"\n\n'
        f'[destination]\nhost = "127.0.0.1"\nport = {dovecot_dst.port}\nsecurity = "none"\n')
    (d / "users.csv").write_text("source_user,source_password,destination_user,"
                                 f"destination_password\n{su},{sp},{du},{dp}\n")
    import_mailboxes(d, d / "users.csv")
    proj = open_project(d)
    try:
        assert sync(proj)[0].status == "ok"
        assert verify(proj)[0].verdict == "verified"
        refused = complete(proj)
        assert not refused.completed
        assert [g.open for g in refused.mailboxes if g.mailbox == "(dns)"] == [
            ["acme.test: no DNS check yet (run `mxshift dns check`)"]]
        for verdict in ("error", "ok"):
            with proj.db.session() as s, s.begin():
                s.add(DnsCheck(project_id=proj.project_id, domain="acme.test",
                               provider="m365", verdict=verdict, details=json.dumps({})))
            result = complete(proj)
            assert result.completed is (verdict == "ok"), result
    finally:
        proj.close()
