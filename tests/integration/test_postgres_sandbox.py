"""The PostgreSQL test cluster starts fast, asks for passwords over TCP and leaves nothing behind."""

from __future__ import annotations

import socket
import time

import psycopg
import pytest

from mailferry.sandbox.postgres import USER, PostgresServer

pytestmark = pytest.mark.integration

# 0.8 s on an idle machine (initdb 0.6 s of it); the CI machines are shared.
START_BUDGET = 3.0


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def test_a_cluster_starts_fast_and_stops_clean(tmp_path):
    started = time.monotonic()
    with PostgresServer(tmp_path) as server:
        elapsed = time.monotonic() - started
        data, port = server.data_dir, server.port
        with psycopg.connect(libpq(server.url())) as conn:
            row = conn.execute("SELECT current_user, current_setting('fsync')").fetchone()
        assert row == (USER, "off")
        assert accepts(port)
    assert elapsed < START_BUDGET, f"started in {elapsed:.2f}s"
    assert not data.exists()
    assert not accepts(port)


def test_the_role_needs_its_password_and_is_no_superuser(postgres_server):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(libpq(postgres_server.url(password="wrong")), connect_timeout=2)
    with psycopg.connect(libpq(postgres_server.url())) as conn:
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert superuser.fetchone() == (False,)


def test_each_test_database_starts_empty(postgres_database):
    with psycopg.connect(libpq(postgres_database)) as conn:
        conn.execute("CREATE TABLE t (x int)")
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchone() == (1,)


def test_the_next_test_database_is_another_one(postgres_database, postgres):
    assert postgres_database != postgres
    with psycopg.connect(libpq(postgres_database)) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchone() == (0,)
