"""mxshift.toml, mailboxes.csv and the init templates: valid input gives exact models, invalid
input names file, line and key, and no error ever shows a password."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mxshift.config import (
    MAILBOX_FILE,
    PROJECT_FILE,
    AdminLogin,
    Endpoint,
    FolderRules,
    PassOptions,
    ProjectConfig,
    RenameRule,
    load_project,
    parse_project,
)
from mxshift.config_table import parse_size
from mxshift.errors import ConfigError
from mxshift.mailbox_csv import MailboxEntry, parse_mailbox_csv
from mxshift.secrets import SecretRef
from mxshift.templates import write_templates

MINIMAL = """\
[source]
host = "127.0.0.1"
port = 11143
security = "none"        # tls | starttls | none

[destination]
host = "127.0.0.1"
port = 12143
security = "none"
"""

FULL = """\
[project]
name = "acme-to-m365"
domains = ["acme.example", "Old.Acme.Example"]

[source]
host = "mail.old.example"
port = 993
security = "tls"
ca_file = "certs/ca.pem"
insecure_skip_verify_host = "MAIL.old.example"
max_connections = 5
disable_capabilities = ["QRESYNC", "compress=deflate"]
timeout = 30
[source.admin]
user = "admin"
password = "env:ADMIN_PW"
mode = "dovecot"
separator = "%"

[destination]
host = "outlook.office365.com"
security = "starttls"
admin.user = "svc"
admin.password = "file:admin.pw"

[folders]
include = ["*"]
exclude = ["Calendar", "Contacts*"]
[[folders.rename]]
pattern = "Archive/(\\\\d{4})"
replacement = "Old/\\\\1"
[[folders.rename]]
pattern = "(?P<top>[^/]+)/Spam"
replacement = "\\\\g<top>/Junk"

