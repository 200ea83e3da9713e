"""Folder mapping is pure, so it is tested here exhaustively without any server.

Why so many tables: every row is a folder tree some real server produced (Courier's
"INBOX." prefix, Exchange's case-insensitivity, Gmail's "[Gmail]/..."); a wrong mapping
silently files mail in the wrong place or duplicates it on the next run.
"""

from __future__ import annotations

import itertools
import random

import pytest

from mxshift.errors import ConfigError
from mxshift.mapping import (
    FolderMapping,
    MappingResult,
    MappingRules,
    Namespace,
    RemoteFolder,
    RenameRule,
    decode_component,
    encode_component,
    logical_path,
    map_folders,
    sanitize_component,
    wire_name,
)

COURIER = Namespace("INBOX.", ".")  # Courier / Cyrus style
COURIER_NOSEP = Namespace("INBOX", ".")  # prefix sent without its trailing separator
SLASH = Namespace("", "/")  # Dovecot / M365 style
DOT = Namespace("", ".")
FLAT = Namespace("", "")


def F(name: str, *flags: str) -> RemoteFolder:
    return RemoteFolder(name, frozenset(flags))


def dests(result: MappingResult) -> dict[str, str]:
    """source -> destination, for mappings that come from a listed source folder."""
    return {m.source: m.destination for m in result.mappings if m.source}


def by_source(result: MappingResult, source: str) -> FolderMapping:
    (m,) = [m for m in result.mappings if m.source == source]
    return m


def by_dest(result: MappingResult, destination: str) -> FolderMapping:
    (m,) = [m for m in result.mappings if m.destination == destination]
    return m


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("raw", "ns", "expected"),
    [
        ("INBOX", COURIER, ("INBOX",)),
        ("inbox", COURIER, ("INBOX",)),
        ("Inbox", SLASH, ("INBOX",)),
        ("INBOX.Sent", COURIER, ("Sent",)),
        ("INBOX.Projects.2024", COURIER, ("Projects", "2024")),
        ("Inbox.Sent", COURIER, ("Sent",)),  # prefix matched case-insensitively for INBOX
        ("INBOX.Sent", COURIER_NOSEP, ("Sent",)),
        ("INBOX.Projects.2024", COURIER_NOSEP, ("Projects", "2024")),
        ("INBOX.", COURIER, ()),  # the namespace root itself
        ("INBOX.", COURIER_NOSEP, ()),
        ("", SLASH, ()),
        ("Mail", Namespace("Mail/", "/"), ()),
        ("Mail/Sent", Namespace("Mail", "/"), ("Sent",)),
        ("INBOX.INBOX", COURIER, ("INBOX",)),
        ("Projects/2024", SLASH, ("Projects", "2024")),
        ("INBOX/foo", SLASH, ("INBOX", "foo")),  # real child of INBOX on a "" prefix
        ("inbox/foo", SLASH, ("INBOX", "foo")),
        ("a.b", SLASH, ("a.b",)),
        ("INBOX.a/b", COURIER, ("a/b",)),
        ("&AMk-t&AOk-", SLASH, ("Été",)),
        ("INBOX.Entw&APw-rfe", COURIER, ("Entwürfe",)),
        ("AT&-T", SLASH, ("AT&T",)),
        ("AT&T", SLASH, ("AT&T",)),  # invalid modified UTF-7 kept literally
        ("&AGE-", SLASH, ("&AGE-",)),  # non-canonical ("a" must be literal): kept literally
        ("&Jjo", SLASH, ("&Jjo",)),  # unterminated shift: kept literally
        ("Gr\u00fc\u00dfe", SLASH, ("Grüße",)),  # 8-bit (UTF8=ACCEPT) kept literally
        ("  spaced  /x ", SLASH, ("  spaced  ", "x ")),
        ("a.b", FLAT, ("a.b",)),
        ("#shared.x", COURIER, ("#shared", "x")),  # outside the prefix: split whole
    ],
)
def test_logical_path(raw: str, ns: Namespace, expected: tuple[str, ...]) -> None:
    assert logical_path(raw, ns) == expected


@pytest.mark.parametrize(
    ("logical", "ns", "expected"),
    [
        (("INBOX",), COURIER, "INBOX"),
        (("INBOX",), SLASH, "INBOX"),
        (("Sent",), COURIER, "INBOX.Sent"),
        (("Sent",), COURIER_NOSEP, "INBOX.Sent"),
        (("Projects", "2024"), COURIER, "INBOX.Projects.2024"),
        (("Projects", "2024"), SLASH, "Projects/2024"),
        (("INBOX", "foo"), SLASH, "INBOX/foo"),
        (("INBOX", "foo"), COURIER, "INBOX.foo"),
        (("Été",), SLASH, "&AMk-t&AOk-"),
        (("AT&T",), SLASH, "AT&-T"),
        (("a.b",), COURIER, "INBOX.a_b"),
        (("a/b", "c"), SLASH, "a_b/c"),
        (("a_b",), Namespace("", "_"), "a-b"),  # replacement never equals the separator
        (("single",), FLAT, "single"),
    ],
)
def test_wire_name(logical: tuple[str, ...], ns: Namespace, expected: str) -> None:
    assert wire_name(logical, ns) == expected


