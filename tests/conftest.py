"""Shared pytest fixtures, one section per concern. Helper code lives in the package
(``mxshift.testbed``); keep this file thin."""

from __future__ import annotations

from collections.abc import Iterator
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mxshift.testbed.dovecot import DovecotServer, ServerPool
from mxshift.testbed.unbound import DnsTestbed, start_dns_testbed

if TYPE_CHECKING:  # imported inside the fixtures: these servers are optional
    from mxshift.testbed.postgres import PostgresServer
    from mxshift.testbed.redis import RedisServer

# ---------------------------------------------------------------------------------------
# Real Dovecot servers (session-scoped, started on first use, stopped together at the end)
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dovecot_pool() -> Iterator[ServerPool]:
    # Not under pytest's basetemp: another pytest run on the machine resets that tree to
    # mode 0700, which locks the mail user out of its homes mid-run ([SERVERBUG]).
    base = Path(tempfile.mkdtemp(prefix="mxshift-dovecot-"))
    pool = ServerPool(base)
    yield pool
    pool.stop_all()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot_src(dovecot_pool: ServerPool) -> DovecotServer:
    """Default Dovecot: "/" separator, empty prefix, full capabilities."""
    return dovecot_pool.get("src")


@pytest.fixture(scope="session")
def dovecot_dst(dovecot_pool: ServerPool) -> DovecotServer:
    """Second default Dovecot, the usual migration target."""
    return dovecot_pool.get("dst")


@pytest.fixture(scope="session")
def dovecot_maildirpp(dovecot_pool: ServerPool) -> DovecotServer:
    """Courier-like: personal namespace prefix "INBOX.", separator "."."""
    return dovecot_pool.get("maildirpp")


@pytest.fixture(scope="session")
def dovecot_nocaps(dovecot_pool: ServerPool) -> DovecotServer:
    """No CONDSTORE, QRESYNC, MULTIAPPEND, UIDPLUS, MOVE, SPECIAL-USE, LITERAL+."""
    return dovecot_pool.get("nocaps")


@pytest.fixture(scope="session")
def dovecot_tls(dovecot_pool: ServerPool) -> DovecotServer:
    """Implicit TLS (trust ``ca_file``) with a master user (``master_user``)."""
    return dovecot_pool.get("tls")


@pytest.fixture(scope="session")
def dovecot_starttls(dovecot_pool: ServerPool) -> DovecotServer:
    """Plain port offering STARTTLS (trust ``ca_file``)."""
    return dovecot_pool.get("starttls")


@pytest.fixture(scope="session")
def dovecot_limited(dovecot_pool: ServerPool) -> DovecotServer:
    """5 MB storage quota per user, messages over 1 MB refused with NO [LIMIT]."""
    return dovecot_pool.get("limited")


# ---------------------------------------------------------------------------------------
# Project directories
# ---------------------------------------------------------------------------------------


@pytest.fixture
def tmp_project(tmp_path: Path) -> Path:
    project = tmp_path / "proj"
    project.mkdir()
    return project


# ---------------------------------------------------------------------------------------
# Real DNS servers (issue 5): two knotd for the same test zones and an Unbound in front.
# Fake outlook.com / google.com zones stand in for Microsoft's and Google's DNS.
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dns_testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsTestbed]:
    testbed = start_dns_testbed(tmp_path_factory.mktemp("dns"))
    yield testbed
    testbed.stop()


# ---------------------------------------------------------------------------------------
# Delta modes (issue 3, part 1): a source offering exactly CONDSTORE (no QRESYNC).
# dovecot_src/dovecot_dst offer QRESYNC (+CONDSTORE), dovecot_nocaps neither.
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dovecot_condstore(dovecot_pool: ServerPool) -> DovecotServer:
    """CONDSTORE but no QRESYNC (otherwise the default capabilities)."""
    return dovecot_pool.get("condstore")


# ---------------------------------------------------------------------------------------
# Real PostgreSQL and Redis (issue 9: workers at scale). Session-scoped, started on first
# use; skipped with the reason when the Debian packages are not installed.
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator["PostgresServer"]:
    from mxshift.testbed.postgres import postgres_bin, start_postgres

    if postgres_bin() is None:
        pytest.skip("PostgreSQL binaries missing (initdb/postgres): run scripts/install-system-deps")
    base = Path(tempfile.mkdtemp(prefix="mxshift-pg-"))
    server = start_postgres(base)
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator["RedisServer"]:
    from mxshift.testbed.redis import start_redis

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server missing: run scripts/install-system-deps")
    base = Path(tempfile.mkdtemp(prefix="mxshift-redis-"))
    server = start_redis(base)
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# Issue 8 (OAuth2, throttling): a Dovecot that takes XOAUTH2/OAUTHBEARER, checked against
# the FAKE identity provider (mxshift.testbed.fake_idp) this process runs.
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dovecot_oauth(dovecot_pool: ServerPool) -> DovecotServer:
    """Accepts XOAUTH2/OAUTHBEARER (oauth2 passdb -> fake IdP) and PLAIN passwords."""
    return dovecot_pool.get("oauth")


@pytest.fixture(scope="session")
def fake_idp(dovecot_oauth: DovecotServer, tmp_path_factory: pytest.TempPathFactory):
    """The FAKE IdP, listening where ``dovecot_oauth`` sends its introspection requests."""
    from mxshift.testbed.dovecot_config import IDP_PORT_FILE
    from mxshift.testbed.fake_idp import start_fake_idp

    port = int((dovecot_oauth.base_dir / IDP_PORT_FILE).read_text())
    idp = start_fake_idp(tmp_path_factory.mktemp("idp"), introspection_port=port)
    yield idp
    idp.stop()