[options]
max_message_size = "35MB"
deletion_ceiling = 0.25
deletion_floor = 0
batch_messages = 50
batch_bytes = 1048576
mailbox_parallelism = 8
"""

PROJECT_DIR = Path("/srv/migrations/acme")


def parse(text: str) -> ProjectConfig:
    return parse_project(text, path="mxshift.toml", directory=PROJECT_DIR)


def test_minimal_file_works_as_is() -> None:
    assert parse(MINIMAL) == ProjectConfig(
        name="acme",
        domains=(),
        source=Endpoint(host="127.0.0.1", port=11143, security="none"),
        destination=Endpoint(host="127.0.0.1", port=12143, security="none"),
        folders=FolderRules(),
        options=PassOptions(),
        directory=PROJECT_DIR,
    )


def test_full_schema() -> None:
    config = parse(FULL)
    assert config == ProjectConfig(
        name="acme-to-m365",
        domains=("acme.example", "old.acme.example"),
        source=Endpoint(
            host="mail.old.example", port=993, security="tls",
            ca_file=str(PROJECT_DIR / "certs/ca.pem"), verify_tls=False,
            admin=AdminLogin(user="admin", password=SecretRef("env", "ADMIN_PW"),
                             mode="dovecot", separator="%"),
            max_connections=5, disable_capabilities=frozenset({"QRESYNC", "COMPRESS=DEFLATE"}),
            timeout=30.0),
        destination=Endpoint(
            host="outlook.office365.com", port=143, security="starttls",
            admin=AdminLogin(user="svc", password=SecretRef("file", str(PROJECT_DIR / "admin.pw")))),
        folders=FolderRules(
            include=("*",), exclude=("Calendar", "Contacts*"),
            renames=(RenameRule(r"Archive/(\d{4})", r"Old/\1"),
                     RenameRule(r"(?P<top>[^/]+)/Spam", r"\g<top>/Junk"))),
        options=PassOptions(max_message_size=35 * 1024 * 1024, deletion_ceiling=0.25,
                            deletion_floor=0, batch_messages=50, batch_bytes=1048576,
                            mailbox_parallelism=8),
        directory=PROJECT_DIR,
    )
    assert isinstance(config.source.timeout, float)
    assert config.mailbox_path == PROJECT_DIR / MAILBOX_FILE


@pytest.mark.parametrize(("security_line", "security", "port"), [
    ('security = "tls"', "tls", 993),
    ('security = "starttls"', "starttls", 143),
    ('security = "none"', "none", 143),
    ("", "tls", 993),  # secure by default
])
def test_port_defaults_follow_security(security_line: str, security: str, port: int) -> None:
    text = f'[source]\nhost = "a"\n{security_line}\n[destination]\nhost = "b"\n'
    source = parse(text).source
    assert (source.security, source.port, source.verify_tls) == (security, port, True)


def test_relative_directory_becomes_absolute(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path)
    config = parse_project(MINIMAL, path="x", directory=Path("proj"))
    assert config.directory == tmp_path / "proj"
    assert config.name == "proj"


def test_absolute_and_home_paths_kept() -> None:
    text = MINIMAL.replace('port = 11143', 'port = 11143\nca_file = "/etc/ssl/ca.pem"')
    assert parse(text).source.ca_file == "/etc/ssl/ca.pem"
    text = MINIMAL.replace('port = 11143', 'port = 11143\nca_file = "~/ca.pem"')
    assert parse(text).source.ca_file == str(Path("~/ca.pem").expanduser())


def test_literal_admin_password_is_allowed_and_hidden() -> None:
    text = MINIMAL + '[source.admin]\nuser = "root"\npassword = "s3cr3t-literal"\n'
    admin = parse(text).source.admin
    assert admin == AdminLogin("root", SecretRef("literal", "s3cr3t-literal"))
    assert "s3cr3t-literal" not in repr(parse(text))


def with_source(extra: str) -> str:
    return MINIMAL.replace('security = "none"        # tls | starttls | none',
                           'security = "none"\n' + extra, 1)


# (text, line, substrings in the message). Line numbers count from 1 in `text`.
BAD_CONFIGS = [
    pytest.param(with_source("prot = 993"), 5, ["unknown key source.prot", "did you mean port?"],
                 id="typo-key"),
    pytest.param(MINIMAL.replace("[source]", "[sorce]"), 1,
                 ["unknown table [sorce]", "did you mean source?"], id="typo-table"),
    pytest.param(MINIMAL + "\n[extras]\nx = 1\n", 11, ["unknown table [extras]", "known:"],
                 id="unknown-table"),
    pytest.param(MINIMAL + "verbose = true\n", 10, ["unknown key destination.verbose"],
                 id="unknown-key-in-destination"),
    pytest.param(MINIMAL.split("[destination]")[0], None, ["missing table [destination]"],
                 id="missing-destination"),
    pytest.param(MINIMAL.replace('host = "127.0.0.1"\nport = 11143', "port = 11143"), 1,
                 ["missing required key host in [source]"], id="missing-host"),
    pytest.param(MINIMAL.replace('host = "127.0.0.1"', 'host = ""', 1), 2,
                 ["source.host must not be empty"], id="empty-host"),
    pytest.param(MINIMAL.replace('host = "127.0.0.1"', 'host = "imaps://mail.x"', 1), 2,
                 ["source.host must be a bare host name", "imaps://mail.x"], id="url-host"),
    pytest.param(MINIMAL.replace("port = 11143", "port = 0"), 3,
                 ["source.port must be between 1 and 65535, got 0"], id="port-zero"),
    pytest.param(MINIMAL.replace("port = 12143", "port = 70000"), 8,
                 ["destination.port must be between 1 and 65535, got 70000"], id="port-high"),
    pytest.param(MINIMAL.replace("port = 11143", 'port = "993"'), 3,
                 ["source.port must be a whole number, got a string '993'"], id="port-string"),
    pytest.param(MINIMAL.replace("port = 11143", "port = true"), 3,
                 ["source.port must be a whole number, got true/false"], id="port-bool"),
    pytest.param(MINIMAL.replace('security = "none"\n', 'security = "ssl"\n', 1), 9,
                 ["destination.security must be one of 'tls', 'starttls', 'none', got 'ssl'"],
                 id="security-enum"),
    pytest.param(with_source('insecure_skip_verify_host = "other.example"'), 5,
                 ["source.insecure_skip_verify_host is 'other.example' but host is "
                  "'127.0.0.1'"], id="skip-verify-other-host"),
    pytest.param(with_source("max_connections = 0"), 5,
                 ["source.max_connections must be at least 1, got 0"], id="max-connections"),
    pytest.param(with_source("timeout = 0"), 5, ["source.timeout must be more than 0"],
                 id="timeout-zero"),
    pytest.param(with_source("timeout = nan"), 5, ["source.timeout must be more than 0"],
                 id="timeout-nan"),
    pytest.param(with_source('disable_capabilities = "QRESYNC"'), 5,
                 ["source.disable_capabilities must be a list of strings, like ['QRESYNC']"],
                 id="caps-not-list"),
    pytest.param(with_source('disable_capabilities = ["Q RESYNC"]'), 5,
                 ["is not an IMAP capability"], id="caps-bad-atom"),
    pytest.param(with_source("admin = 3"), 5, ["source.admin must be a table"],
                 id="admin-not-table"),
    pytest.param(MINIMAL + '[destination.admin]\npassword = "env:X"\n', 10,
                 ["missing required key user in [destination.admin]"], id="admin-no-user"),
    pytest.param(MINIMAL + '[destination.admin]\nuser = "a"\npassword = "env:1X"\n', 12,
                 ["destination.admin.password is not usable", "variable name"],
                 id="admin-bad-env"),
    pytest.param(MINIMAL + '[destination.admin]\nuser = "a"\npassword = "file:"\n', 12,
                 ["destination.admin.password is not usable", "needs a path"],
                 id="admin-empty-file"),
    pytest.param(MINIMAL + '[destination.admin]\nuser = "a"\npassword = "x"\nmode = "master"\n',
                 13, ["destination.admin.mode must be one of 'sasl', 'dovecot'"],
                 id="admin-mode"),
    pytest.param(MINIMAL + '[destination.admin]\nuser = "a"\npassword = "x"\nsep = "*"\n', 13,
                 ["unknown key destination.admin.sep", "did you mean separator?"],
                 id="admin-typo"),
    pytest.param('[project]\ndomains = ["@acme.example"]\n' + MINIMAL, 2,
                 ["project.domains entry '@acme.example' is not a domain name"],
                 id="domain-with-at"),
    pytest.param('[project]\ndomains = "acme.example"\n' + MINIMAL, 2,
                 ["project.domains must be a list of strings"], id="domains-not-list"),
    pytest.param('[project]\nname = 7\n' + MINIMAL, 2,
                 ["project.name must be a string, got an integer 7"], id="name-type"),
    pytest.param(MINIMAL + "[folders]\ninclude = []\n", 11,
                 ["folders.include is empty"], id="include-empty"),
    pytest.param(MINIMAL + '[folders]\nexclude = ["ok", 3]\n', 11,
                 ["folders.exclude must be a list of non-empty strings"], id="exclude-type"),
    pytest.param(MINIMAL + '[folders]\nrename = "x"\n', 11,
                 ["folders.rename must be a list of tables"], id="rename-not-list"),
    pytest.param(MINIMAL + '[[folders.rename]]\npattern = "a"\nreplacement = "b"\n'
                 '[[folders.rename]]\npattern = "Archive/("\nreplacement = "b"\n', 14,
                 ["folders.rename[2].pattern is not a valid regular expression"],
                 id="rename-bad-regex-second-rule"),
    pytest.param(MINIMAL + '[[folders.rename]]\npattern = "(a)"\nreplacement = "\\\\2"\n', 12,
                 ["folders.rename[1].replacement does not fit the pattern",
                  "invalid group reference 2"], id="rename-bad-group"),
    pytest.param(MINIMAL + '[[folders.rename]]\npattern = "(a)"\nreplacement = "\\\\g<x>"\n', 12,
                 ["folders.rename[1].replacement does not fit the pattern"],
                 id="rename-unknown-named-group"),
    pytest.param(MINIMAL + '[[folders.rename]]\npattern = "a"\n', 10,
                 ["missing required key replacement in [folders.rename[1]]"],
                 id="rename-missing-replacement"),
    pytest.param(MINIMAL + '[[folders.rename]]\npattern = "a"\nreplace = "b"\n', 12,
                 ["unknown key folders.rename[1].replace", "did you mean replacement?"],
                 id="rename-typo"),
    pytest.param(MINIMAL + '[options]\ndeletion_ceiling = 0\n', 11,
                 ["options.deletion_ceiling must be more than 0"], id="ceiling-zero"),
    pytest.param(MINIMAL + '[options]\ndeletion_ceiling = 1.5\n', 11,
                 ["options.deletion_ceiling is a fraction", "got 1.5"], id="ceiling-above-1"),
    pytest.param(MINIMAL + '[options]\ndeletion_ceiling = "10%"\n', 11,
                 ["options.deletion_ceiling must be a number"], id="ceiling-percent"),
    pytest.param(MINIMAL + '[options]\ndeletion_floor = -1\n', 11,
                 ["options.deletion_floor must be 0 or more, got -1"], id="floor-negative"),
    pytest.param(MINIMAL + '[options]\nbatch_messages = 0\n', 11,
                 ["options.batch_messages must be at least 1, got 0"], id="batch-zero"),
    pytest.param(MINIMAL + '[options]\nmailbox_parallelism = 2.5\n', 11,
                 ["options.mailbox_parallelism must be a whole number"], id="parallelism-float"),
    pytest.param(MINIMAL + '[options]\nmax_message_size = "35 parsecs"\n', 11,
                 ["options.max_message_size must be a size", "35MB"], id="size-unit"),
    pytest.param(MINIMAL + '[options]\nmax_message_size = 0\n', 11,
                 ["options.max_message_size must be at least 1 byte"], id="size-zero"),
    pytest.param(MINIMAL + '[options]\nbatch_bytes = "0MB"\n', 11,
                 ["options.batch_bytes must be at least 1 byte"], id="size-zero-unit"),
    pytest.param(MINIMAL + '[options]\nbatch_bytes = 1.5\n', 11,
                 ["options.batch_bytes must be bytes or a size"], id="size-float"),
    pytest.param(MINIMAL + "[options]\nbatch_bytes = 1\noptions = 2\n", 12,
                 ["unknown key options.options"], id="unknown-option"),
    pytest.param(MINIMAL.replace("port = 12143", "port = "), 8,
                 ["invalid TOML", "Invalid value", "column 8"], id="toml-syntax"),
    pytest.param(MINIMAL.replace("port = 12143", "port = 1\nport = 2"), 9,
                 ["invalid TOML", "Cannot overwrite a value"], id="toml-duplicate"),
    pytest.param(MINIMAL + '[schedule]\ncutover_at = 2026-12-05T18:00:00\n', 11,
                 ["schedule.cutover_at", "has no timezone; add an offset"], id="naive-time"),
    pytest.param(MINIMAL + '[schedule]\nsweep_interval = "hourly"\n', 11,
                 ["schedule.sweep_interval", "not a duration like 24h"], id="bad-duration"),
    pytest.param(MINIMAL + '[schedule]\ndelta_interval = 24\n', 11,
                 ["schedule.delta_interval", "must be a duration string"], id="number-duration"),
    pytest.param(MINIMAL + 'x = "unterminated', 10,
                 ["invalid TOML", "at the end of the file"], id="toml-eof"),
]


@pytest.mark.parametrize(("text", "line", "needles"), BAD_CONFIGS)
def test_bad_config_names_file_line_and_key(text: str, line: int | None,
                                            needles: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    error = info.value
    assert (error.path, error.line) == ("mxshift.toml", line)
    prefix = "mxshift.toml" if line is None else f"mxshift.toml:{line}"
    assert str(error).startswith(prefix + ": ")
    for needle in needles:
        assert needle in str(error)


@pytest.mark.parametrize("value", ['"hunter2-secret"', "1234567"])
def test_admin_password_type_error_does_not_echo(value: str) -> None:
    text = MINIMAL + f'[source.admin]\nuser = "a"\npassword = [{value}]\n'
    with pytest.raises(ConfigError, match="source.admin.password must be a string") as info:
        parse(text)
    assert value.strip('"') not in str(info.value)


def test_line_lookup_for_dotted_and_inline_keys() -> None:
    text = MINIMAL + 'admin.user = "svc"\nadmin.password = "x"\nadmin.mode = "su"\n'
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert info.value.line == 12
    text = MINIMAL + '[folders]\nrename = [{pattern = "(", replacement = "x"}]\n'
    with pytest.raises(ConfigError, match="folders.rename.1..pattern") as info:
        parse(text)
    assert info.value.line == 11


def test_line_lookup_ignores_lookalikes_in_multiline_strings() -> None:
    text = '[project]\nname = """\nport = 1\n"""\n' + MINIMAL.replace("port = 11143", "port = 0")
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert info.value.line == 7


@pytest.mark.parametrize(("text", "size"), [
    ("1", 1), ("100B", 100), ("512KB", 512 * 1024), ("512k", 512 * 1024),
    ("512KiB", 512 * 1024), ("35MB", 35 * 1024 ** 2), ("35 mb", 35 * 1024 ** 2),
    ("1.5GB", 3 * 1024 ** 3 // 2), ("2G", 2 * 1024 ** 3), (" 7 MiB ", 7 * 1024 ** 2),
])
def test_parse_size_is_1024_based(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "-1MB", "35TB", "35 M B", "1e3", "35MBs"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


# --- load_project ------------------------------------------------------------------------


def test_load_project_reads_the_directory(tmp_path: Path) -> None:
    (tmp_path / PROJECT_FILE).write_text(MINIMAL, encoding="utf-8")
    config = load_project(tmp_path)
    assert config.directory == tmp_path and config.name == tmp_path.name
    assert config.source.port == 11143


def test_load_project_missing_file_says_run_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"run `mxshift init`") as info:
        load_project(tmp_path)
    assert info.value.path == str(tmp_path / PROJECT_FILE)


def test_load_project_tolerates_bom(tmp_path: Path) -> None:
    (tmp_path / PROJECT_FILE).write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_project(tmp_path).destination.port == 12143


def test_load_project_non_utf8_names_line(tmp_path: Path) -> None:
    (tmp_path / PROJECT_FILE).write_bytes(
        ("[project]\nname = \"M\xfcller\"\n" + MINIMAL).encode("latin-1"))
    with pytest.raises(ConfigError, match="not valid UTF-8") as info:
        load_project(tmp_path)
    assert info.value.line == 2


def test_load_project_reports_the_real_path(tmp_path: Path) -> None:
    (tmp_path / PROJECT_FILE).write_text(with_source("prot = 1"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_project(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / PROJECT_FILE}:5: unknown key source.prot")


# --- mailboxes.csv -----------------------------------------------------------------------

HEADER = "source_user,source_password,destination_user,destination_password\n"
SECRET = "Hunter2-Sup3rSecret"


def write_csv(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / MAILBOX_FILE
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def test_csv_valid_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path, (
        "\ufeff# exported 2024-05-01\n"
        "destination_user, Source_User ,destination_password,source_password\r\n"
        "\r\n"
        "alice@new.example,alice@old.example,env:ALICE_NEW,file:pw/alice\r\n"
        "  # bob is done\n"
        f'bob@new.example,bob@old.example,"{SECRET},with comma",literal:env:X\n'
        "carol@new.example ,  carol@old.example,  env:CAROL ,/abs/is/a/literal\n"
    ))
    assert parse_mailbox_csv(path) == [
        MailboxEntry(4, "alice@old.example", SecretRef("file", str(tmp_path / "pw/alice")),
                     "alice@new.example", SecretRef("env", "ALICE_NEW")),
        MailboxEntry(6, "bob@old.example", SecretRef("literal", "env:X"),
                     "bob@new.example", SecretRef("literal", f"{SECRET},with comma")),
        MailboxEntry(7, "carol@old.example", SecretRef("literal", "/abs/is/a/literal"),
                     "carol@new.example", SecretRef("env", "CAROL")),
    ]


def test_csv_header_only_is_an_empty_list(tmp_path: Path) -> None:
    assert parse_mailbox_csv(write_csv(tmp_path, HEADER)) == []


@pytest.mark.parametrize(("source_admin", "destination_admin"),
                         [(True, False), (False, True), (True, True)])
def test_csv_empty_password_allowed_with_admin(tmp_path: Path, source_admin: bool,
                                               destination_admin: bool) -> None:
    src_pw = "" if source_admin else "env:S"
    dst_pw = "" if destination_admin else "env:D"
    path = write_csv(tmp_path, HEADER + f"a@x,{src_pw},a@y,{dst_pw}\n")
    [entry] = parse_mailbox_csv(path, source_admin=source_admin,
                                destination_admin=destination_admin)
    assert (entry.source_password is None) is source_admin
    assert (entry.destination_password is None) is destination_admin


# (content, kwargs, expected problems as (line, column, substring)); content is bytes-able
BAD_CSVS = [
    pytest.param("", {}, [(1, None, "no header line")], id="empty-file"),
    pytest.param("# only a comment\n\n", {}, [(1, None, "no header line")], id="only-comments"),
    pytest.param("source_user,source_password,destination_user\n", {},
                 [(1, "destination_password", "missing column in the header")],
                 id="missing-column"),
    pytest.param("source_user,destination_user\n", {},
                 [(1, "source_password", "missing column"),
                  (1, "destination_password", "missing column")], id="two-missing-columns"),
    pytest.param(HEADER.rstrip("\n") + ",notes,quota\n", {},
                 [(1, None, "unknown columns notes, quota")], id="unknown-columns"),
    pytest.param("source_user,source_user,source_password,destination_user,"
                 "destination_password\n", {},
                 [(1, "source_user", "appears 2 times")], id="duplicate-column"),
    pytest.param(f"alice@x,{SECRET},alice@y,{SECRET}\n", {},
                 [(1, None, "first line is not the header")], id="no-header"),
    pytest.param(HEADER + "a@x,env:P,a@y\n", {}, [(2, None, "expected 4 fields")],
                 id="too-few-fields"),
    pytest.param(HEADER + f"a@x,env:P,a@y,{SECRET},{SECRET}\n", {},
                 [(2, None, "expected 4 fields")], id="too-many-fields"),
    pytest.param(HEADER + f'a@x,"{SECRET}\nb@x,env:P,b@y,env:Q\n', {},
                 [(2, None, "runs over 2 lines: missing closing quote?")],
                 id="unterminated-quote"),
    pytest.param(HEADER + " ,env:P,a@y,env:Q\n", {}, [(2, "source_user", "empty user")],
                 id="empty-source-user"),
    pytest.param(HEADER + "a@x,env:P,,env:Q\n", {}, [(2, "destination_user", "empty user")],
                 id="empty-destination-user"),
    pytest.param(HEADER + "a@x,,a@y,env:Q\n", {},
                 [(2, "source_password", "empty password, and mxshift.toml has neither a [source.admin] login nor OAuth2")],
                 id="empty-password-no-admin"),
    pytest.param(HEADER + "a@x,env:P,a@y,  \n", {"source_admin": True},
                 [(2, "destination_password", "neither a [destination.admin] login nor OAuth2")],
                 id="admin-only-covers-its-side"),
    pytest.param(HEADER + "a@x,env:P,a@y,env:Q\nA@X,env:P,b@y,env:Q\n", {},
                 [(3, "source_user", "A@X is also listed on line 2")], id="duplicate-source"),
    pytest.param(HEADER + "a@x,env:P,a@y,env:Q\n# c\nb@x,env:P,a@y,env:Q\n", {},
                 [(4, "destination_user", "a@y is also listed on line 2")],
                 id="duplicate-destination"),
    pytest.param(HEADER + "a@x,env:2BAD,a@y,env:Q\n", {},
                 [(2, "source_password", "variable name")], id="bad-env-name"),
    pytest.param(HEADER + "a@x,env:P,a@y,file:\n", {},
                 [(2, "destination_password", "needs a path")], id="empty-file-path"),
    pytest.param(HEADER.encode() + b"a@x,env:P,a@y,env:Q\nb@x,p\xe4ss,b@y,env:Q\n", {},
                 [(3, "source_password", "not valid UTF-8")], id="latin1-password"),
    pytest.param(HEADER.encode() + b"M\xfcller@x,env:P,a@y,env:Q\n", {},
                 [(2, "source_user", "not valid UTF-8")], id="latin1-user"),
    pytest.param(b"source_user,source_password,destination_user,destination_p\xe4ssword\n"
                 + HEADER.encode(), {},
                 [(1, None, "not valid UTF-8")], id="latin1-header-line-skipped"),
    pytest.param(HEADER + "a@x,env:P,a@y,env:Q\n" + "b@x,,b@y,env:Q\n" + "c@x,env:P\n"
                 + "a@x,env:P,d@y,env:Q\n", {},
                 [(3, "source_password", "empty password"), (4, None, "expected 4 fields"),
                  (5, "source_user", "also listed on line 2")], id="all-errors-at-once"),
]


@pytest.mark.parametrize(("content", "kwargs", "expected"), BAD_CSVS)
def test_bad_csv(tmp_path: Path, content: str | bytes, kwargs: dict[str, bool],
                 expected: list[tuple[int, str | None, str]]) -> None:
    path = write_csv(tmp_path, content)
    with pytest.raises(ConfigError) as info:
        parse_mailbox_csv(path, **kwargs)
    error = info.value
    first_line, first_column, _ = expected[0]
    assert (error.path, error.line, error.column) == (str(path), first_line, first_column)
    message = str(error)
    for line, column, needle in expected:
        where = f"{path}:{line}" + (f" (column {column})" if column else "") + ": "
        assert any(m.strip().startswith(where) and needle in m for m in message.splitlines()), (
            where, needle, message)
    if len(expected) > 1:
        assert message.startswith(f"{path}: {len(expected)} problems:\n")
    assert SECRET not in message
    assert "p\xe4ss" not in message


def test_csv_error_count_is_capped(tmp_path: Path) -> None:
    rows = "".join(f"u{i}@x,,u{i}@y,env:Q\n" for i in range(30))
    path = write_csv(tmp_path, HEADER + rows)
    with pytest.raises(ConfigError) as info:
        parse_mailbox_csv(path)
    message = str(info.value)
    assert message.startswith(f"{path}: 30 problems:")
    assert len(re.findall(r"empty password", message)) == 20
    assert message.endswith("... and 10 more")
    assert info.value.line == 2


@pytest.mark.parametrize("row", [
    f"a@x,{SECRET},a@y\n",
    f"a@x,{SECRET},a@y,{SECRET},extra\n",
    f",{SECRET},,{SECRET}\n",
    f'a@x,"{SECRET}\n',  # unterminated quote swallows the rest
    f"a@x,env:{SECRET},a@y,file:\n",
])
def test_csv_errors_never_contain_the_password(tmp_path: Path, row: str) -> None:
    path = write_csv(tmp_path, HEADER + row + "a@x,x,a@y,y\n")
    with pytest.raises(ConfigError) as info:
        parse_mailbox_csv(path)
    assert SECRET not in str(info.value)


def test_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found") as info:
        parse_mailbox_csv(tmp_path / MAILBOX_FILE)
    assert info.value.path == str(tmp_path / MAILBOX_FILE)


# --- templates ---------------------------------------------------------------------------


def test_templates_load(tmp_path: Path) -> None:
    written = write_templates(tmp_path / "new")
    assert written == [tmp_path / "new" / PROJECT_FILE, tmp_path / "new" / MAILBOX_FILE]
    config = load_project(tmp_path / "new")
    assert (config.source, config.destination) == (
        Endpoint(host="127.0.0.1", port=11143, security="none"),
        Endpoint(host="127.0.0.1", port=12143, security="none"))
    assert parse_mailbox_csv(tmp_path / "new" / MAILBOX_FILE) == []


_SETTING = re.compile(r"# (\[\[?[a-z.]+\]\]?|[a-z_]+ = .*)$")


def test_template_optional_settings_are_valid_when_uncommented(tmp_path: Path) -> None:
    """Every commented-out example, switched on, must still be a valid project."""
    write_templates(tmp_path)
    lines = (tmp_path / PROJECT_FILE).read_text(encoding="utf-8").splitlines()
    enabled = [m.group(1) if (m := _SETTING.fullmatch(line)) else line for line in lines]
    assert sum(a != b for a, b in zip(lines, enabled)) >= 20
    (tmp_path / PROJECT_FILE).write_text("\n".join(enabled), encoding="utf-8")
    config = load_project(tmp_path)
    assert config.name == "acme-to-m365"
    assert config.source.verify_tls is False
    assert config.source.admin == AdminLogin("admin", SecretRef("env", "SOURCE_ADMIN_PW"))
    assert config.folders == FolderRules(
        exclude=("Calendar", "Contacts*"), renames=(RenameRule(r"Archive/(\d{4})", r"Old/\1"),))
    assert config.options.max_message_size == 35 * 1024 * 1024
    assert config.schedule.cutover_at == datetime(2026, 12, 5, 17, 0, tzinfo=timezone.utc)
    assert config.schedule.sweep_window == timedelta(hours=48)
    assert (config.distributed.split_mailbox_above, config.distributed.split_parts) == (
        20 * 1024**3, 8)

    csv_lines = (tmp_path / MAILBOX_FILE).read_text(encoding="utf-8").splitlines()
    example = [line[2:] for line in csv_lines if line.startswith("# alice")]
    (tmp_path / MAILBOX_FILE).write_text("\n".join([csv_lines[0], *example]), encoding="utf-8")
    [entry] = parse_mailbox_csv(tmp_path / MAILBOX_FILE)
    assert entry.source_password == SecretRef("env", "ALICE_OLD_PW")


@pytest.mark.parametrize("existing", [PROJECT_FILE, MAILBOX_FILE])
def test_templates_refuse_to_overwrite(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("mine", encoding="utf-8")
    with pytest.raises(ConfigError, match="already exists") as info:
        write_templates(tmp_path)
    assert info.value.path == str(tmp_path / existing)
    assert (tmp_path / existing).read_text(encoding="utf-8") == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]  # nothing half-written


def test_templates_force_overwrites(tmp_path: Path) -> None:
    (tmp_path / MAILBOX_FILE).write_text("mine", encoding="utf-8")
    write_templates(tmp_path, force=True)
    assert (tmp_path / MAILBOX_FILE).read_text(encoding="utf-8").startswith("source_user,")