def test_wire_name_custom_replacement() -> None:
    assert wire_name(("a.b",), DOT, replacement="-") == "a-b"


@pytest.mark.parametrize(("logical", "ns"), [((), SLASH), (("a", "b"), FLAT)])
def test_wire_name_rejects(logical: tuple[str, ...], ns: Namespace) -> None:
    with pytest.raises(ValueError):
        wire_name(logical, ns)


@pytest.mark.parametrize(
    ("component", "sep", "expected"),
    [
        ("plain", "/", ("plain", None)),
        ("a/b", "/", ("a_b", "separator '/' in name component 'a/b' replaced by '_'")),
        ("v1.2.3", ".", ("v1_2_3", "separator '.' in name component 'v1.2.3' replaced by '_'")),
        ("a.b", "", ("a.b", None)),
    ],
)
def test_sanitize_component(component: str, sep: str, expected: tuple[str, str | None]) -> None:
    assert sanitize_component(component, sep) == expected


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("Été", "&AMk-t&AOk-"),
        ("&", "&-"),
        ("a&b", "a&-b"),
        ("日本語", "&ZeVnLIqe-"),
        ("😀", "&2D3eAA-"),
        ("Entwürfe", "Entw&APw-rfe"),
        ("plain ASCII ~", "plain ASCII ~"),
    ],
)
def test_modified_utf7_both_ways(text: str, encoded: str) -> None:
    assert encode_component(text) == encoded
    assert decode_component(encoded) == text


@pytest.mark.parametrize(
    "text", ["Été & Ünïcødé", "&&&-", "中文/文件夹", "📁 Ordner 😀&", "  x  ", "Ωμέγα", "a-&b-"]
)
@pytest.mark.parametrize("ns", [COURIER, SLASH])
def test_wire_round_trip(text: str, ns: Namespace) -> None:
    logical = ("Top", text.replace(ns.separator, "+"), "leaf")
    assert logical_path(wire_name(logical, ns), ns) == logical


# --------------------------------------------------------------------- namespaces


@pytest.mark.parametrize(
    ("source", "src_ns", "dst_ns", "expected"),
    [
        (
            ["INBOX", "INBOX.Sent", "INBOX.Projects", "INBOX.Projects.2024"],
            COURIER, SLASH,
            {"INBOX": "INBOX", "INBOX.Sent": "Sent", "INBOX.Projects": "Projects",
             "INBOX.Projects.2024": "Projects/2024"},
        ),
        (
            ["INBOX", "Sent", "Projects", "Projects/2024"],
            SLASH, COURIER,
            {"INBOX": "INBOX", "Sent": "INBOX.Sent", "Projects": "INBOX.Projects",
             "Projects/2024": "INBOX.Projects.2024"},
        ),
        (
            ["INBOX", "INBOX.Sent", "INBOX.Projects", "INBOX.Projects.2024"],
            COURIER_NOSEP, SLASH,
            {"INBOX": "INBOX", "INBOX.Sent": "Sent", "INBOX.Projects": "Projects",
             "INBOX.Projects.2024": "Projects/2024"},
        ),
        (
            ["INBOX", "Sent", "Projects", "Projects/2024"],
            SLASH, COURIER_NOSEP,
            {"INBOX": "INBOX", "Sent": "INBOX.Sent", "Projects": "INBOX.Projects",
             "Projects/2024": "INBOX.Projects.2024"},
        ),
        (
            ["INBOX", "INBOX/Sub"], SLASH, SLASH, {"INBOX": "INBOX", "INBOX/Sub": "INBOX/Sub"},
        ),
        (
            # A real child of INBOX lands in the one place a prefix-"INBOX." server has.
            ["INBOX", "INBOX/Sub"], SLASH, COURIER, {"INBOX": "INBOX", "INBOX/Sub": "INBOX.Sub"},
        ),
        (
            ["inbox", "Projects"], SLASH, COURIER, {"inbox": "INBOX", "Projects": "INBOX.Projects"},
        ),
        (
            # 8-bit names (UTF8=ACCEPT source) are taken literally and encoded properly
            ["INBOX", "INBOX.Été", "INBOX.Été.日本"],
            COURIER, SLASH,
            {"INBOX": "INBOX", "INBOX.Été": "&AMk-t&AOk-",
             "INBOX.Été.日本": "&AMk-t&AOk-/&ZeVnLA-"},
        ),
        (
            ["INBOX.&AMk-t&AOk-", "INBOX.&AMk-t&AOk-.&ZeVnLIqe-"],
            COURIER, SLASH,
            {"INBOX.&AMk-t&AOk-": "&AMk-t&AOk-",
             "INBOX.&AMk-t&AOk-.&ZeVnLIqe-": "&AMk-t&AOk-/&ZeVnLIqe-"},
        ),
    ],
)
def test_namespace_translation(source: list[str], src_ns: Namespace, dst_ns: Namespace,
                               expected: dict[str, str]) -> None:
    result = map_folders([F(n) for n in source], src_ns, [], dst_ns)
    assert dests(result) == expected
    assert result.collisions == ()


