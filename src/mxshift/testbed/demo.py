"""A real migration between two local Dovecot servers, run the way an admin would.

Why a demo in the package: a new user (and CI) should see mxshift move real mail in one
command, on the embedded defaults (SQLite state, local runner), and check the result.

    python -m mxshift.testbed.demo [--dir demo] [--messages 300] [--keep]
                                   [--no-serve] [--port 8025]

It starts a source and a destination Dovecot on loopback, fills three source mailboxes
with a generated realistic corpus, writes a project (mxshift.toml, users.csv), and runs
the CLI: ``mailboxes import``, ``preflight``, ``sync`` (prestage), then changes the
source (new mail, flags, a move, a deletion) and runs ``sync`` again (delta), then
``status``; then it compares every mailbox on both servers, byte for byte; then it cuts
over (``cutover --now``), lets a message reach the old server and runs a ``sweep`` that
carries it over exactly once (``strays`` shows it). Finally it
verifies the project and serves the dashboard (``mxshift serve``) over it, printing its
URL and a fresh admin password, until Ctrl-C; the Dovecots stay up meanwhile so passes
can be started from the page. ``--no-serve`` ends the demo after the comparison instead
(for scripts and CI).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from mxshift.testbed.corpus import CorpusSpec, generate
from mxshift.testbed.corpus_load import load
from mxshift.testbed.dovecot import DovecotServer, free_port, start_dovecot
from mxshift.testbed.snapshot import diff, snapshot

USERS = [("alice", 1.0), ("bob", 0.4), ("carol", 0.2)]


def _port(wanted: int) -> int:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", wanted))
            return wanted
        except OSError:
            return free_port()


def _cli(directory: Path, *args: str) -> int:
    cmd = [sys.executable, "-m", "mxshift", "-C", str(directory), *args]
    print(f"\n$ mxshift -C {directory} {' '.join(args)}", flush=True)
    return subprocess.call(cmd)


def _change_source(server: DovecotServer, user: str, password: str) -> None:
    """What users do between passes: new mail, read/flag, file a message, delete one."""
    c = server.connect(user, password)
    try:
        spec = CorpusSpec(seed=99, messages=12, folders=1, size_profile="small")
        load(c, generate(spec))
        c.select_folder("INBOX")
        uids = sorted(c.search("ALL"))
        c.add_flags(uids[:5], ["\\Flagged", "$Label1"])
        c.remove_flags(uids[5:8], ["\\Seen"])
        folders = [f[2] for f in c.list_folders() if f[2] != "INBOX"]
        if folders:
            c.move(uids[8:9], folders[0])
        c.delete_messages(uids[9:10])
        c.expunge()
    finally:
        c.logout()


STRAY = (b"Received: from mx.sender.example (mx.sender.example [192.0.2.7])\r\n"
         b"\tby demo-old-server.example with ESMTP; Tue, 1 Dec 2026 09:00:00 +0000\r\n"
         b"Message-ID: <stray-after-cutover@demo.example>\r\nFrom: Dave <dave@example.org>\r\n"
         b"To: alice@example.com\r\nSubject: sent while DNS was still propagating\r\n"
         b"Date: Tue, 1 Dec 2026 09:00:00 +0000\r\n\r\nThis reached the old server.\r\n")


def _cutover_and_sweep(project: Path, src: DovecotServer, dst: DovecotServer) -> bool:
    """The cutover (final sync), then mail still reaching the old server, then a sweep."""
    print("\ncutover: the final sync of every mailbox (this demo project lists no domains, "
          "so there is no DNS gate to pass)")
    if _cli(project, "cutover", "--now") != 0:
        return False
    print("\na message reaches alice's OLD server after the cutover; a sweep carries it over")
    c = src.connect("alice", "src-alice-secret")
    c.append("INBOX", STRAY)
    c.logout()
    if _cli(project, "sweep") != 0 or _cli(project, "strays") != 0:
        return False
    c = dst.connect("alice", "dst-alice-secret")
    c.select_folder("INBOX", readonly=True)
    found = len(c.search(["HEADER", "Message-ID", "<stray-after-cutover@demo.example>"]))
    c.logout()
    print(f"  the stray message is on the destination {found} time(s)")
    return found == 1


def _serve(project: Path, port: int) -> None:
    """``mxshift serve`` in this process, until Ctrl-C."""
    from mxshift.project import open_project
    from mxshift.web import serve

    proj = open_project(project)
    try:
        made = serve.prepare(proj, reset=True)  # a fresh password every demo run
        print(f"\n$ mxshift -C {project} serve --port {port}", flush=True)
        serve.announce(made, serve.base_url("127.0.0.1", port), lambda s: print(s, flush=True))
        print("open the dashboard and log in with the admin password; Ctrl-C stops the demo",
              flush=True)
        serve.run(proj, "127.0.0.1", port)
    finally:
        proj.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path("demo"), help="work directory (replaced)")
    ap.add_argument("--messages", type=int, default=300, help="messages in the largest mailbox")
    ap.add_argument("--keep", action="store_true", help="leave the servers running")
    ap.add_argument("--serve", action=argparse.BooleanOptionalAction, default=True,
                    help="end by serving the dashboard until Ctrl-C (default; --no-serve "
                         "exits after the comparison)")
    ap.add_argument("--port", type=int, default=8025,
                    help="dashboard port (another free one if taken)")
    args = ap.parse_args(argv)

    work = args.dir.resolve()
    if work.exists():
        shutil.rmtree(work)
    project = work / "project"
    project.mkdir(parents=True)
    src = start_dovecot(work / "source-server", name="demo-src", port=_port(11143))
    dst = start_dovecot(work / "destination-server", name="demo-dst", port=_port(12143))
    try:
        print(f"source Dovecot on 127.0.0.1:{src.port}, destination on 127.0.0.1:{dst.port}")
        lines = ["source_user,source_password,destination_user,destination_password"]
        for n, (user, share) in enumerate(USERS):
            pw_src, pw_dst = f"src-{user}-secret", f"dst-{user}-secret"
            src.add_user(user, pw_src)
            dst.add_user(user, pw_dst)
            c = src.connect(user, pw_src)
            spec = CorpusSpec(seed=n + 1, messages=max(10, int(args.messages * share)))
            t0 = time.monotonic()
            count = load(c, generate(spec))
            c.logout()
            print(f"loaded {count} messages into source mailbox {user} "
                  f"({time.monotonic() - t0:.1f}s)")
            # One secret per kind of reference an admin may use.
            if user == "alice":
                os.environ["DEMO_ALICE_SRC"] = pw_src
                lines.append(f"{user},env:DEMO_ALICE_SRC,{user},{pw_dst}")
            elif user == "bob":
                (project / "bob.pw").write_text(pw_src + "\n")
                lines.append(f"{user},file:{project / 'bob.pw'},{user},{pw_dst}")
            else:
                lines.append(f"{user},{pw_src},{user},{pw_dst}")
        (project / "mxshift.toml").write_text(
            f'[source]\nhost = "127.0.0.1"\nport = {src.port}\nsecurity = "none"\n\n'
            f'[destination]\nhost = "127.0.0.1"\nport = {dst.port}\nsecurity = "none"\n')
        (work / "users.csv").write_text("\n".join(lines) + "\n")

        steps = [("mailboxes", "import", str(work / "users.csv")), ("preflight",), ("sync",)]
        for step in steps:
            if _cli(project, *step) != 0:
                print(f"demo: step {' '.join(step)} failed", file=sys.stderr)
                return 1
        print("\nchanging the source: new mail, flags, a move and a deletion for alice")
        _change_source(src, "alice", "src-alice-secret")
        for step in [("sync",), ("status",)]:
            if _cli(project, *step) != 0:
                return 1
        print("\ncomparing every mailbox on both servers (bytes, flags, INTERNALDATE):")
        ok = True
        for user, _ in USERS:
            a = src.connect(user, f"src-{user}-secret")
            b = dst.connect(user, f"dst-{user}-secret")
            differences = diff(snapshot(a), snapshot(b))
            total = sum(len(v) for v in snapshot(a).values())
            a.logout()
            b.logout()
            print(f"  {user}: {total} messages, "
                  + ("identical" if not differences else f"{len(differences)} differences"))
            for d in differences[:10]:
                print(f"    {d}")
            ok = ok and not differences
        if ok:
            ok = _cutover_and_sweep(project, src, dst)
        print("\ndemo " + ("succeeded: the destination is identical to the source" if ok
                           else "FAILED"))
        print(f"project directory: {project} (state in {project / 'mxshift.db'})")
        if ok and args.serve:
            _cli(project, "verify")  # exit 2 on open findings: the dashboard shows them
            _serve(project, _port(args.port))
        if args.keep:
            print(f"servers left running: source 127.0.0.1:{src.port}, destination "
                  f"127.0.0.1:{dst.port}; stop them with: kill {src.pid} {dst.pid}")
        return 0 if ok else 1
    finally:
        if not args.keep:
            src.stop()
            dst.stop()


if __name__ == "__main__":
    sys.exit(main())
