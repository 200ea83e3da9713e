"""Folder mapping as the engine applies it on real servers."""

from __future__ import annotations

from harness import Bed, make_message


def test_special_use_folders_land_in_the_destination_role_folder(
        dovecot_maildirpp, dovecot_dst, tmp_path) -> None:
    bed = Bed.make(dovecot_maildirpp, dovecot_dst, tmp_path / "bed")
    try:
        bed.dest().create_folder("Sent")   # flagged \Sent by the destination's config
        bed.dest().create_folder("Trash")  # flagged \Trash
        bed.create("Sent Items")
        bed.create("Deleted Items")
        bed.create("Sent Items", "2019")
        bed.put(("Sent Items",), [make_message(1), make_message(2)], flags=["\\Seen"])
        bed.put(("Deleted Items",), [make_message(3)])
        bed.put(("Sent Items", "2019"), [make_message(4)])
        result = bed.run()
        assert result.status == "ok" and result.copied == 4, result
        names = {f[2] for f in bed.dest().list_folders()}
        assert names == {"INBOX", "Sent", "Trash", "Sent/2019"}, names
        assert len(bed.uids("Sent", side="dst")) == 2
        assert len(bed.uids("Trash", side="dst")) == 1
        assert len(bed.uids("Sent", "2019", side="dst")) == 1
        assert bed.run().copied == 0
    finally:
        bed.close()