def test_mutf7_logical_and_destination() -> None:
    result = map_folders([F("INBOX.&AMk-t&AOk-")], COURIER, [], SLASH)
    (m,) = result.mappings
    assert (m.source, m.destination, m.logical) == ("INBOX.&AMk-t&AOk-", "&AMk-t&AOk-", ("Été",))


@pytest.mark.parametrize(
    ("source", "src_ns", "dst_ns", "expected", "note"),
    [
        (["a.b", "a.b/c"], SLASH, COURIER, {"a.b": "INBOX.a_b", "a.b/c": "INBOX.a_b.c"},
         "separator '.' in name component 'a.b' replaced by '_'"),
        (["INBOX.a/b", "INBOX.a/b.c"], COURIER, SLASH, {"INBOX.a/b": "a_b", "INBOX.a/b.c": "a_b/c"},
         "separator '/' in name component 'a/b' replaced by '_'"),
        (["v1.0"], SLASH, DOT, {"v1.0": "v1_0"},
         "separator '.' in name component 'v1.0' replaced by '_'"),
    ],
)
def test_separator_translation(source: list[str], src_ns: Namespace, dst_ns: Namespace,
                               expected: dict[str, str], note: str) -> None:
    result = map_folders([F(n) for n in source], src_ns, [], dst_ns)
    assert dests(result) == expected
    assert note in by_source(result, source[0]).notes
    assert by_source(result, source[0]).logical == (expected[source[0]].split(dst_ns.separator)[-1],)
    assert not by_source(result, source[1] if len(source) > 1 else source[0]).notes[1:]


def test_flat_destination_rejected() -> None:
    with pytest.raises(ValueError, match="separator"):
        map_folders([F("a")], SLASH, [], FLAT)


def test_flat_source_is_one_level() -> None:
    result = map_folders([F("a.b"), F("c/d")], FLAT, [], SLASH)
    assert dests(result) == {"a.b": "a.b", "c/d": "c_d"}


# ------------------------------------------------------------------ \Noselect trees


def test_noselect_and_implied_parents() -> None:
    result = map_folders(
        [F("INBOX.Lists", "\\Noselect", "\\HasChildren"), F("INBOX.Lists.python"),
         F("INBOX.Gone", "\\NonExistent"), F("INBOX.A.B.C", "\\HasNoChildren")],
        COURIER, [], SLASH,
    )
    assert [(m.source, m.destination, m.selectable) for m in result.mappings] == [
        ("", "A", False),
        ("", "A/B", False),
        ("INBOX.A.B.C", "A/B/C", True),
        ("INBOX.Gone", "Gone", False),
        ("INBOX.Lists", "Lists", False),
        ("INBOX.Lists.python", "Lists/python", True),
    ]
    assert by_dest(result, "A/B").notes == ("parent not listed on the source; created to hold 'A/B/C'",)
    assert by_dest(result, "A").logical == ("A",)


def test_noselect_folder_named_like_role_gets_no_role() -> None:
    result = map_folders([F("Sent", "\\Noselect"), F("Sent/x")], SLASH, [], COURIER)
    assert by_source(result, "Sent").role is None
    assert by_source(result, "Sent").selectable is False


# --------------------------------------------------------------------- special use


