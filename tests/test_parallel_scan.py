"""ParallelScan on real source connections (Dovecot): a folder's own error stays that
folder's, any other failure stops the scan and is raised once every worker stopped, and
the extra connections end up with SpareSources either way (closed by the pass)."""

from __future__ import annotations

import threading

import pytest

from mxshift.engine.journal import SimulatedCrash
from mxshift.engine.parallel_scan import ParallelScan, SpareSources
from mxshift.errors import FolderError
from mxshift.store.auth import Credentials
from mxshift.store.base import Store
from mxshift.store.imap import ImapStore
from mxshift.testbed.dovecot import DovecotServer


@pytest.fixture
def account(dovecot_src: DovecotServer):  # type: ignore[no-untyped-def]
    user, password = dovecot_src.new_user("ps")
    opened: list[ImapStore] = []

    def open_source() -> Store:
        store = ImapStore.connect(host=dovecot_src.host, port=dovecot_src.port,
                                  security="none", credentials=Credentials(user, password),
                                  timeout=20)
        opened.append(store)
        return store

    first = open_source()
    for i in range(12):
        first.create_folder(f"F{i:02d}")
    yield first, open_source, opened
    for store in opened:
        store.close()


def test_a_folders_own_error_is_its_result_and_the_others_are_scanned(account) -> None:  # type: ignore[no-untyped-def]
    src, open_source, opened = account
    names = [f"F{i:02d}" for i in range(12)] + ["Missing"]
    threads: set[str] = set()
    extra_started = threading.Event()

    def scan(store: Store, name: str) -> int:
        me = threading.current_thread()
        threads.add(me.name)
        if me is threading.main_thread():  # hold the pass's own connection until an
            extra_started.wait(10)         # extra one has logged in and scans too
        else:
            extra_started.set()
        return store.select(name, readonly=True).uidvalidity  # a real EXAMINE

    spares = SpareSources(open_source)
    found = dict(ParallelScan(src, spares, scan).run(names, 4))
    assert sorted(found) == sorted(names)
    assert isinstance(found["Missing"], FolderError)  # the server's NO, graded
    assert all(isinstance(found[n], int) and found[n] > 0 for n in names[:-1])
    extra = spares.drain()
    assert len(opened) == 1 + len(extra) and len(extra) >= 1  # the extras were kept
    assert len(threads) >= 2  # the folders really went over several connections


def test_another_failure_stops_the_scan_and_is_raised_after_the_workers(account) -> None:  # type: ignore[no-untyped-def]
    src, open_source, opened = account
    names = [f"F{i:02d}" for i in range(12)]
    done: list[str] = []

    def scan(store: Store, name: str) -> str:
        if name == "F03":
            raise SimulatedCrash("killed while scanning F03")
        store.select(name, readonly=True)
        done.append(name)
        return name

    spares = SpareSources(open_source)
    with pytest.raises(SimulatedCrash):
        ParallelScan(src, spares, scan).run(names, 3)
    assert "F03" not in done and len(done) < len(names)  # the others stopped too
    extra = spares.drain()
    assert len(opened) == 1 + len(extra)  # every extra connection is handed back
    late = open_source()
    spares.add(late)  # after drain (the pass is over): logged out at once
    assert spares.drain() == []
    with pytest.raises(Exception):
        late.namespace()  # the connection is closed
