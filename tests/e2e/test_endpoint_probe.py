"""``endpoint test`` (CLI and API) without a user to log in as: it checks what needs no
login (connection, TLS, capabilities, login methods offered, profile) and says it did not log in."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from mailferry.bootstrap import open_service
from mailferry.domain.model import Security
from mailferry.sandbox.dovecot import DovecotServer
from mailferry.service.batches import EndpointSpec
from mailferry.web import create_app
from mailferry.web.credentials import AuthStore
from tests.e2e.test_batch_cli import mailferry
from tests.unit.web_support import BASE, SETTINGS

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DovecotServer]:
    with DovecotServer(tmp_path_factory.mktemp("tls"), delimiter=".", ssl=True) as server:
        yield server


@pytest.fixture
def env(tmp_path):
    base = {k: v for k, v in os.environ.items() if not k.startswith("MAILFERRY_")}
    return {**base, "MAILFERRY_STATE": str(tmp_path / "state.sqlite3")}


def test_cli_without_user_checks_what_needs_no_login(dovecot_slash, tls_server, env):
    plain = ["--host", "127.0.0.1", "--port", str(dovecot_slash.port), "--security", "none"]
    assert mailferry("endpoint", "add", "plain", *plain, env=env).returncode == 0
    tls = ["--host", "127.0.0.1", "--port", str(tls_server.ssl_port), "--security", "ssl"]
    tls += ["--ca-file", str(tls_server.ca_file)]
    assert mailferry("endpoint", "add", "tls", *tls, env=env).returncode == 0

    result = mailferry("endpoint", "test", "plain", env=env)
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first == (
        f"imap://127.0.0.1:{dovecot_slash.port}: reachable; not logged in: no admin login; "
        "give --user and its password to test one"
    )
    assert "TLS: none" in result.stdout
    assert re.search(r"^login methods offered: .*PLAIN", result.stdout, re.MULTILINE)
    assert "IMAP4REV1" in result.stdout.upper()
    assert "login used" not in result.stdout

    result = mailferry("endpoint", "test", "tls", env=env)
    assert result.returncode == 0, result.stderr
    assert "TLS: verified" in result.stdout
    assert "not logged in" in result.stdout


def test_api_without_user(dovecot_slash, tmp_path, monkeypatch):
    monkeypatch.delenv("MAILFERRY_KEY", raising=False)
    service = open_service(tmp_path / "state.sqlite3")
    spec = EndpointSpec("plain", "127.0.0.1", dovecot_slash.port, Security.NONE)
    service.add_endpoint(spec)
    auth = AuthStore.open_sqlite(service.state_path)
    auth.set_admin_password("correct horse battery")
    token = auth.create_token("tests")
    auth.close()
    try:
        with TestClient(create_app(service, SETTINGS), base_url=BASE) as client:
            client.headers["Authorization"] = f"Bearer {token}"
            r = client.post("/api/endpoints/plain/test", json={})
    finally:
        service.close()
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["ok"], out["logged_in"], out["login"], out["tls"]) == (True, False, "", "none")
    assert "a user" in out["note"]
    assert "PLAIN" in out["login_methods_offered"]
    assert "IMAP4REV1" in [c.upper() for c in out["capabilities"]]
    assert out["login_method"] is None