@pytest.mark.parametrize(
    ("name", "role"),
    [(n, "sent") for n in ["Sent", "Sent Items", "Sent Mail", "Sent Messages",
                           "Gesendete Elemente", "Envoyés", "SENT ITEMS", "sent"]]
    + [(n, "drafts") for n in ["Drafts", "Draft", "Entwürfe", "Brouillons", "drafts"]]
    + [(n, "trash") for n in ["Trash", "Deleted Items", "Deleted Messages", "Deleted", "Bin",
                              "Papierkorb", "Corbeille", "trash"]]
    + [(n, "junk") for n in ["Junk", "Junk E-mail", "Junk Email", "Spam", "Bulk Mail"]]
    + [(n, "archive") for n in ["Archive", "Archives"]]
    + [("Projects", None), ("Sent Stuff", None)],
)
def test_role_from_name(name: str, role: str | None) -> None:
    result = map_folders([F(wire_name((name,), COURIER))], COURIER, [], SLASH)
    (m,) = result.mappings
    assert m.role == role
    assert m.logical == (name,)


def test_role_only_for_top_level_names_except_known_paths() -> None:
    result = map_folders(
        [F("Customers/Sent"), F("Customers"), F("[Gmail]", "\\Noselect"), F("[Gmail]/Sent Mail")],
        SLASH, [F("Sent Items")], SLASH,
    )
    assert by_source(result, "Customers/Sent").role is None
    assert by_source(result, "Customers/Sent").destination == "Customers/Sent"
    assert by_source(result, "[Gmail]/Sent Mail").role == "sent"
    assert by_source(result, "[Gmail]/Sent Mail").destination == "Sent Items"


@pytest.mark.parametrize(
    ("flag", "role"),
    [("\\Sent", "sent"), ("\\Drafts", "drafts"), ("\\Trash", "trash"), ("\\Junk", "junk"),
     ("\\Archive", "archive"), ("\\All", "all"), ("\\Flagged", "flagged"), ("\\sent", "sent")],
)
def test_role_from_special_use_flag(flag: str, role: str) -> None:
    result = map_folders([F("INBOX.Whatever", flag)], COURIER, [], SLASH)
    assert result.mappings[0].role == role
    assert result.mappings[0].destination == "Whatever"


@pytest.mark.parametrize(
    ("source", "dest", "expected"),
    [
        # destination flag beats destination name
        ([F("INBOX.Sent Items")], [F("Sent"), F("Gesendet", "\\Sent")], "Gesendet"),
        # destination well-known name, first in the list's order
        ([F("INBOX.Sent Items")], [F("Sent Messages"), F("Sent")], "Sent"),
        ([F("INBOX.Gesendete Elemente", "\\Sent")], [F("Sent Items")], "Sent Items"),
        # nothing on the destination: keep the source's name, so it is created
        ([F("INBOX.Sent Items")], [F("Other")], "Sent Items"),
        # Gmail-style destination
        ([F("INBOX.Trash")], [F("[Gmail]", "\\Noselect"), F("[Gmail]/Bin", "\\Trash")],
         "[Gmail]/Bin"),
        ([F("INBOX.Deleted Items")], [F("Trash", "\\Noselect"), F("Papierkorb")], "Papierkorb"),
        ([F("INBOX.Junk E-mail")], [F("spam")], "spam"),
    ],
)
def test_role_destination(source: list[RemoteFolder], dest: list[RemoteFolder],
                          expected: str) -> None:
    result = map_folders(source, COURIER, dest, SLASH)
    assert by_source(result, source[0].name).destination == expected


def test_children_follow_role_folder() -> None:
    result = map_folders(
        [F("INBOX.Sent Items"), F("INBOX.Sent Items.2019"), F("INBOX.Sent Items.2019.Q1")],
        COURIER, [F("INBOX"), F("Sent", "\\Sent")], SLASH,
    )
    assert dests(result) == {"INBOX.Sent Items": "Sent", "INBOX.Sent Items.2019": "Sent/2019",
                             "INBOX.Sent Items.2019.Q1": "Sent/2019/Q1"}


@pytest.mark.parametrize(
    ("source", "winner", "loser", "loser_dest"),
    [
        ([F("INBOX.Sent"), F("INBOX.Sent Items", "\\Sent")],
         "INBOX.Sent Items", "INBOX.Sent", "Sent (2)"),
        ([F("INBOX.Sent Items"), F("INBOX.Sent")], "INBOX.Sent", "INBOX.Sent Items", "Sent Items"),
        ([F("INBOX.Deleted Items"), F("INBOX.Trash")], "INBOX.Trash", "INBOX.Deleted Items",
         "Deleted Items"),
        ([F("INBOX.Trash", "\\Trash"), F("INBOX.Bin", "\\Trash")], "INBOX.Trash", "INBOX.Bin",
         "Bin"),
    ],
)
def test_two_sources_same_role(source: list[RemoteFolder], winner: str, loser: str,
                               loser_dest: str) -> None:
    dest = [F("Sent", "\\Sent"), F("Trash", "\\Trash")]
    result = map_folders(source, COURIER, dest, SLASH)
    w, lose = by_source(result, winner), by_source(result, loser)
    assert w.role is not None and lose.role is None
    assert w.destination in ("Sent", "Trash")
    assert lose.destination == loser_dest
    assert any(f"'{winner}' takes that role; keeps its own name" in n for n in lose.notes)


