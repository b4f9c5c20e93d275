"""A password written into an endpoint URL (``imap://user:secret@host``) or host is refused with
one line saying where passwords go, exit code 2, and the password is never echoed (issue #11)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from mailferry.bootstrap import open_service
from mailferry.cli.app import main
from mailferry.config import parse_endpoint
from mailferry.domain.errors import ConfigError
from mailferry.web import create_app
from mailferry.web.credentials import AuthStore
from tests.unit.web_support import BASE, SETTINGS

SECRET = "s3cr3t-in-url-7351"


@pytest.mark.parametrize(
    "url",
    [
        f"imaps://ann:{SECRET}@mail.example.com",
        f"imap://ann@example.com:{SECRET}@127.0.0.1:143",  # a user with @, then the password
        f"pop3://ann:{SECRET}@mail.example.com",  # refused before the scheme is echoed
    ],
)
def test_parse_endpoint_refuses_a_password_without_echoing_it(url):
    with pytest.raises(ConfigError) as caught:
        parse_endpoint(url, side="source")
    (problem,) = caught.value.problems
    assert SECRET not in problem
    assert "--source-password-file" in problem and "MAILFERRY_SOURCE_PASSWORD" in problem


def test_percent_encoded_colon_stays_part_of_the_user():
    assert parse_endpoint("imaps://dom%3Aann@mail.example.com").user == "dom:ann"


@pytest.mark.parametrize("command", ["sync", "verify"])
def test_sync_and_verify_exit_2_with_one_line(command, tmp_path):
    argv = [
        command,
        f"imap://ann:{SECRET}@127.0.0.1:1",
        "imap://bob@127.0.0.1:1",
        "--state",
        str(tmp_path / "s.db"),
    ]
    result = CliRunner().invoke(main, argv, env={"MAILFERRY_TARGET_PASSWORD": "x"})
    assert result.exit_code == 2
    assert SECRET not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert "password does not belong in the URL" in lines[0]
    assert "--source-password-file" in lines[0]


def test_login_refuses_a_password_in_its_url(tmp_path):
    argv = ["login", f"imaps://ann:{SECRET}@outlook.office365.com", "--m365-client-id", "app"]
    result = CliRunner().invoke(main, [*argv, "--state", str(tmp_path / "s.db")])
    assert result.exit_code == 2
    assert SECRET not in result.stdout + result.stderr
    assert "takes no password" in result.stderr


def test_endpoint_add_refuses_a_password_in_the_host(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILFERRY_KEY", raising=False)
    argv = ["endpoint", "add", "old", "--host", f"admin:{SECRET}@127.0.0.1"]
    result = CliRunner().invoke(main, [*argv, "--state", str(tmp_path / "s.db")])
    assert result.exit_code == 2
    assert SECRET not in result.stdout + result.stderr
    assert "--auth-password-file" in result.stderr


def test_api_refuses_a_password_in_the_host(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILFERRY_KEY", raising=False)
    service = open_service(tmp_path / "state.sqlite3")
    auth = AuthStore.open_sqlite(service.state_path)
    auth.set_admin_password("correct horse battery")
    token = auth.create_token("tests")
    auth.close()
    try:
        with TestClient(create_app(service, SETTINGS), base_url=BASE) as client:
            client.headers["Authorization"] = f"Bearer {token}"
            body = {"name": "old", "host": f"admin:{SECRET}@127.0.0.1", "security": "none"}
            r = client.post("/api/endpoints", json=body)
    finally:
        service.close()
    assert r.status_code == 400
    assert SECRET not in r.text
    assert any("auth_password" in p for p in r.json()["problems"])
