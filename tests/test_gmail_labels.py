"""Gmail labels (issue 8): with ``gmail_labels = "labels"`` a message found in several
source folders is appended once to a Gmail destination and labelled with the others
(X-GM-LABELS); with "folders" (the default) it is copied into each folder as before.

Google cannot be reached here: the destination is the FAKE Gmail of
:mod:`mxshift.testbed.fake_gmail`, a proxy in front of a real Dovecot that advertises
X-GM-EXT-1 and turns "+X-GM-LABELS (L)" into the message showing in folder L. What the
tests check is on the backing Dovecot: every folder holds exactly the source folder's
messages (byte for byte, flags, INTERNALDATE), and the proxy's log says how many messages
were appended and which labels were added.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import func, select

from harness import BASE_DATE, Bed, make_message
from mxshift.config import parse_project
from mxshift.engine.gmail_labels import Anchor, Member, label_of, plan_labels
from mxshift.engine.journal import CrashAt, Hooks, SimulatedCrash
from mxshift.engine.mailbox_pass import MailboxPass, PassResult
from mxshift.engine.settings import PassSettings
from mxshift.errors import ConfigError
from mxshift.mapping import MappingRules
from mxshift.providers import PROFILES, source_exclusions, source_flag_exclusions
from mxshift.state.models import FolderPair, Message
from mxshift.store.auth import Credentials
from mxshift.store.imap import ImapStore
from mxshift.testbed.dovecot import DovecotServer
from mxshift.testbed.fake_gmail import FakeGmail, parse_labels


# -- pure: which messages become labels --------------------------------------------------------

def test_plan_labels_anchor_is_the_lowest_new_member_or_the_journalled_copy() -> None:
    new = [Member(2, 7, "a"), Member(1, 5, "a"), Member(3, 1, "a"),   # one message, 3 folders
           Member(1, 6, "b"),                                        # alone: appended
           Member(2, 8, "c"), Member(2, 9, "c"),                     # twice in one folder
           Member(3, 2, "d")]                                        # journalled in pair 1
    plan = plan_labels(new, {"d": Anchor(1, 40)})
    assert plan == {Member(2, 7, "a"): Anchor(1, 5), Member(3, 1, "a"): Anchor(1, 5),
                    Member(3, 2, "d"): Anchor(1, 40)}


def test_plan_labels_one_label_per_folder_and_none_in_the_anchors_folder() -> None:
    new = [Member(1, 1, "x"), Member(1, 2, "x"), Member(2, 3, "x"), Member(2, 4, "x")]
    assert plan_labels(new, {}) == {Member(2, 3, "x"): Anchor(1, 1)}
    # the journalled copy's own folder gets no label; the others one each
    assert plan_labels([Member(1, 9, "y"), Member(2, 9, "y")], {"y": Anchor(1, 3)}) == {
        Member(2, 9, "y"): Anchor(1, 3)}


def test_label_names() -> None:
    assert label_of(FolderPair(destination_name="INBOX", role="inbox")) == "\\Inbox"
    assert label_of(FolderPair(destination_name="Clients/Acme", role=None)) == "Clients/Acme"
    assert label_of(FolderPair(destination_name="Caf&AOk-", role=None)) == "Café"


def test_fake_parses_labels_as_imapclient_sends_them() -> None:
    assert parse_labels(b'"\\\\Inbox" "Clients/Acme" Caf&AOk- "say \\"hi\\""') == [
        "\\Inbox", "Clients/Acme", "Caf&AOk-", 'say "hi"']


def test_config_option(tmp_path: Path) -> None:
    base = '[source]\nhost = "a"\n[destination]\nhost = "b"\n'
    assert parse_project(base, path="x", directory=tmp_path).options.gmail_labels == "folders"
    cfg = parse_project(base + '[options]\ngmail_labels = "labels"\n', path="x",
                        directory=tmp_path)
    assert cfg.options.gmail_labels == "labels"
    from types import SimpleNamespace

    from mxshift.sync import pass_settings
    assert pass_settings(SimpleNamespace(config=cfg)).gmail_labels == "labels"  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="gmail_labels"):
        parse_project(base + '[options]\ngmail_labels = "tags"\n', path="x", directory=tmp_path)


# -- real passes through the fake ------------------------------------------------------------

@pytest.fixture
def gmail_dst(dovecot_dst: DovecotServer) -> Iterator[FakeGmail]:
    with FakeGmail(upstream=(dovecot_dst.host, dovecot_dst.port)) as fake:
        yield fake


def _run(bed: Bed, dst: FakeGmail, *, mode: str, hooks: Hooks | None = None,
         src_port: int | None = None, rules: MappingRules = MappingRules(),
         parallel: int = 1) -> PassResult:
    assert bed.db is not None

    def source() -> ImapStore:
        return ImapStore.connect(host=bed.src_server.host,
                                 port=src_port or bed.src_server.port, security="none",
                                 credentials=Credentials(bed.su, bed.sp))

    def destination() -> ImapStore:
        return ImapStore.connect(host=dst.host, port=dst.port, security="none",
                                 credentials=Credentials(bed.du, bed.dp))

    return MailboxPass(bed.db, bed.mailbox_id, source=source, destination=destination,
                       settings=PassSettings(batch_messages=2, gmail_labels=mode, rules=rules,
                                             folder_parallelism=parallel),
                       hooks=hooks).run()


# message number -> source folders it is in (one message, the same bytes and date in each)
LAYOUT: dict[int, tuple[tuple[str, ...], ...]] = {
    1: (("INBOX",), ("Projects",)),
    2: (("INBOX",), ("Projects",), ("Clients", "Acme")),
    3: (("Projects",),),
    4: (("Clients", "Acme"), ("Projects",)),
    5: (("INBOX",),),
}
NO_ID = 6  # no Message-ID: a weak fingerprint, copied into each folder


def _fill(bed: Bed, layout: dict[int, tuple[tuple[str, ...], ...]], *, src: bool = True,
          all_mail: tuple[str, ...] | None = None) -> None:
    client = bed.source()
    wanted = {f for folders in layout.values() for f in folders}
    wanted |= {f[:i] for f in wanted for i in range(1, len(f))}  # parents: real folders
    for folder in sorted(wanted | ({all_mail} if all_mail else set())):
        if folder != ("INBOX",):
            try:
                client.create_folder(bed.folder("src", *folder))
            except Exception:
                pass
    for n, folders in sorted(layout.items()):
        raw = make_message(n, message_id=n != NO_ID)
        for folder in folders + ((all_mail,) if all_mail else ()):
            client.append(bed.folder("src", *folder), raw, flags=("\\Seen",),
                          msg_time=BASE_DATE + timedelta(minutes=n))


def _origins(bed: Bed) -> dict[str, int]:
    assert bed.db is not None
    with bed.db.session() as s:
        return dict(s.execute(select(Message.origin, func.count()).group_by(Message.origin))
                    .all())  # type: ignore[arg-type]


@pytest.fixture
def bed(dovecot_src: DovecotServer, dovecot_dst: DovecotServer,
        tmp_path: Path) -> Iterator[Bed]:
    b = Bed.make(dovecot_src, dovecot_dst, tmp_path / "bed")
    yield b
    b.close()


@pytest.mark.parametrize("parallel", [1, 3], ids=["serial", "parallel-folders"])
def test_labels_mode_appends_each_message_once_and_labels_the_other_folders(
        bed: Bed, gmail_dst: FakeGmail, parallel: int) -> None:
    _fill(bed, LAYOUT | {NO_ID: (("INBOX",), ("Projects",))})
    result = _run(bed, gmail_dst, mode="labels", parallel=parallel)
    assert result.status == "ok", (result.error, result.notes)
    assert bed.differences() == []           # every folder exact on the backing Dovecot
    assert gmail_dst.appends() == 5 + 2      # 5 distinct messages, the weak one twice
    # anchors are in the folder pair created first ("Clients/Acme" sorts before INBOX);
    # one STORE per (anchor folder, label): m2 and m4 get "Projects" together
    assert sorted(gmail_dst.labels_added()) == ["Projects", "Projects", "\\Inbox"]
    assert _origins(bed) == {"appended": 7, "labelled": 4}
    again = _run(bed, gmail_dst, mode="labels")
    assert (again.status, again.copied, again.errors) == ("ok", 0, 0)
    assert gmail_dst.appends() == 7 and len(gmail_dst.labels_added()) == 3
    assert bed.differences() == []


def test_labels_follow_the_source_in_a_delta_pass(bed: Bed, gmail_dst: FakeGmail) -> None:
    """Message 3 gets added to INBOX on the source later: the delta pass labels the copy it
    journalled in Projects "\\Inbox" (Gmail's system label) instead of appending it."""
    _fill(bed, LAYOUT)
    assert _run(bed, gmail_dst, mode="labels").status == "ok"
    appended = gmail_dst.appends()
    _fill(bed, {3: (("INBOX",),)})
    result = _run(bed, gmail_dst, mode="labels")
    assert result.status == "ok", (result.error, result.notes)
    assert gmail_dst.appends() == appended
    assert gmail_dst.labels_added()[-1] == "\\Inbox"
    assert bed.differences() == []


def test_folders_mode_copies_into_each_folder(bed: Bed, gmail_dst: FakeGmail) -> None:
    _fill(bed, LAYOUT)
    result = _run(bed, gmail_dst, mode="folders")
    assert result.status == "ok", result.error
    assert gmail_dst.appends() == sum(len(f) for f in LAYOUT.values()) == 9
    assert gmail_dst.labels_added() == []
    assert bed.differences() == []


def test_labels_mode_without_x_gm_ext_1_copies_into_each_folder(bed: Bed) -> None:
    """A plain IMAP destination knows no labels: "labels" falls back to copies."""
    _fill(bed, LAYOUT)
    assert bed.run(gmail_labels="labels").copied == 9
    assert bed.differences() == []
    assert _origins(bed) == {"appended": 9}


def test_gmail_to_gmail_all_mail_is_not_copied_and_labels_are_applied(
        bed: Bed, gmail_dst: FakeGmail, dovecot_src: DovecotServer) -> None:
    """Both sides Gmail-style: the source (itself behind a fake Gmail) shows every message
    in "[Gmail]/All Mail" and in each of its labels' folders. All Mail is a view (the
    Gmail profile excludes it); each message is appended once and labelled."""
    _fill(bed, LAYOUT, all_mail=("[Gmail]", "All Mail"))
    gmail = PROFILES["gmail"]
    rules = MappingRules(exclude=source_exclusions(gmail),
                         exclude_flags=source_flag_exclusions(gmail))
    with FakeGmail(upstream=(dovecot_src.host, dovecot_src.port)) as gmail_src:
        result = _run(bed, gmail_dst, mode="labels", src_port=gmail_src.port, rules=rules)
    assert result.status == "ok", (result.error, result.notes)
    assert gmail_dst.appends() == len(LAYOUT)
    assert _origins(bed)["labelled"] == sum(len(f) for f in LAYOUT.values()) - len(LAYOUT)
    # All Mail stays behind; its \\Noselect parent is created (empty) as for any parent
    assert bed.differences() == ["extra folder [Gmail] (0 messages)",
                                 "missing folder [Gmail]/All Mail (5 messages)"]


def test_crash_at_every_step_then_rerun_is_exact(dovecot_src: DovecotServer,
                                                 dovecot_dst: DovecotServer,
                                                 gmail_dst: FakeGmail, tmp_path: Path) -> None:
    """Killed at every checkpoint of a labels pass (appends, label STOREs, journal
    transactions) and run again: no message twice in a folder, none missing, every label
    present, and a third run changes nothing."""
    layout = {1: LAYOUT[1], 2: LAYOUT[2], 4: LAYOUT[4]}
    counter = Bed.make(dovecot_src, dovecot_dst, tmp_path / "count")
    probe = CrashAt(None)
    try:
        _fill(counter, layout)
        assert _run(counter, gmail_dst, mode="labels", hooks=probe).status == "ok"
    finally:
        counter.close()
    assert "store +x-gm-labels" in probe.labels and "journal pending labels" in probe.labels
    for n in range(probe.count):
        b = Bed.make(dovecot_src, dovecot_dst, tmp_path / f"crash{n}")
        try:
            _fill(b, layout)
            with pytest.raises(SimulatedCrash):
                _run(b, gmail_dst, mode="labels", hooks=CrashAt(n))
            result = _run(b, gmail_dst, mode="labels")
            where = f"crash at step {n} ({probe.labels[n]})"
            assert result.status == "ok", (where, result.error, result.notes)
            assert b.differences() == [], where
            quiet = _run(b, gmail_dst, mode="labels")
            assert (quiet.copied, quiet.errors, quiet.adopted) == (0, 0, 0), where
            assert b.differences() == [], where
            assert b.journal_states() == {"copied": 7}, where
            # each message appended once (or adopted after a crash ate the answer)
            origins = _origins(b)
            assert origins.get("appended", 0) + origins.get("adopted", 0) == 7 - 4, where
        finally:
            b.close()


def test_a_skipped_anchor_leaves_its_other_folders_to_the_copy_path(
        bed: Bed, gmail_dst: FakeGmail) -> None:
    """Too large for the destination: the anchor is skipped with its reason, and so is
    the message in its other folder (copy path, same limit); nothing is labelled."""
    client = bed.source()
    client.create_folder(bed.folder("src", "Projects"))
    big = make_message(1, body="x" * 6000)
    for folder in (("INBOX",), ("Projects",)):
        client.append(bed.folder("src", *folder), big, msg_time=BASE_DATE)
    assert bed.db is not None
    result = MailboxPass(
        bed.db, bed.mailbox_id,
        source=lambda: bed.store(bed.src_server, bed.su, bed.sp),
        destination=lambda: ImapStore.connect(host=gmail_dst.host, port=gmail_dst.port,
                                              security="none",
                                              credentials=Credentials(bed.du, bed.dp)),
        settings=PassSettings(gmail_labels="labels", max_message_size=4000)).run()
    assert result.status == "ok", result.error
    assert (result.copied, result.skipped) == (0, 2)
    assert gmail_dst.labels_added() == [] and gmail_dst.appends() == 0
    assert len(bed.findings("skipped")) == 2