def test_role_loser_children_follow_the_loser() -> None:
    result = map_folders(
        [F("INBOX.Sent", "\\HasChildren"), F("INBOX.Sent.2019"), F("INBOX.Sent Items", "\\Sent"),
         F("INBOX.Sent Items.2019")], COURIER, [F("Sent", "\\Sent")], SLASH)
    assert dests(result) == {"INBOX.Sent": "Sent (2)", "INBOX.Sent.2019": "Sent (2)/2019",
                             "INBOX.Sent Items": "Sent", "INBOX.Sent Items.2019": "Sent/2019"}
    assert len(result.collisions) == 1


def test_inbox_role_and_impostor() -> None:
    result = map_folders([F("INBOX"), F("INBOX.INBOX"), F("INBOX.inbox.x")], COURIER, [], SLASH)
    assert dests(result) == {"INBOX": "INBOX", "INBOX.INBOX": "INBOX (2)",
                             "INBOX.inbox.x": "INBOX (2)/x"}
    assert by_source(result, "INBOX").role == "inbox"
    assert by_source(result, "INBOX.INBOX").role is None
    assert result.collisions == (
        "'INBOX.INBOX' -> 'INBOX' collides case-insensitively with 'INBOX'; "
        "renamed to 'INBOX (2)'",)


# -------------------------------------------------------------------------- rules


def test_include_exclude() -> None:
    rules = MappingRules(include=("*",), exclude=("Foo", "Trash*", "Public/*"))
    result = map_folders([F(n) for n in ["INBOX", "Foo", "Foo/Bar", "Trash", "Trash/Old",
                                         "Public", "Public/x"]], SLASH, [], COURIER, rules)
    assert result.excluded == (
        ("Foo", "excluded by pattern 'Foo'"),
        ("Public/x", "excluded by pattern 'Public/*'"),
        ("Trash", "excluded by pattern 'Trash*'"),
        ("Trash/Old", "excluded by pattern 'Trash*'"),
    )
    assert dests(result) == {"INBOX": "INBOX", "Foo/Bar": "INBOX.Foo.Bar", "Public": "INBOX.Public"}
    parent = by_dest(result, "INBOX.Foo")
    assert (parent.source, parent.selectable) == ("", False)


@pytest.mark.parametrize(
    ("include", "exclude", "kept"),
    [
        (("*",), (), {"INBOX", "Projects", "Projects/2024", "projects"}),
        (("Projects*",), (), {"Projects", "Projects/2024"}),
        (("Projects",), (), {"Projects"}),
        (("INBOX", "Projects/*"), (), {"INBOX", "Projects/2024"}),
        (("*",), ("*",), set()),
        (("*",), ("Projects/*",), {"INBOX", "Projects", "projects"}),
        (("*",), ("[Pp]rojects",), {"INBOX", "Projects/2024"}),
    ],
)
def test_globs_are_case_sensitive_and_exclude_wins(include: tuple[str, ...],
                                                   exclude: tuple[str, ...],
                                                   kept: set[str]) -> None:
    names = ["INBOX", "Projects", "Projects/2024", "projects"]
    result = map_folders([F(n) for n in names], SLASH, [], SLASH,
                         MappingRules(include=include, exclude=exclude))
    assert {m.source for m in result.mappings if m.source} == kept
    assert {s for s, _ in result.excluded} == set(names) - kept
    reasons = dict(result.excluded)
    if include == ("Projects*",):
        assert reasons["INBOX"] == "not matched by any include pattern"


@pytest.mark.parametrize(
    ("renames", "expected"),
    [
        ((RenameRule(r"Archive/(\d{4})", r"Old/\1"),),
         {"Archive": "Archive", "Archive/2019": "Old/2019", "Archive/2019/Q1": "Old/2019/Q1",
          "Archive/misc": "Archive/misc", "Work": "Work"}),
        ((RenameRule(r"Work", "Jobs/Previous employer"),),
         {"Archive": "Archive", "Archive/2019": "Archive/2019", "Archive/2019/Q1": "Archive/2019/Q1",
          "Archive/misc": "Archive/misc", "Work": "Jobs/Previous employer"}),
        # first matching rule wins; a child's own rule beats following its parent
        ((RenameRule(r"Archive/.*", "X"), RenameRule(r"Archive/2019", "Y"),
          RenameRule("Archive", "Z")),
         {"Archive": "Z", "Archive/2019": "X", "Archive/2019/Q1": "X (2)",
          "Archive/misc": "X (3)", "Work": "Work"}),
        # rules see unicode logical paths and produce them
        ((RenameRule(r"Work", "Été"),),
         {"Archive": "Archive", "Archive/2019": "Archive/2019", "Archive/2019/Q1": "Archive/2019/Q1",
          "Archive/misc": "Archive/misc", "Work": "&AMk-t&AOk-"}),
    ],
)
def test_renames(renames: tuple[RenameRule, ...], expected: dict[str, str]) -> None:
    names = ["Archive", "Archive/2019", "Archive/2019/Q1", "Archive/misc", "Work"]
    result = map_folders([F(n) for n in names], SLASH, [], SLASH, MappingRules(renames=renames))
    assert dests(result) == expected


