"""A generated realistic mailbox (multipart, attachments with a tail to several MB,
non-ASCII and nested folders, keywords, no Message-ID, duplicates) copied exactly."""

from __future__ import annotations

from harness import Bed
from mxshift.testbed.corpus import CorpusSpec, folder_tree, generate
from mxshift.testbed.corpus_load import load


def test_realistic_corpus_is_copied_byte_exact(dovecot_maildirpp, dovecot_dst, tmp_path) -> None:
    spec = CorpusSpec(seed=11, messages=220, max_size=6 * 1024 * 1024)
    sizes = [len(m.raw) for m in generate(spec)]
    assert max(sizes) > 1024 * 1024  # the long tail is really there
    bed = Bed.make(dovecot_maildirpp, dovecot_dst, tmp_path / "bed")
    try:
        load(bed.source(), generate(spec), folders=folder_tree(spec))
        # Small batches so the big messages travel alone and batching is exercised.
        result = bed.run(batch_messages=50, batch_bytes=2 * 1024 * 1024)
        assert (result.status, result.copied, result.skipped) == ("ok", 220, 0), result
        assert result.bytes_copied == sum(sizes)
        assert bed.differences() == []
        again = bed.run(batch_messages=50)
        assert (again.copied, again.adopted, again.moved, again.deleted,
                again.flags_updated) == (0, 0, 0, 0, 0)
    finally:
        bed.close()
