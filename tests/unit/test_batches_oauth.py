"""Endpoints with OAuth2 token sources, without servers: what is stored (secrets only encrypted),
what is refused, which CSV passwords become optional, and the credentials the scheduler builds."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailferry.adapters.oauth.sources import TokenSource
from mailferry.adapters.oauth.tokens import CachedToken
from mailferry.adapters.secrets import KEY_ENV, Secret
from mailferry.bootstrap import BatchConnector, open_service
from mailferry.cli.app import main
from mailferry.domain.errors import ConfigError
from mailferry.domain.model import AuthMethod, Security
from mailferry.service.batches import BatchOptions, EndpointSpec
from tests.conftest import dump, open_test_service
from tests.fakes import MemoryConnector, run_batch

CLIENT_SECRET = "s3cret-client-value"
NO_PASSWORDS = (
    b"EmailAddress,UserName,Password,TargetPassword\nann@t.example,ann,,\nbob@t.example,bob,,\n"
)


def _service_account_json() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "client_email": "mover@project.iam.gserviceaccount.com",
            "private_key_id": "k1",
            "private_key": pem,
            "token_uri": "https://oauth2.example/token",
        }
    )


@pytest.fixture
def service(tmp_path, monkeypatch, state_database):
    monkeypatch.delenv(KEY_ENV, raising=False)
    svc = open_test_service(state_database, tmp_path)
    svc.add_endpoint(EndpointSpec("old", "127.0.0.1", 10143, Security.NONE))
    yield svc
    svc.close()


def _m365(name: str = "m365", **kw) -> EndpointSpec:
    tokens = TokenSource(
        m365_tenant="contoso", m365_client_id="app", m365_client_secret=CLIENT_SECRET
    )
    return EndpointSpec(name, "outlook.office365.com", tokens=tokens, **kw)


def test_token_secrets_are_stored_only_encrypted(service, state_database):
    sa_json = _service_account_json()
    service.add_endpoint(_m365())
    service.add_endpoint(
        EndpointSpec(
            "gmail", "imap.gmail.com", tokens=TokenSource(google_service_account_json=sa_json)
        )
    )
    rows = dump(state_database, "batch_endpoints")
    assert CLIENT_SECRET not in rows
    assert "PRIVATE KEY" not in rows
    assert "contoso" in rows  # settings that are no secret stay readable
    record = service.endpoint("m365")
    assert CLIENT_SECRET not in repr(record)
    assert CLIENT_SECRET not in repr(service.token_source(record))
    assert service.token_source(record).m365_client_secret == CLIENT_SECRET
    assert service.token_source(service.endpoint("gmail")).google_service_account_json == sa_json
    assert service.token_source(service.endpoint("old")) is None


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        (EndpointSpec("a", "h", auth="xoauth2"), "--auth xoauth2 needs a token source"),
        (_m365(auth="password"), "--auth password contradicts --m365-tenant/--m365-client-id"),
        (_m365(auth_user="admin", auth_password=Secret("x")), "--auth-user is for password"),
        (_m365(profile="exchange2010"), "--profile 'exchange2010': expected one of"),
        (
            EndpointSpec("a", "h", tokens=TokenSource(m365_tenant="t")),
            "--m365-client-id is missing",
        ),
        (
            EndpointSpec("a", "h", tokens=TokenSource(command="x", m365_client_id="c")),
            "give one token source, not --oauth-token-command and",
        ),
        (
            EndpointSpec("a", "h", tokens=TokenSource(google_service_account_json="{}")),
            "not a Google service account key",
        ),
    ],
)
def test_login_settings_are_checked(service, spec, problem):
    with pytest.raises(ConfigError) as info:
        service.add_endpoint(spec)
    assert any(problem in p for p in info.value.problems), info.value.problems


def test_csv_passwords_optional_only_for_token_endpoints(service):
    service.add_endpoint(_m365())
    status = service.create_batch("b1", "m365", "m365", NO_PASSWORDS, BatchOptions())
    assert [m.record.source_secret for m in status.mailboxes] == [None, None]
    service.add_endpoint(EndpointSpec("plain", "127.0.0.2", 10143, Security.NONE))
    with pytest.raises(ConfigError) as info:
        service.create_batch("b2", "m365", "plain", NO_PASSWORDS, BatchOptions())
    assert info.value.problems == [
        "line 2: TargetPassword is empty (and the target endpoint has no admin login)",
        "line 3: TargetPassword is empty (and the target endpoint has no admin login)",
    ]


def test_scheduler_shares_one_provider_per_endpoint_and_applies_profiles(service):
    service.add_endpoint(
        EndpointSpec("cmd", "127.0.0.1", 10144, Security.NONE, auth="oauthbearer",
                     tokens=TokenSource(command="print-token"))
    )  # fmt: skip
    service.add_endpoint(_m365())
    service.create_batch("b", "cmd", "m365", NO_PASSWORDS, BatchOptions())
    connector = MemoryConnector(tokens=BatchConnector(service))
    jobs = run_batch(service, "b", connector)
    ann, bob = jobs["ann@t.example"], jobs["bob@t.example"]
    assert {m.state for m in service.status("b").mailboxes} == {"synced"}
    assert all(s.closed for s in connector.sessions)
    assert ann.source.user == "ann" and ann.source.authuser is None
    assert ann.target.user == "ann@t.example"  # no TargetUserName: the EmailAddress
    assert ann.source_creds.method is AuthMethod.OAUTHBEARER
    assert isinstance(ann.source_creds.tokens, CachedToken)
    assert ann.source_creds.tokens is bob.source_creds.tokens
    assert ann.target_creds.tokens is bob.target_creds.tokens
    assert ann.target_creds.tokens is not ann.source_creds.tokens
    assert (ann.source_profile.name, ann.target_profile.name) == ("generic", "microsoft365")
    assert ann.options.mapping.maps  # the target's reserved names are mapped elsewhere
    assert CLIENT_SECRET not in repr(ann)


def test_google_tokens_are_per_mailbox(service):
    tokens = TokenSource(google_service_account_json=_service_account_json())
    service.add_endpoint(EndpointSpec("gmail", "imap.gmail.com", tokens=tokens))
    service.create_batch(
        "g",
        "old",
        "gmail",
        b"EmailAddress,UserName,Password\na@x.example,a,p\nb@x.example,b,p\n",
        BatchOptions(),
    )
    jobs = run_batch(service, "g", MemoryConnector(tokens=BatchConnector(service)))
    a, b = jobs["a@x.example"], jobs["b@x.example"]
    assert a.target_creds.tokens is not b.target_creds.tokens
    assert a.source_creds.tokens is None and a.source_creds.password == "p"
    assert a.target_profile.name == "gmail"  # by host


def test_rows_written_before_the_login_columns_still_read(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    path = tmp_path / "state.sqlite3"
    open_service(path).close()
    with sqlite3.connect(path) as conn:
        for column in ("auth", "oauth", "profile"):
            conn.execute(f"ALTER TABLE batch_endpoints DROP COLUMN {column}")
        conn.execute(
            "INSERT INTO batch_endpoints (name, host, port, security, max_connections, insecure,"
            " created) VALUES ('early', 'h', 993, 'ssl', 10, 0, 0)"
        )
    service = open_service(path)
    try:
        record = service.endpoint("early")
        assert (record.auth, record.profile, record.oauth) == ("auto", "auto", None)
        service.add_endpoint(_m365())
        assert service.token_source(service.endpoint("m365")) is not None
    finally:
        service.close()


def test_cli_endpoint_add_with_token_sources(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    state = tmp_path / "state.sqlite3"
    secret = tmp_path / "secret.txt"
    secret.write_text(CLIENT_SECRET + "\n")
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["endpoint", "add", "m365", "--host", "outlook.office365.com", "--state", str(state),
         "--m365-tenant", "contoso", "--m365-client-id", "app",
         "--m365-client-secret-file", str(secret), "--auth", "xoauth2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Microsoft 365 app-only login" in result.output
    listed = runner.invoke(main, ["endpoint", "list", "--json", "--state", str(state)])
    assert CLIENT_SECRET not in listed.output
    (row,) = json.loads(listed.output)
    assert (row["auth"], row["login"], row["profile"]) == (
        "xoauth2",
        "Microsoft 365 app-only",
        "auto",
    )
    bad = runner.invoke(
        main,
        ["endpoint", "add", "x", "--host", "h", "--state", str(state),
         "--oauth-token-command", "t", "--auth", "password"],
    )  # fmt: skip
    assert bad.exit_code == 2
    assert "--auth password contradicts --oauth-token-command" in bad.output
    assert CLIENT_SECRET not in state.read_bytes().decode("latin-1")
