"""Folder-name rules of a destination service (issue 8): names Microsoft 365 or Gmail
would refuse are renamed in the plan, with the reason; collisions after renaming are
told apart deterministically, never merged; and one real pass against Dovecot carrying
Microsoft 365's rules shows the renamed folders created and every message in its own.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from harness import Bed, make_message
from mxshift.folder_names import GMAIL, MICROSOFT365, rules_for, safe_component, safe_path
from mxshift.mapping import MappingRules, Namespace, RemoteFolder, map_folders

SLASH = Namespace("", "/")
DOT = Namespace("INBOX.", ".")


# -- the pure rules -------------------------------------------------------------------------

@pytest.mark.parametrize("name, top, want", [
    ("Projects", True, "Projects"),
    ("Q?A", False, "Q_A"),
    ('say "hi"', False, "say _hi_"),
    ("a*b|c<d>e\\f", False, "a_b_c_d_e_f"),
    (" Leading", False, "Leading"),
    ("Trailing  ", False, "Trailing"),
    ("Ends with dot.", False, "Ends with dot"),
    ("dots...", False, "dots"),
    ("tab\there", False, "tab_here"),
    ("   ", False, "_"),
    ("x" * 300, False, "x" * 255),
    ("Q&A [2020]; a:b + c ~d", False, "Q&A [2020]; a:b + c ~d"),  # kept: common, accepted
    ("Calendar", True, "Calendar"),  # Exchange's reserved names are rename rules (providers)
])
def test_microsoft365_component(name: str, top: bool, want: str) -> None:
    assert safe_component(MICROSOFT365, name, top=top)[0] == want


@pytest.mark.parametrize("name, top, want", [
    ("Sent", True, "Sent (mail)"),
    ("spam", True, "spam (mail)"),
    ("All Mail", True, "All Mail (mail)"),
    ("[Gmail]", True, "[Gmail] (mail)"),
    ("Sent", False, "Sent"),            # below the top level a label may be called anything
    ("Projects", True, "Projects"),
    ("a\\b*c`d", False, "a_b_c_d"),
    ("two  spaces", False, "two spaces"),
    (" Support ", True, "Support"),
    ("Trash ", True, "Trash (mail)"),   # trimmed first, then found reserved
    ("Ends.", False, "Ends."),          # Gmail keeps periods
])
def test_gmail_component(name: str, top: bool, want: str) -> None:
    assert safe_component(GMAIL, name, top=top)[0] == want


def test_reasons_name_the_service_and_the_change() -> None:
    path, why = safe_path(MICROSOFT365, ("Work ", "Q?A."))
    assert path == ("Work", "Q_A")
    assert why is not None
    assert why.startswith("'Work /Q?A.' renamed to 'Work/Q_A': ")
    assert "Microsoft 365 refuses '?' in folder names" in why
    assert "Microsoft 365 refuses a name starting or ending with ' '" in why
    assert "Microsoft 365 refuses a name ending with '.'" in why
    assert safe_path(GMAIL, ("Projects", "2024")) == (("Projects", "2024"), None)
    _, why = safe_path(GMAIL, ("Chats",))
    assert why is not None and "Gmail keeps the top-level name 'Chats' for itself" in why


def test_kept_components_are_left_alone() -> None:
    assert safe_path(MICROSOFT365, ("Old?", "New?"), keep=1) == (
        ("Old?", "New_"), "'Old?/New?' renamed to 'Old?/New_': Microsoft 365 refuses '?' "
                          "in folder names")


def test_rules_for_providers() -> None:
    assert rules_for("microsoft365") is MICROSOFT365
    assert rules_for("gmail") is GMAIL
    assert rules_for("dovecot") is None and rules_for(None) is None


# -- applied by the mapping -----------------------------------------------------------------

def _map(names: list[str], rules: MappingRules, dest: list[str] = (),  # type: ignore[assignment]
         src_ns: Namespace = SLASH):  # type: ignore[no-untyped-def]
    return map_folders([RemoteFolder(n) for n in names], src_ns,
                       [RemoteFolder("INBOX")] + [RemoteFolder(d) for d in dest], SLASH, rules)


M365 = MappingRules(name_rules=MICROSOFT365)
GM = MappingRules(name_rules=GMAIL)


def test_mapping_renames_what_microsoft_refuses_and_children_follow() -> None:
    result = _map(["INBOX", "Clients?", "Clients?/Acme ", "Clients?/Acme /2024", "Fine"], M365)
    by_source = {m.source: m.destination for m in result.mappings if m.source}
    assert by_source == {"INBOX": "INBOX", "Clients?": "Clients_",
                         "Clients?/Acme ": "Clients_/Acme",
                         "Clients?/Acme /2024": "Clients_/Acme/2024", "Fine": "Fine"}
    notes = {m.source: m.notes for m in result.mappings if m.source}
    assert any("refuses '?'" in n for n in notes["Clients?"])
    assert any("starting or ending with ' '" in n for n in notes["Clients?/Acme "])
    assert notes["Fine"] == () and notes["Clients?/Acme /2024"] == ()


def test_a_renamed_folder_never_merges_with_one_that_has_that_name() -> None:
    """"Q?A" becomes "Q_A", which another source folder is already called: the folder with
    its natural name keeps it, the renamed one gets " (2)", whatever the listing order."""
    names = ["INBOX", "Q?A", "Q_A", "Q*A", "Q_A/sub"]
    first = None
    for seed in range(6):
        shuffled = names[:]
        random.Random(seed).shuffle(shuffled)
        result = _map(shuffled, M365)
        by_source = {m.source: m.destination for m in result.mappings if m.source}
        assert by_source == {"INBOX": "INBOX", "Q_A": "Q_A", "Q*A": "Q_A (2)",
                             "Q?A": "Q_A (3)", "Q_A/sub": "Q_A/sub"}
        assert len(set(by_source.values())) == len(by_source)
        assert first is None or result == first
        first = result
        assert len(result.collisions) == 2
        assert all("collides case-insensitively" in c for c in result.collisions)


def test_gmail_reserved_top_level_names_get_the_suffix() -> None:
    result = _map(["INBOX", "Chats", "Important", "Projects", "Projects/Sent",
                   "[Gmail]"], GM)
    by_source = {m.source: m.destination for m in result.mappings if m.source}
    assert by_source["Chats"] == "Chats (mail)"
    assert by_source["Important"] == "Important (mail)"
    assert by_source["[Gmail]"] == "[Gmail] (mail)"
    assert by_source["Projects/Sent"] == "Projects/Sent"
    assert by_source["INBOX"] == "INBOX"


def test_role_folders_go_to_the_destinations_own_and_are_not_renamed() -> None:
    """A Gmail destination lists its "[Gmail]/Sent Mail" with \\Sent: the source's Sent
    folder goes there (it exists, so it is acceptable as it is), not to "Sent (mail)"."""
    src = [RemoteFolder("INBOX"), RemoteFolder("Sent", frozenset({"\\Sent"})),
           RemoteFolder("Trash", frozenset({"\\Trash"}))]
    dst = [RemoteFolder("INBOX"), RemoteFolder("[Gmail]", frozenset({"\\Noselect"})),
           RemoteFolder("[Gmail]/Sent Mail", frozenset({"\\Sent"})),
           RemoteFolder("[Gmail]/Trash", frozenset({"\\Trash"}))]
    result = map_folders(src, SLASH, dst, SLASH, GM)
    by_source = {m.source: m.destination for m in result.mappings if m.source}
    assert by_source == {"INBOX": "INBOX", "Sent": "[Gmail]/Sent Mail",
                         "Trash": "[Gmail]/Trash"}


def test_existing_destination_folders_are_reused_as_they_are() -> None:
    """The server accepted them once (e.g. created by a client): no rename, no new folder."""
    result = _map(["INBOX", "Old "], M365, dest=["Old "])
    assert {m.source: m.destination for m in result.mappings if m.source}["Old "] == "Old "


def test_without_name_rules_nothing_changes() -> None:
    result = _map(["INBOX", "Q?A", "Sent "], MappingRules())
    assert {m.destination for m in result.mappings} == {"INBOX", "Q?A", "Sent "}


def test_dot_separator_source_names_are_checked_after_decoding() -> None:
    result = _map(["INBOX", "INBOX.Caf&AOk- ", "INBOX.Sp&AOk-cial*"], M365, src_ns=DOT)
    assert {m.destination for m in result.mappings if m.source} == {
        "INBOX", "Caf&AOk-", "Sp&AOk-cial_"}


def test_pass_settings_take_the_destination_providers_name_rules(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from mxshift.config import parse_project
    from mxshift.sync import pass_settings
    for provider, rules in (("microsoft365", MICROSOFT365), ("gmail", GMAIL)):
        cfg = parse_project(f'[source]\nhost = "a"\n[destination]\nprovider = "{provider}"\n'
                            'auth = "password"\n', path="x.toml", directory=tmp_path)
        settings = pass_settings(SimpleNamespace(config=cfg))  # type: ignore[arg-type]
        assert settings.rules.name_rules is rules
    cfg = parse_project('[source]\nhost = "a"\n[destination]\nhost = "b"\n', path="x.toml",
                        directory=tmp_path)
    assert pass_settings(SimpleNamespace(config=cfg)).rules.name_rules is None  # type: ignore[arg-type]


# -- a real pass --------------------------------------------------------------------------

def test_engine_pass_with_microsoft365_rules_on_a_dovecot_destination(
        dovecot_src, dovecot_dst, tmp_path: Path) -> None:
    """Dovecot would take every one of these names; the destination is told to follow
    Microsoft 365's rules, as a provider = "microsoft365" destination is. Every source
    folder lands in its own destination folder (none merged), renames are reported as
    folder notes and collisions in the pass notes, and a re-run changes nothing."""
    bed = Bed.make(dovecot_src, dovecot_dst, tmp_path / "bed")
    try:
        layout = {("Q?A",): 2, ("Q_A",): 1, ("Clients ",): 1, ("Clients ", "Acme."): 3,
                  ("Report*",): 1}
        n = 0
        for path, count in layout.items():
            bed.create(*path)
            bed.put(path, [make_message(n + i) for i in range(count)])
            n += count
        rules = MappingRules(name_rules=MICROSOFT365)
        result = bed.run(rules=rules)
        assert result.status == "ok", result.error
        assert result.copied == n
        dest = bed.dest()
        names = {f[2] for f in dest.list_folders()}
        assert {"Q_A", "Q_A (2)", "Clients", "Clients/Acme", "Report_"} <= names
        assert not {"Q?A", "Clients ", "Report*"} & names
        counts = {}
        for name in ("Q_A", "Q_A (2)", "Clients", "Clients/Acme", "Report_"):
            counts[name] = dest.select_folder(name, readonly=True)[b"EXISTS"]
        assert counts == {"Q_A": 1, "Q_A (2)": 2, "Clients": 1, "Clients/Acme": 3,
                          "Report_": 1}
        assert any("'Q?A' -> 'Q_A' collides case-insensitively with 'Q_A'" in note
                   for note in result.notes)
        notes: dict[str, str] = {}
        for f in bed.findings("folder_note"):
            notes[f.folder] = notes.get(f.folder, "") + f.reason + "\n"
        assert "Microsoft 365 refuses '?' in folder names" in notes["Q?A"]
        assert "refuses a name ending with '.'" in notes["Clients /Acme."]
        again = bed.run(rules=rules)
        assert (again.status, again.copied, again.errors) == ("ok", 0, 0)
        assert bed.findings("folder_error") == []
    finally:
        bed.close()