def test_rename_note_and_implied_parent() -> None:
    rules = MappingRules(renames=(RenameRule(r"INBOX\.x", "ignored"),
                                  RenameRule(r"Archive/(\d{4})", r"Old/\1"),))
    result = map_folders([F("INBOX.Archive.2019")], COURIER, [], SLASH, rules)
    assert [(m.source, m.destination, m.selectable) for m in result.mappings] == [
        ("", "Old", False), ("INBOX.Archive.2019", "Old/2019", True)]
    assert by_source(result, "INBOX.Archive.2019").notes == (
        r"renamed by rule 'Archive/(\d{4})' -> 'Old/2019'",)


def test_inbox_is_never_renamed() -> None:
    rules = MappingRules(renames=(RenameRule(".*", r"Moved/\g<0>"),))
    result = map_folders([F("INBOX"), F("Work")], SLASH, [], SLASH, rules)
    assert dests(result) == {"INBOX": "INBOX", "Work": "Moved/Work"}


def test_rename_to_empty_drops_folder() -> None:
    rules = MappingRules(renames=(RenameRule("Wrapper", ""),))
    result = map_folders([F("Wrapper"), F("Wrapper/a")], SLASH, [], SLASH, rules)
    assert result.excluded == (("Wrapper", "renamed to an empty path"),)
    assert dests(result) == {"Wrapper/a": "a"}


def test_bad_regex_is_config_error() -> None:
    with pytest.raises(ConfigError, match="bad rename pattern"):
        map_folders([F("a")], SLASH, [], SLASH, MappingRules(renames=(RenameRule("(", "x"),)))


# --------------------------------------------------------------------- collisions


@pytest.mark.parametrize(
    ("names", "expected", "n_collisions"),
    [
        (["INBOX.Projects", "INBOX.projects"],
         {"INBOX.Projects": "Projects", "INBOX.projects": "projects (2)"}, 1),
        (["INBOX.projects", "INBOX.PROJECTS", "INBOX.Projects"],
         {"INBOX.PROJECTS": "PROJECTS", "INBOX.Projects": "Projects (2)",
          "INBOX.projects": "projects (3)"}, 2),
        # a natural " (2)" name is never stolen by a suffixed one
        (["INBOX.A", "INBOX.a", "INBOX.a (2)"],
         {"INBOX.A": "A", "INBOX.a": "a (3)", "INBOX.a (2)": "a (2)"}, 1),
        # children follow their renamed parent
        (["INBOX.Projects", "INBOX.projects", "INBOX.projects.x", "INBOX.Projects.x"],
         {"INBOX.Projects": "Projects", "INBOX.projects": "projects (2)",
          "INBOX.Projects.x": "Projects/x", "INBOX.projects.x": "projects (2)/x"}, 1),
        # collisions only within one parent
        (["INBOX.A.x", "INBOX.B.X"], {"INBOX.A.x": "A/x", "INBOX.B.X": "B/X"}, 0),
        # unicode case folding: "Été" vs "éTÉ"
        (["INBOX.&AMk-t&AOk-", "INBOX.&AOk-T&AMk-"],
         {"INBOX.&AMk-t&AOk-": "&AMk-t&AOk-", "INBOX.&AOk-T&AMk-": "&AOk-T&AMk- (2)"}, 1),
        # "ß" casefolds to "ss"
        (["INBOX.Stra&AN8-e", "INBOX.STRASSE"],
         {"INBOX.STRASSE": "STRASSE", "INBOX.Stra&AN8-e": "Stra&AN8-e (2)"}, 1),
    ],
)
def test_case_insensitive_collisions(names: list[str], expected: dict[str, str],
                                     n_collisions: int) -> None:
    result = map_folders([F(n) for n in names], COURIER, [], SLASH)
    assert dests(result) == expected
    assert len(result.collisions) == n_collisions


