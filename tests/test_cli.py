from pathlib import Path
from typer.testing import CliRunner
from mxshift.cli import app

def test_proto(dovecot_src, dovecot_dst, tmp_path, monkeypatch):
    s1, sp1 = dovecot_src.new_user("s"); s2, sp2 = dovecot_src.new_user("s")
    d1, dp1 = dovecot_dst.new_user("d"); d2, dp2 = dovecot_dst.new_user("d")
    d = tmp_path / "p"; d.mkdir()
    (d / "mxshift.toml").write_text(f'[source]\nhost="127.0.0.1"\nport={dovecot_src.port}\nsecurity="none"\n[destination]\nhost="127.0.0.1"\nport={dovecot_dst.port}\nsecurity="none"\n')
    monkeypatch.setenv("PW_D1", dp1)
    (d / "pw").write_text(sp2 + "\n")
    (d / "m.csv").write_text(f"source_user,source_password,destination_user,destination_password\n{s1},{sp1},{d1},env:PW_D1\n{s2},file:pw,{d2},wrongpass\n")
    r = CliRunner()
    for args in (["mailboxes", "import", str(d / "m.csv")], ["preflight"], ["preflight", "--json"], ["-q", "sync"], ["sync"], ["status"]):
        res = r.invoke(app, ["-C", str(d), *args])
        print(args, res.exit_code, res.exception)
        print(res.stdout)
        print("ERR:", res.stderr)
