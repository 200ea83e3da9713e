"""What one mailbox's no-change pass costs the source Dovecot, by the commands sent.

Why: step 5 of bench/run (a no-change pass over 100 mailboxes) is bound by the source
Dovecot's CPU, not by the tool's. This logs in to 40 copies of a small mailbox with plain
imaplib, sends each variant's commands, logs out, and prints the Dovecot's CPU per
mailbox (clock ticks: 10 ms / 40 mailboxes = 0.25 ms resolution), three rounds.
Usage: ``bench/server_cost.py``.
"""

from __future__ import annotations

import imaplib
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from accounts import clone, seeded, start_pair  # noqa: E402
from measure import dovecot_cpu, mail_dir, settle  # noqa: E402

from mxshift.testbed.corpus import CorpusSpec  # noqa: E402
from mxshift.testbed.dovecot import stop_servers  # noqa: E402

_STATUS = "STATUS (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)"
VARIANTS: dict[str, list[str]] = {
    "LOGIN, LOGOUT": [],
    "+ plain LIST": ['LIST "" "*"'],
    "+ mxshift's (ENABLE, NAMESPACE, LIST-STATUS)": [
        "ENABLE CONDSTORE QRESYNC", "NAMESPACE",
        f'LIST "" "*" RETURN (SPECIAL-USE CHILDREN {_STATUS})'],
    "  without ENABLE": ["NAMESPACE", f'LIST "" "*" RETURN (SPECIAL-USE CHILDREN {_STATUS})'],
    "  without SPECIAL-USE, CHILDREN": ["ENABLE CONDSTORE QRESYNC", "NAMESPACE",
                                        f'LIST "" "*" RETURN ({_STATUS})'],
}


def main() -> int:
    mail = mail_dir(False)
    src, dst = start_pair(mail)
    try:
        base = seeded(src, "c", CorpusSpec(seed=3, messages=100, size_profile="small"))
        accounts = [clone(base, "x") for _ in range(40)]
        for _round in range(3):
            for name, commands in VARIANTS.items():
                settle([src.pid])
                cpu0 = dovecot_cpu(src.pid)
                for a in accounts:
                    m = imaplib.IMAP4("127.0.0.1", src.port)
                    m.login(a.user, a.password)
                    for command in commands:
                        verb, _, rest = command.partition(" ")
                        typ, data = m._simple_command(verb, *([rest] if rest else []))
                        assert typ == "OK", (command, typ, data)
                    m.logout()
                settle([src.pid])
                per = (dovecot_cpu(src.pid) - cpu0) / len(accounts) * 1000
                print(f"{name:46} {per:6.2f} ms source Dovecot CPU per mailbox", flush=True)
        return 0
    finally:
        stop_servers(src, dst)
        shutil.rmtree(mail, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
