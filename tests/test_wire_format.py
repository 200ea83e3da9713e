"""Pure formatting and checking on the copy's hot path, against their references.

``imap_wire.internaldate`` must write what imapclient's ``datetime_to_INTERNALDATE``
writes (the APPEND date of every copied message), and ``repair.needs_line_fix`` /
``LineEnds`` must agree with the repair's own regexes (a CR not followed by LF, an LF
not preceded by CR), whole and in pieces through one reused buffer.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from imapclient.datetime_util import datetime_to_INTERNALDATE
from imapclient.fixed_offset import FixedOffset

from mxshift import repair
from mxshift.repair import LineEnds, needs_line_fix
from mxshift.store.imap_wire import internaldate


def test_internaldate_is_imapclients_for_any_zone() -> None:
    rng = random.Random(1)
    for _ in range(5000):
        minutes = rng.choice([0, 60, -60, 330, -210, -720, 840, 45, -45, -1, 1])
        zone = rng.choice([timezone(timedelta(minutes=minutes)), FixedOffset(minutes)])
        date = datetime(rng.randint(1000, 9999), rng.randint(1, 12), rng.randint(1, 28),
                        rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
                        tzinfo=zone)
        assert internaldate(date) == datetime_to_INTERNALDATE(date).encode(), date
    assert internaldate(datetime(2016, 8, 2, 5, 48, 46, tzinfo=FixedOffset(-210))) \
        == b"02-Aug-2016 05:48:46 -0330"
    naive = datetime(2020, 1, 2, 3, 4, 5)  # imapclient gives it the system's zone
    assert internaldate(naive) == datetime_to_INTERNALDATE(naive).encode()
    assert internaldate(datetime(999, 1, 2, tzinfo=timezone.utc)) == \
        b"02-Jan-0999 00:00:00 +0000"  # RFC 3501's date-year has four digits


def definition(raw: bytes) -> bool:
    return bool(repair._BARE_LF.search(raw) or repair._BARE_CR.search(raw))


def test_line_end_check_agrees_with_the_regex_definition() -> None:
    rng = random.Random(3)
    seen = {True: 0, False: 0}
    for _ in range(5000):
        data = b"".join(rng.choice([b"a", b"\r\n", b"\r\n", b"\r\n", b"\r", b"\n",
                                    b"\r\r\n", b"\n\r", b"\ra\n"])
                        for _ in range(rng.randint(0, 14)))
        want = definition(data)
        assert needs_line_fix(data) == want, data
        lines, buf = LineEnds(), bytearray(b"\n\r" * 8)
        at = 0
        while at < len(data):  # pieces of 1-5 bytes, half through the stale buffer
            piece = data[at:at + rng.randint(1, 5)]
            if rng.random() < 0.5:
                buf[:len(piece)] = piece
                lines.feed(buf, len(piece))
            else:
                lines.feed(piece)
            at += len(piece)
        assert lines.needs_fix() == want, data
        seen[want] += 1
    assert min(seen.values()) > 500  # both answers exercised