def test_collision_report_text() -> None:
    result = map_folders([F("INBOX.Projects"), F("INBOX.projects")], COURIER, [], SLASH)
    msg = ("'INBOX.projects' -> 'projects' collides case-insensitively with "
           "'INBOX.Projects'; renamed to 'projects (2)'")
    assert result.collisions == (msg,)
    assert by_source(result, "INBOX.projects").notes == (msg,)


def test_collision_after_rename_never_merges() -> None:
    rules = MappingRules(renames=(RenameRule("Old Stuff", "Archive"),))
    result = map_folders([F("Archive"), F("Old Stuff"), F("Old Stuff/x")], SLASH, [], SLASH, rules)
    assert dests(result) == {"Archive": "Archive", "Old Stuff": "Archive (2)",
                             "Old Stuff/x": "Archive (2)/x"}
    assert result.collisions == (
        "'Old Stuff' -> 'Archive' collides case-insensitively with 'Archive'; "
        "renamed to 'Archive (2)'",)


def test_existing_destination_is_reused_not_a_collision() -> None:
    result = map_folders([F("INBOX.projects"), F("INBOX.projects.a")], COURIER,
                         [F("Projects"), F("INBOX")], SLASH)
    assert dests(result) == {"INBOX.projects": "Projects", "INBOX.projects.a": "Projects/a"}
    assert result.collisions == ()
    assert by_source(result, "INBOX.projects").notes == (
        "uses existing destination folder 'Projects'",)


def test_rerun_against_own_output_is_stable() -> None:
    source = [F(n) for n in ["INBOX", "INBOX.Projects", "INBOX.projects", "INBOX.projects.x",
                             "INBOX.Sent", "INBOX.Sent Items", "INBOX.A.B"]]
    first = map_folders(source, COURIER, [], SLASH)
    dest_now = [F(m.destination) for m in first.mappings]
    second = map_folders(source, COURIER, dest_now, SLASH)
    assert dests(second) == dests(first)
    assert [m.destination for m in second.mappings] == [m.destination for m in first.mappings]


# ---------------------------------------------------------------------- edge cases


def test_empty() -> None:
    assert map_folders([], COURIER, [], SLASH) == MappingResult((), (), ())


@pytest.mark.parametrize(("root", "ns"), [("INBOX.", COURIER), ("INBOX.", COURIER_NOSEP),
                                          ("", SLASH), ("Mail", Namespace("Mail/", "/"))])
def test_namespace_root_dropped(root: str, ns: Namespace) -> None:
    result = map_folders([F(root, "\\Noselect"), F("INBOX")], ns, [F("")], SLASH)
    assert dests(result) == {"INBOX": "INBOX"}
    assert result.excluded == ((root, "namespace root, not a folder"),)


def test_spaces_kept() -> None:
    result = map_folders([F("INBOX. lead"), F("INBOX.trail "), F("INBOX. both . x ")],
                         COURIER, [], SLASH)
    assert dests(result) == {"INBOX. lead": " lead", "INBOX.trail ": "trail ",
                             "INBOX. both . x ": " both / x "}


def test_duplicate_listing_merges_flags() -> None:
    result = map_folders([F("INBOX.X"), F("INBOX.X", "\\Sent")], COURIER, [], SLASH)
    assert [(m.destination, m.role) for m in result.mappings] == [("X", "sent")]


def test_deep_tree() -> None:
    names = [".".join(["INBOX"] + [f"L{i}" for i in range(1, d + 1)]) for d in range(1, 101)]
    result = map_folders([F(n) for n in reversed(names)], COURIER, [], SLASH)
    assert len(result.mappings) == 100
    assert result.mappings[-1].destination == "/".join(f"L{i}" for i in range(1, 101))
    assert result.mappings[-1].logical == tuple(f"L{i}" for i in range(1, 101))
    assert [m.source for m in result.mappings] == names


def test_order_sorted_by_source_parents_first() -> None:
    rules = MappingRules(renames=(RenameRule("Zed", "Top"), RenameRule("Alpha", "Top/Alpha")))
    result = map_folders([F(n) for n in ["Zed", "Alpha", "Beta", "INBOX"]], SLASH, [], SLASH, rules)
    assert [m.source for m in result.mappings] == ["Zed", "Alpha", "Beta", "INBOX"]
    assert [m.destination for m in result.mappings] == ["Top", "Top/Alpha", "Beta", "INBOX"]


