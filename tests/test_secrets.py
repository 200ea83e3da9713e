"""Secret references, sealing for the state database, redaction: a secret never shows."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from mxshift.errors import MxshiftError
from mxshift.secrets import KEY_ENV, KEY_FILE, SecretBox, SecretRef, redact

PLAIN = "Tr0ub4dor&3-plaintext"


@pytest.fixture(autouse=True)
def _no_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.mark.parametrize(("cell", "kind", "value"), [
    ("env:MAILBOX_PW", "env", "MAILBOX_PW"),
    ("  env:_X1  ", "env", "_X1"),
    ("ENV:Upper", "env", "Upper"),
    ("file:/etc/mxshift/pw", "file", "/etc/mxshift/pw"),
    ("file: secrets/alice.txt ", "file", "secrets/alice.txt"),
    ("hunter2", "literal", "hunter2"),
    (" spaced pw ", "literal", " spaced pw "),
    ("literal:env:NOT_A_REF", "literal", "env:NOT_A_REF"),
    ("literal:file:x", "literal", "file:x"),
    ("envy:thing", "literal", "envy:thing"),
    ("pa:ss", "literal", "pa:ss"),
])
def test_parse(cell: str, kind: str, value: str) -> None:
    assert SecretRef.parse(cell) == SecretRef(kind, value)  # type: ignore[arg-type]


@pytest.mark.parametrize(("cell", "needle"), [
    ("", "empty"),
    ("   ", "empty"),
    ("env:", "variable name"),
    ("env:1ABC", "variable name"),
    ("env:MY-VAR", "variable name"),
    ("env:two words", "variable name"),
    ("env:p@ssw0rd!", "variable name"),
    ("file:", "needs a path"),
    ("file:   ", "needs a path"),
    ("literal:", "needs a password"),
])
def test_parse_rejects_malformed(cell: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle) as info:
        SecretRef.parse(cell)
    tail = cell.partition(":")[2].strip()  # what a mistyped password would leak
    if tail:
        assert tail not in str(info.value)


@pytest.mark.parametrize(("ref", "shown"), [
    (SecretRef("env", "PW"), "env:PW"),
    (SecretRef("file", "/run/pw"), "file:/run/pw"),
    (SecretRef("literal", PLAIN), "literal:***"),
])
def test_repr_and_str_never_show_the_secret(ref: SecretRef, shown: str) -> None:
    assert str(ref) == shown
    assert repr(ref) == f"SecretRef({shown!r})"
    assert PLAIN not in repr([ref]) and PLAIN not in f"{ref}"


def test_unknown_kind_rejected() -> None:
    with pytest.raises(ValueError):
        SecretRef("vault", "x")  # type: ignore[arg-type]


def test_resolve_literal_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MX_TEST_PW", "from-env")
    (tmp_path / "pw").write_text("  from-file  \nsecond line\n", encoding="utf-8")
    assert SecretRef("literal", "lit").resolve() == "lit"
    assert SecretRef("env", "MX_TEST_PW").resolve() == "from-env"
    assert SecretRef("file", str(tmp_path / "pw")).resolve() == "from-file"


@pytest.mark.parametrize(("setup", "ref", "needles"), [
    ("unset", SecretRef("env", "MX_TEST_MISSING"), ["MX_TEST_MISSING", "not set"]),
    ("empty", SecretRef("env", "MX_TEST_EMPTY"), ["MX_TEST_EMPTY", "empty"]),
    ("none", SecretRef("file", "{tmp}/nope"), ["{tmp}/nope", "cannot read"]),
    ("blank", SecretRef("file", "{tmp}/blank"), ["{tmp}/blank", "empty first line"]),
    ("latin1", SecretRef("file", "{tmp}/latin1"), ["{tmp}/latin1", "not UTF-8"]),
])
def test_resolve_errors_name_where_not_what(setup: str, ref: SecretRef, needles: list[str],
                                            tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MX_TEST_MISSING", raising=False)
    monkeypatch.setenv("MX_TEST_EMPTY", "")
    (tmp_path / "blank").write_text("\nsecret-on-line-2\n", encoding="utf-8")
    (tmp_path / "latin1").write_bytes("pässwörd".encode("latin-1"))
    ref = SecretRef(ref.kind, ref.value.replace("{tmp}", str(tmp_path)))
    with pytest.raises(MxshiftError) as info:
        ref.resolve()
    for needle in needles:
        assert needle.replace("{tmp}", str(tmp_path)) in str(info.value)
    assert "secret-on-line-2" not in str(info.value)


# --- SecretBox ---------------------------------------------------------------------------


@pytest.mark.parametrize("ref", [SecretRef("env", "PW"), SecretRef("file", "/run/secrets/pw")])
def test_references_are_stored_as_they_are_without_a_key(tmp_path: Path, ref: SecretRef) -> None:
    box = SecretBox(tmp_path)
    sealed = box.seal(ref)
    assert sealed == str(ref)
    assert box.open(sealed) == ref
    assert not (tmp_path / KEY_FILE).exists()


def test_literal_is_encrypted_and_round_trips(tmp_path: Path) -> None:
    sealed = SecretBox(tmp_path).seal(SecretRef("literal", PLAIN))
    assert sealed.startswith("fernet:")
    assert PLAIN not in sealed
    # a fresh box (another process) reads the key file back
    assert SecretBox(tmp_path).open(sealed) == SecretRef("literal", PLAIN)


def test_literal_that_looks_like_a_reference_round_trips(tmp_path: Path) -> None:
    box = SecretBox(tmp_path)
    ref = SecretRef("literal", "env:NOT_A_REF")
    assert box.open(box.seal(ref)) == ref


def test_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    SecretBox(tmp_path).seal(SecretRef("literal", "a"))
    key_file = tmp_path / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_bytes()
    Fernet(key.strip())  # a valid key
    SecretBox(tmp_path).seal(SecretRef("literal", "b"))
    assert key_file.read_bytes() == key
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY_FILE]  # no temp files left


def test_key_file_mode_ignores_a_loose_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        SecretBox(tmp_path).seal(SecretRef("literal", "a"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600


def test_env_key_overrides_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file_sealed = SecretBox(tmp_path).seal(SecretRef("literal", PLAIN))
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    env_box = SecretBox(tmp_path)
    env_sealed = env_box.seal(SecretRef("literal", PLAIN))
    assert env_box.open(env_sealed) == SecretRef("literal", PLAIN)
    with pytest.raises(MxshiftError, match="cannot decrypt"):
        env_box.open(file_sealed)  # the file key is not used while the env key is set
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(MxshiftError, match="cannot decrypt"):
        SecretBox(tmp_path).open(env_sealed)


def test_env_key_means_no_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    SecretBox(tmp_path).seal(SecretRef("literal", PLAIN))
    assert not (tmp_path / KEY_FILE).exists()


def test_wrong_key_says_what_changed(tmp_path: Path) -> None:
    sealed = SecretBox(tmp_path / "a").seal(SecretRef("literal", PLAIN))
    SecretBox(tmp_path / "b").seal(SecretRef("literal", "other"))  # b gets its own key
    with pytest.raises(MxshiftError) as info:
        SecretBox(tmp_path / "b").open(sealed)
    assert "cannot decrypt" in str(info.value)
    assert KEY_ENV in str(info.value) and ".mxshift.key" in str(info.value)


def test_prepare_loads_the_key_only_for_sealed_literals(tmp_path: Path) -> None:
    box = SecretBox(tmp_path)
    sealed = box.seal(SecretRef("literal", "pw"))
    fresh = SecretBox(tmp_path)
    fresh.prepare(["env:PW", None, "file:/x"])  # references: no cipher, no key read
    assert fresh._fernet is None
    fresh.prepare(iter(["env:PW", sealed]))
    assert fresh._fernet is not None
    assert fresh.open(sealed) == SecretRef("literal", "pw")
    keyless = SecretBox(tmp_path / "elsewhere")
    keyless.prepare([sealed])  # no key: left for the pass to report, nothing created
    assert keyless._fernet is None and not keyless.key_path.exists()
    with pytest.raises(MxshiftError, match="no key"):
        keyless.open(sealed)


def test_open_without_any_key_does_not_create_one(tmp_path: Path) -> None:
    sealed = SecretBox(tmp_path / "a").seal(SecretRef("literal", PLAIN))
    with pytest.raises(MxshiftError, match="cannot decrypt.*no key"):
        SecretBox(tmp_path / "b").open(sealed)
    assert not (tmp_path / "b" / KEY_FILE).exists()


@pytest.mark.parametrize("bad", ["not-a-key", "short", "x" * 44])
def test_invalid_env_key_is_reported_without_echo(tmp_path: Path, bad: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, bad)
    with pytest.raises(MxshiftError, match=KEY_ENV) as info:
        SecretBox(tmp_path).seal(SecretRef("literal", PLAIN))
    assert bad not in str(info.value)


@pytest.mark.parametrize("sealed", ["", "plain-password", "env:", "file:", "fernet:garbage",
                                    "fernet:ünïcode"])
def test_open_rejects_what_seal_never_writes(tmp_path: Path, sealed: str) -> None:
    SecretBox(tmp_path).seal(SecretRef("literal", "make a key"))
    with pytest.raises(MxshiftError):
        SecretBox(tmp_path).open(sealed)


# --- redact ------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "secrets", "expected"), [
    ("LOGIN alice hunter2", ["hunter2"], "LOGIN alice ***"),
    ("a hunter2 b hunter2", ["hunter2"], "a *** b ***"),
    ("pw=abcdef", ["abc", "abcdef"], "pw=***"),
    ("x.y*z", ["x.y*z"], "***"),
    ("nothing here", ["hunter2"], "nothing here"),
    ("keep all", ["", ""], "keep all"),
    ("keep all", [], "keep all"),
    ("one two", iter(["one", "two"]), "*** ***"),
])
def test_redact(text: str, secrets: list[str], expected: str) -> None:
    assert redact(text, secrets) == expected
