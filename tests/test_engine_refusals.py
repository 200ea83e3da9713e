"""What the destination refuses is recorded with the server's reason; the pass goes on."""

from __future__ import annotations

import pytest

from harness import Bed, make_message
from mxshift.mapping import MappingRules, RenameRule


@pytest.fixture
def bed(dovecot_src, dovecot_dst, tmp_path):
    b = Bed.make(dovecot_src, dovecot_dst, tmp_path / "bed")
    yield b
    b.close()


def test_refused_folder_name_is_reported_and_the_rest_copied(bed: Bed) -> None:
    bed.create("Old")
    bed.put(("Old",), [make_message(1), make_message(2)])
    bed.put(("INBOX",), [make_message(3)])
    # A name the destination refuses (Dovecot: no leading "~"), here from a rename rule.
    result = bed.run(rules=MappingRules(renames=(RenameRule("Old", "~Old"),)))
    assert result.status == "partial" and result.copied == 1, result
    [finding] = bed.findings("folder_error")
    assert "~Old" in finding.reason and "Begins with '~'" in finding.reason
    assert "2 message(s) were not copied" in finding.reason
    assert bed.uids("INBOX", side="dst") and len(bed.uids("INBOX", side="dst")) == 1
    # The operator adds a rename rule; the next pass copies the folder, nothing twice.
    rules = MappingRules(renames=(RenameRule("Old", "Tilde Old"),))
    again = bed.run(rules=rules)
    assert again.status == "ok" and again.copied == 2, again
    assert len(bed.uids("Tilde Old", side="dst")) == 2
    assert len(bed.uids("INBOX", side="dst")) == 1


def test_message_over_the_size_limit_is_skipped_with_reason(bed: Bed) -> None:
    big = make_message(1, body="x" * 50_000)
    bed.put(("INBOX",), [make_message(0), big, make_message(2)])
    result = bed.run(max_message_size=20_000)
    assert (result.status, result.copied, result.skipped) == ("ok", 2, 1), result
    [finding] = bed.findings("skipped")
    assert finding.subject == "message 1" and finding.size == len(big)
    assert "exceeds the limit of 20000 bytes" in finding.reason
    assert len(bed.uids("INBOX", side="dst")) == 2
    again = bed.run(max_message_size=20_000)
    assert (again.copied, again.skipped) == (0, 0), again  # recorded once, not retried
    assert bed.journal_states() == {"copied": 2, "skipped": 1}