def test_determinism_any_input_order() -> None:
    source = [F("INBOX"), F("INBOX.Sent"), F("INBOX.Sent Items", "\\Sent"), F("INBOX.projects"),
              F("INBOX.Projects"), F("INBOX.Projects.x"), F("INBOX.a/b"), F("INBOX.Z.Y.X")]
    dest = [F("Sent", "\\Sent"), F("Gesendet", "\\Sent"), F("INBOX")]
    rules = MappingRules(renames=(RenameRule("Z/(.*)", r"Zz/\1"),))
    expected = map_folders(source, COURIER, dest, SLASH, rules)
    for perm in itertools.islice(itertools.permutations(source), 0, 5040, 97):
        assert map_folders(list(perm), COURIER, list(reversed(dest)), SLASH, rules) == expected


# ------------------------------------------------------------------ property test

_ALPHABET = ["a", "B", "z", " ", "&", "-", "é", "É", "ß", "日", "本", "😀", "+", "_", "~", ","]


def _random_tree(rng: random.Random, size: int, case_clash: bool) -> list[tuple[str, ...]]:
    """Random logical paths; unique per level case-insensitively unless case_clash."""
    paths: list[tuple[str, ...]] = []
    used: set[tuple[str, ...]] = set()
    while len(paths) < size:
        parent = rng.choice([()] + paths) if paths else ()
        if len(parent) >= 6:
            continue
        name = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 6)))
        if case_clash and rng.random() < 0.3 and paths:
            sibling = [p for p in paths if p[:-1] == parent]
            if sibling:
                name = rng.choice(sibling)[-1].swapcase()
        if name.strip().upper() in {"INBOX"} or name.casefold() in {
                n.casefold() for n in ("Sent", "Trash", "Junk", "Spam", "Bin", "Draft")}:
            continue
        path = parent + (name,)
        k = tuple(c.casefold() for c in path) if not case_clash else path
        if k in used:
            continue
        used.add(k)
        paths.append(path)
    return paths


def _courier_raw(path: tuple[str, ...]) -> str:
    # Encoded independently of wire_name: the library's encoder plus manual joining.
    from imapclient import imap_utf7
    return "INBOX." + ".".join(imap_utf7.encode(c).decode("ascii") for c in path)


@pytest.mark.parametrize("seed", range(25))
def test_property_round_trip(seed: int) -> None:
    rng = random.Random(seed)
    tree = _random_tree(rng, rng.randint(1, 60), case_clash=False)
    listed = [p for p in tree if rng.random() < 0.8]  # unlisted parents must be implied
    source = [F(_courier_raw(p), *(["\\Noselect"] if rng.random() < 0.1 else []))
              for p in listed] + [F("INBOX")]
    rng.shuffle(source)
    there = map_folders(source, COURIER, [], SLASH)
    expected_paths = {p[:i] for p in listed for i in range(1, len(p) + 1)} | {("INBOX",)}
    assert {m.logical for m in there.mappings} == expected_paths
    assert there.collisions == () and there.excluded == ()
    for m in there.mappings:
        if m.source:
            assert logical_path(m.source, COURIER) == m.logical
    assert map_folders(list(reversed(source)), COURIER, [], SLASH) == there

    back = map_folders([F(m.destination, *([] if m.selectable else ["\\Noselect"]))
                        for m in there.mappings], SLASH, [], COURIER)
    assert {m.logical for m in back.mappings} == expected_paths
    assert {m.destination for m in back.mappings} == {
        _courier_raw(p) for p in expected_paths if p != ("INBOX",)} | {"INBOX"}
    listed_raw = {f.name for f in source}
    for m in back.mappings:
        assert m.selectable == (m.destination in listed_raw and
                                not any("\\Noselect" in f.flags for f in source
                                        if f.name == m.destination))


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize(("src_ns", "dst_ns"), [(COURIER, SLASH), (SLASH, COURIER), (DOT, SLASH)])
def test_property_collision_free_and_parents_exist(seed: int, src_ns: Namespace,
                                                   dst_ns: Namespace) -> None:
    rng = random.Random(1000 + seed)
    tree = _random_tree(rng, rng.randint(1, 80), case_clash=True)
    source = [F(wire_name(p, src_ns)) for p in tree if rng.random() < 0.85]
    rules = MappingRules(renames=(RenameRule(r"a(.*)", r"A\1"),)) if seed % 2 else MappingRules()
    result = map_folders(source, src_ns, [], dst_ns, rules)
    keys = [m.destination.casefold() for m in result.mappings]
    assert len(keys) == len(set(keys))
    seen: set[tuple[str, ...]] = set()
    for m in result.mappings:
        assert m.logical[:-1] == () or tuple(c.casefold() for c in m.logical[:-1]) in seen
        seen.add(tuple(c.casefold() for c in m.logical))
        assert logical_path(m.destination, dst_ns) == m.logical
    assert {m.source for m in result.mappings if m.source} == {f.name for f in source}
