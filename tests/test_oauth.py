"""OAuth2 logins: token cache, providers against the FAKE IdP, XOAUTH2/OAUTHBEARER on a real
Dovecot, a token that expires in the middle of a pass, preflight in plain words."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from harness import Bed, make_message
from mxshift.config import parse_project
from mxshift.engine.journal import Hooks
from mxshift.errors import ConfigError
from mxshift.oauth import OAuthSettings, Token, TokenCache, TokenError, token_cache
from mxshift.oauth.command import CommandTokens
from mxshift.oauth.google import GoogleTokens
from mxshift.oauth.microsoft import MicrosoftTokens, explain_aadsts
from mxshift.secrets import SecretRef
from mxshift.store.auth import Credentials
from mxshift.store.imap import ImapStore
from mxshift.store.throttle import ThrottleSettings


# -- the cache (pure) -----------------------------------------------------------------------
class Counting:
    kind = "static"

    def __init__(self, lifetime: float, now: list[float]) -> None:
        self.lifetime, self.now, self.n = lifetime, now, 0

    def fetch(self, user: str) -> Token:
        self.n += 1
        return Token(f"{user}-{self.n}", self.now[0] + self.lifetime)

    def problems(self, token: Token) -> list[str]:
        return []


def test_cache_reuses_a_token_until_the_margin_then_refreshes_before_expiry() -> None:
    now = [1000.0]
    cache = TokenCache(Counting(3600, now), margin=300, clock=lambda: now[0])
    assert cache.token("Alice@x") == "Alice@x-1"
    now[0] += 3000
    assert cache.token("alice@x") == "Alice@x-1"   # per user, case-insensitively
    now[0] += 301                                  # 299 s left: inside the margin
    assert cache.token("alice@x") == "alice@x-2"
    assert cache.token("bob@x") == "bob@x-3"
    assert cache.token("bob@x", fresh=True) == "bob@x-4"
    assert cache.fetches == 4


def test_invalidate_leaves_a_token_another_thread_already_replaced() -> None:
    now = [0.0]
    cache = TokenCache(Counting(3600, now), clock=lambda: now[0])
    first = cache.token("u")
    second = cache.token("u", fresh=True)
    cache.invalidate("u", first)                   # stale: keeps the newer one
    assert cache.token("u") == second
    cache.invalidate("u", second)
    assert cache.token("u") != second


def test_token_repr_never_shows_the_token() -> None:
    assert "sekrit" not in repr(Token("sekrit", 1.0))
    assert "sekrit" not in repr(Credentials("u", "sekrit", mechanism="xoauth2"))


# -- providers without a server -------------------------------------------------------------
def test_command_provider_passes_the_user_and_reads_expiry(tmp_path: Path) -> None:
    script = tmp_path / "tok.py"
    script.write_text("import os, sys\n"
                      "if sys.argv[1] == 'bad@x':\n"
                      "    print('no such user in vault', file=sys.stderr); sys.exit(3)\n"
                      "print('tok-' + sys.argv[1] + '-' + os.environ['MXSHIFT_USER'])\n"
                      "print('expires_in=120')\n")
    provider = CommandTokens((sys.executable, str(script)))
    token = provider.fetch("a@x")
    assert token.value == "tok-a@x-a@x"
    assert 100 < token.expires_at - time.time() <= 120
    with pytest.raises(TokenError, match="exit 3.*no such user in vault"):
        provider.fetch("bad@x")
    with pytest.raises(TokenError, match="not found"):
        CommandTokens(("/nonexistent/tokencmd",)).fetch("a@x")


def test_aadsts_codes_in_plain_words() -> None:
    assert "no IMAP.AccessAsApp permission in tenant T1" in explain_aadsts(
        {"error": "invalid_grant", "error_codes": [65001]}, tenant="T1", client="C")
    assert "client secret of app C is wrong" in explain_aadsts(
        {"error_codes": [7000215]}, tenant="T1", client="C")
    other = explain_aadsts({"error": "x", "error_description": "AADSTS1: odd\nTrace"},
                           tenant="T1", client="C")
    assert other.endswith("AADSTS1: odd")


# -- config ---------------------------------------------------------------------------------
def _cfg(text: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    return parse_project(text, path="mxshift.toml", directory=tmp_path)


def test_config_oauth_tables(tmp_path: Path) -> None:
    cfg = _cfg('[source]\nhost = "a"\n[destination]\nprovider = "microsoft365"\n'
               '[destination.oauth]\ntenant_id = "t"\nclient_id = "c"\n'
               'client_secret = "env:MS_SECRET"\n[destination.throttle]\nmax_total_wait = 600\n'
               'bytes_per_day = "500MB"\n', tmp_path)
    d = cfg.destination
    assert (d.host, d.port, d.security, d.auth) == ("outlook.office365.com", 993, "tls",
                                                    "xoauth2")
    assert d.oauth is not None and d.oauth.token_provider == "microsoft"
    assert d.oauth.client_secret == SecretRef("env", "MS_SECRET")
    assert d.max_message_size == 35 * 1024 * 1024 and d.max_connections == 8
    assert d.throttle.max_total_wait == 600 and d.throttle.bytes_per_day == 500 * 1024 ** 2
    with pytest.raises(ConfigError, match=r"destination.oauth.*client_secret.*required"):
        _cfg('[source]\nhost = "a"\n[destination]\nprovider = "microsoft365"\n'
             '[destination.oauth]\ntenant_id = "t"\nclient_id = "c"\n', tmp_path)
    with pytest.raises(ConfigError, match=r"auth.*add a \[destination.oauth\]"):
        _cfg('[source]\nhost = "a"\n[destination]\nhost = "b"\nauth = "xoauth2"\n', tmp_path)


# -- against the FAKE IdP and a real Dovecot -------------------------------------------------
def _google_key(idp, tmp_path: Path, *, scopes=("https://mail.google.com/",)) -> Path:  # type: ignore[no-untyped-def]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    email = f"mig-{len(idp.google)}@proj.iam.gserviceaccount.com"
    idp.add_google_account(email, key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        delegated_scopes=scopes)
    path = tmp_path / f"sa-{len(idp.google)}.json"
    path.write_text(json.dumps({"type": "service_account", "project_id": "proj",
                                "private_key_id": "k1", "private_key": pem,
                                "client_email": email, "client_id": "4242",
                                "token_uri": idp.google_token_uri}))
    return path


def _google_settings(idp, key: Path) -> OAuthSettings:  # type: ignore[no-untyped-def]
    return OAuthSettings(token_provider="google", service_account=SecretRef("file", str(key)),
                         ca_file=idp.ca_file)


def test_google_service_account_logs_in_with_xoauth2_and_oauthbearer(
        dovecot_oauth, fake_idp, tmp_path) -> None:
    user, _pw = dovecot_oauth.new_user("g")
    cache = token_cache(_google_settings(fake_idp, _google_key(fake_idp, tmp_path)))
    for mech in ("xoauth2", "oauthbearer"):
        store = ImapStore.connect(host=dovecot_oauth.host, port=dovecot_oauth.port,
                                  security="none",
                                  credentials=Credentials(user, mechanism=mech, tokens=cache))
        assert any(f.name == "INBOX" for f in store.list_folders())
        store.close()
    assert fake_idp.issued[user] == 1      # one token, cached, served both logins
    assert f"user=<{user}>, method=OAUTHBEARER" in dovecot_oauth.log_tail(400)


def test_google_without_delegation_says_what_to_fix(fake_idp, tmp_path) -> None:
    key = _google_key(fake_idp, tmp_path, scopes=("https://www.googleapis.com/auth/gmail.readonly",))
    provider = GoogleTokens(key_json=key.read_text(), ca_file=fake_idp.ca_file)
    with pytest.raises(TokenError, match="Domain-wide delegation"):
        provider.fetch("someone@example.test")


def test_microsoft_msal_client_credentials_against_the_fake_entra(fake_idp, dovecot_oauth) -> None:
    user, _pw = dovecot_oauth.new_user("m")
    fake_idp.add_microsoft_app("tenant-a", "app-1", "s3cret", app_user=user)
    provider = MicrosoftTokens(tenant="tenant-a", client_id="app-1", client_secret="s3cret",
                               authority=fake_idp.authority, ca_file=fake_idp.ca_file)
    cache = TokenCache(provider)
    store = ImapStore.connect(host=dovecot_oauth.host, port=dovecot_oauth.port,
                              security="none",
                              credentials=Credentials(user, mechanism="xoauth2", tokens=cache))
    store.close()
    token = cache.peek(user)
    assert token is not None and provider.problems(token) == []
    assert fake_idp.issued["microsoft:app-1"] == 1
    cache.token(user, fresh=True)          # MSAL's own cache must not hand back the old one
    assert fake_idp.issued["microsoft:app-1"] == 2

    wrong = MicrosoftTokens(tenant="tenant-a", client_id="app-1", client_secret="nope",
                            authority=fake_idp.authority, ca_file=fake_idp.ca_file)
    with pytest.raises(TokenError, match=r"client secret of app app-1 is wrong \(AADSTS7000215\)"):
        wrong.fetch(user)
    fake_idp.add_microsoft_app("tenant-b", "app-2", "s", consent=False)
    unconsented = MicrosoftTokens(tenant="tenant-b", client_id="app-2", client_secret="s",
                                  authority=fake_idp.authority, ca_file=fake_idp.ca_file)
    with pytest.raises(TokenError,
                       match="the app has no IMAP.AccessAsApp permission in tenant tenant-b"):
        unconsented.fetch(user)


@pytest.mark.parametrize("case, expected", [
    # a token without the IMAP role: Entra issues it, the IMAP server refuses it
    ("no-role", ["the app has no IMAP.AccessAsApp permission in tenant tenant-c",
                 "roles: Mail.Read"]),
    # no token at all: Entra refuses the secret
    ("bad-secret", ["client secret of app app-no-role-bad-secret is wrong (AADSTS7000215)"]),
])
def test_preflight_says_why_oauth_fails(fake_idp, dovecot_oauth, dovecot_src, tmp_path,
                                        case, expected) -> None:
    from mxshift.preflight import preflight
    from mxshift.project import import_mailboxes, open_project

    su, sp = dovecot_src.new_user()
    du, _ = dovecot_oauth.new_user("p")
    app = "app-no-role" if case == "no-role" else "app-no-role-bad-secret"
    fake_idp.add_microsoft_app("tenant-c", app, "pw", roles=("Mail.Read",))
    proj_dir = tmp_path / "p"
    proj_dir.mkdir()
    (proj_dir / "secret").write_text("pw\n" if case == "no-role" else "wrong\n")
    (proj_dir / "mxshift.toml").write_text(
        f'[source]\nhost = "127.0.0.1"\nport = {dovecot_src.port}\nsecurity = "none"\n\n'
        f'[destination]\nhost = "127.0.0.1"\nport = {dovecot_oauth.port}\nsecurity = "none"\n'
        f'auth = "xoauth2"\n[destination.oauth]\ntoken_provider = "microsoft"\n'
        f'tenant_id = "tenant-c"\nclient_id = "{app}"\nclient_secret = "file:secret"\n'
        f'authority = "{fake_idp.authority}"\nca_file = "{fake_idp.ca_file}"\n')
    (proj_dir / "users.csv").write_text(
        "source_user,source_password,destination_user,destination_password\n"
        f"{su},{sp},{du},\n")  # OAuth2 side: no password cell needed
    import_mailboxes(proj_dir, proj_dir / "users.csv")
    proj = open_project(proj_dir)
    try:
        [result] = preflight(proj)
    finally:
        proj.close()
    assert not result.ready
    [blocker] = result.blockers
    assert blocker.startswith("destination: ")
    for words in expected:
        assert words in blocker
    assert "wrong\n" not in blocker and "'pw'" not in blocker   # never the secret
    assert result.source.ok


class ExpireMidPass(Hooks):
    """At the n-th checkpoint: every token expires at the IdP and the server drops the
    session (as Microsoft does when a token runs out), once."""

    def __init__(self, idp, server, user: str, at: int) -> None:  # type: ignore[no-untyped-def]
        self.idp, self.server, self.user, self.at, self.n = idp, server, user, at, 0
        self.fired = False

    def checkpoint(self, label: str) -> None:
        self.n += 1
        if self.n == self.at and not self.fired:
            self.fired = True
            assert self.idp.expire_all() > 0
            self.server.doveadm("kick", self.user)
            deadline = time.monotonic() + 10
            while self.server.connection_count(self.user) and time.monotonic() < deadline:
                time.sleep(0.05)


def test_token_expiring_mid_pass_is_refreshed_and_the_pass_is_exact(
        dovecot_src, dovecot_oauth, fake_idp, tmp_path) -> None:
    bed = Bed.make(dovecot_src, dovecot_oauth, tmp_path / "bed")
    try:
        bed.put(("INBOX",), [make_message(i) for i in range(12)])
        bed.create("Work")
        bed.put(("Work",), [make_message(100 + i) for i in range(6)], flags=("\\Seen",))
        cache = token_cache(_google_settings(fake_idp, _google_key(fake_idp, tmp_path)))
        stores: list[ImapStore] = []

        def destination() -> ImapStore:
            store = ImapStore.connect(host=dovecot_oauth.host, port=dovecot_oauth.port,
                                      security="none", credentials=Credentials(
                                          bed.du, mechanism="xoauth2", tokens=cache),
                                      throttle_settings=ThrottleSettings())
            stores.append(store)
            return store

        from mxshift.engine.mailbox_pass import MailboxPass
        from mxshift.engine.settings import PassSettings

        hooks = ExpireMidPass(fake_idp, dovecot_oauth, bed.du, at=6)
        refused_before = fake_idp.refused_introspections
        result = MailboxPass(bed.db, bed.mailbox_id,  # type: ignore[arg-type]
                             source=lambda: bed.store(dovecot_src, bed.su, bed.sp),
                             destination=destination,
                             settings=PassSettings(batch_messages=2), hooks=hooks).run()
        assert hooks.fired
        assert result.status == "ok", result.error
        assert result.copied == 18
        assert bed.differences() == []
        assert fake_idp.issued[bed.du] == 2                    # the refresh, at the IdP
        assert fake_idp.refused_introspections > refused_before  # the expired one refused
        assert sum(s.reconnects for s in stores) == 1
        assert bed.run().copied == 0                           # nothing to redo
    finally:
        bed.close()
