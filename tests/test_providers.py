"""Provider profiles: defaults in mxshift.toml, Gmail's virtual folders, special-use names,
and the provider's message size limit applied by a real pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Bed, make_message
from mxshift.config import parse_project
from mxshift.engine.mailbox_pass import MailboxPass
from mxshift.engine.settings import PassSettings
from mxshift.errors import ConfigError
from mxshift.mapping import MappingRules, Namespace, RemoteFolder, map_folders
from mxshift.providers import PROFILES, size_limit_reason
from mxshift.store.auth import Credentials
from mxshift.store.imap import ImapStore

MB = 1024 * 1024


def _cfg(text: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    return parse_project(text, path="mxshift.toml", directory=tmp_path)


GMAIL_SOURCE = ('[source]\nprovider = "gmail"\n[source.oauth]\nservice_account = "file:sa.json"\n'
                '[destination]\nprovider = "microsoft365"\n[destination.oauth]\n'
                'tenant_id = "t"\nclient_id = "c"\nclient_secret = "env:S"\n')


def test_profiles_fill_in_host_tls_connections_size_and_auth(tmp_path: Path) -> None:
    cfg = _cfg(GMAIL_SOURCE, tmp_path)
    s, d = cfg.source, cfg.destination
    assert (s.host, s.port, s.security, s.max_connections, s.auth) == \
        ("imap.gmail.com", 993, "tls", 15, "xoauth2")
    assert s.oauth is not None and s.oauth.token_provider == "google"
    assert s.oauth.service_account is not None and \
        s.oauth.service_account.value == str(tmp_path / "sa.json")
    assert (d.host, d.max_connections, d.max_message_size) == \
        ("outlook.office365.com", 8, 35 * MB)
    assert d.oauth is not None and d.oauth.token_provider == "microsoft"


def test_keys_written_in_the_file_win_over_the_profile(tmp_path: Path) -> None:
    cfg = _cfg('[source]\nhost = "a"\n[destination]\nprovider = "microsoft365"\n'
               'host = "outlook.office365.us"\nmax_connections = 3\nmax_message_size = "20MB"\n'
               'auth = "password"\n', tmp_path)
    d = cfg.destination
    assert (d.host, d.max_connections, d.max_message_size, d.auth, d.oauth) == \
        ("outlook.office365.us", 3, 20 * MB, "password", None)


def test_unknown_provider_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"provider.*'microsoft365'.*'gmail'"):
        _cfg('[source]\nhost = "a"\nprovider = "exchange2003"\n[destination]\nhost = "b"\n',
             tmp_path)


def test_gmail_source_does_not_copy_all_mail_important_or_starred(tmp_path: Path) -> None:
    cfg = _cfg(GMAIL_SOURCE, tmp_path)
    listing = [RemoteFolder("INBOX"), RemoteFolder("[Gmail]", frozenset({"\\Noselect"})),
               RemoteFolder("[Gmail]/All Mail", frozenset({"\\All"})),
               RemoteFolder("[Gmail]/Important", frozenset({"\\Important"})),
               RemoteFolder("[Gmail]/Starred", frozenset({"\\Flagged"})),
               RemoteFolder("[Gmail]/Sent Mail", frozenset({"\\Sent"})),
               RemoteFolder("[Gmail]/Trash", frozenset({"\\Trash"})),
               RemoteFolder("[Gmail]/Spam", frozenset({"\\Junk"})),
               RemoteFolder("Projects/Alpha")]
    m365 = [RemoteFolder("INBOX"), RemoteFolder("Sent Items"), RemoteFolder("Deleted Items"),
            RemoteFolder("Junk Email"), RemoteFolder("Drafts")]
    rules = MappingRules(include=cfg.folders.include, exclude=cfg.folders.exclude)
    result = map_folders(listing, Namespace("", "/"), m365, Namespace("", "/"), rules)
    excluded = {name for name, _why in result.excluded}
    assert {"[Gmail]/All Mail", "[Gmail]/Important", "[Gmail]/Starred"} <= excluded
    by_source = {m.source: m.destination for m in result.mappings if m.source}
    assert by_source["[Gmail]/Sent Mail"] == "Sent Items"
    assert by_source["[Gmail]/Trash"] == "Deleted Items"
    assert by_source["[Gmail]/Spam"] == "Junk Email"
    assert by_source["Projects/Alpha"] == "Projects/Alpha"


@pytest.mark.parametrize("provider", ["microsoft365", "gmail"])
def test_profile_special_use_names_are_recognised_by_the_folder_mapping(provider: str) -> None:
    names = PROFILES[provider].special_use
    src = [RemoteFolder(n) for _role, n in names]
    result = map_folders(src, Namespace("", "/"), [], Namespace("", "/"))
    roles = {m.source: m.role for m in result.mappings if m.source}
    assert roles == {n: role for role, n in names}


def test_size_limit_reason_names_the_provider() -> None:
    p = PROFILES["microsoft365"]
    assert size_limit_reason(p, 35 * MB) is None
    reason = size_limit_reason(p, 36 * MB)
    assert reason is not None and "35 MB" in reason and "Microsoft 365" in reason
    assert size_limit_reason(None, 10**9) is None


def test_a_message_over_the_providers_limit_is_skipped_with_the_reason(
        dovecot_src, dovecot_dst, tmp_path) -> None:
    bed = Bed.make(dovecot_src, dovecot_dst, tmp_path / "bed")
    try:
        bed.put(("INBOX",), [make_message(1), make_message(2, body="x" * 6000)])
        result = MailboxPass(
            bed.db, bed.mailbox_id,  # type: ignore[arg-type]
            source=lambda: bed.store(dovecot_src, bed.su, bed.sp),
            destination=lambda: ImapStore.connect(
                host=dovecot_dst.host, port=dovecot_dst.port, security="none",
                credentials=Credentials(bed.du, bed.dp), max_message_size=4000),
            settings=PassSettings()).run()
        assert result.status == "ok", result.error
        assert (result.copied, result.skipped) == (1, 1)
        [finding] = bed.findings("skipped")
        assert "exceeds the limit of 4000 bytes" in finding.reason
    finally:
        bed.close()


def test_microsoft_reserved_names_are_renamed_and_the_admins_rules_win(tmp_path: Path) -> None:
    cfg = _cfg('[source]\nhost = "a"\n[destination]\nprovider = "microsoft365"\n'
               'auth = "password"\n[[folders.rename]]\npattern = "Notes"\n'
               'replacement = "Old notes"\n', tmp_path)
    rules = MappingRules(include=cfg.folders.include, exclude=cfg.folders.exclude,
                         renames=tuple(cfg.folders.renames))
    src = [RemoteFolder("INBOX"), RemoteFolder("Calendar"), RemoteFolder("Calendar/2019"),
           RemoteFolder("contacts"), RemoteFolder("Notes"), RemoteFolder("Projects/Calendar")]
    result = map_folders(src, Namespace("", "/"), [RemoteFolder("INBOX")],
                         Namespace("", "/"), rules)
    by_source = {m.source: m.destination for m in result.mappings if m.source}
    assert by_source["Calendar"] == "Calendar (mail)"
    assert by_source["Calendar/2019"] == "Calendar (mail)/2019"
    assert by_source["contacts"] == "contacts (mail)"
    assert by_source["Notes"] == "Old notes"                # the admin's rule first
    assert by_source["Projects/Calendar"] == "Projects/Calendar"  # only the top level
