"""OAuth2 endpoints through the web (TestClient, no servers): the API and the multipart page form
store token sources as the CLI does (secrets only encrypted), report every problem at once, refuse
token commands, and list login kinds and profiles without a secret. The endpoint test of a token
endpoint runs against a port nothing listens on: its failure is a result."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import get_args

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient

from mailferry.adapters.oauth.sources import TokenSource
from mailferry.adapters.secrets import KEY_ENV, Secret
from mailferry.bootstrap import open_service
from mailferry.domain.model import AuthMethod, Security
from mailferry.domain.profiles import PROFILE_NAMES
from mailferry.service.batches import EndpointSpec
from mailferry.web import create_app
from mailferry.web.credentials import AuthStore
from mailferry.web.schemas import EndpointIn
from tests.unit.web_support import BASE, FAST, SETTINGS

PASSWORD = "correct horse battery"
CLIENT_SECRET = "s3cret-client-value-x9"
ADMIN_SECRET = "admin-pw-zz8"
COMMAND = "fetch-token --client-secret cmd-secret-q7"


def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def certificate_pem() -> str:
    """A PEM file as an app registration's certificate comes: the private key, the certificate."""
    key = private_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailferry-test-app")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key_pem(key) + cert.public_bytes(serialization.Encoding.PEM).decode()


def service_account_json() -> str:
    return json.dumps(
        {
            "type": "service_account",
            "client_email": "mover@project.iam.gserviceaccount.com",
            "private_key_id": "k1",
            "private_key": key_pem(private_key()),
            "token_uri": "https://oauth2.example/token",
        }
    )


@pytest.fixture
def service(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    svc = open_service(tmp_path / "state.sqlite3")
    auth = AuthStore.open_sqlite(svc.state_path, cost=FAST)
    auth.set_admin_password(PASSWORD)
    auth.close()
    yield svc
    svc.close()


@pytest.fixture
def api(service):
    auth = AuthStore.open_sqlite(service.state_path, cost=FAST)
    token = auth.create_token("tests")
    auth.close()
    with TestClient(create_app(service, SETTINGS), base_url=BASE) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


@pytest.fixture
def browser(service):
    with TestClient(create_app(service, SETTINGS), base_url=BASE) as client:
        page = client.post("/login", data={"password": PASSWORD, "next": "/endpoints"})
        client.csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        yield client


def stored_bytes(service) -> bytes:
    """The state database as it is on disk (with its WAL, where fresh rows are)."""
    return b"".join(p.read_bytes() for p in Path(service.state_path).parent.glob("state.sqlite3*"))


def m365_json(**extra) -> dict[str, object]:
    return {
        "name": "m365",
        "host": "outlook.office365.com",
        "m365_tenant": "contoso",
        "m365_client_id": "app-id",
        **extra,
    }


def post_form(browser, files=None, **fields):
    data = {"csrf_token": browser.csrf, "host": "outlook.office365.com", **fields}
    # multipart, as the browser sends it (an empty file part stands for "no file chosen")
    files = files or {"m365_certificate": ("", b"", "application/octet-stream")}
    return browser.post("/endpoints", data=data, files=files)


# -- the API ------------------------------------------------------------------------------------------
def test_api_adds_m365_app_only_with_a_secret(api, service):
    body = m365_json(m365_client_secret=CLIENT_SECRET, auth="xoauth2", profile="microsoft365")
    r = api.post("/api/endpoints", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["login_kind"], out["auth"], out["profile"]) == (
        "Microsoft 365 app-only",
        "xoauth2",
        "microsoft365",
    )
    assert CLIENT_SECRET not in r.text
    record = service.endpoint("m365")
    source = service.token_source(record)
    assert (source.m365_tenant, source.m365_client_id) == ("contoso", "app-id")
    assert source.m365_client_secret == CLIENT_SECRET
    assert CLIENT_SECRET.encode() not in stored_bytes(service)  # stored only encrypted
    assert b"contoso" in stored_bytes(service)


def test_api_adds_certificate_and_service_account_endpoints(api, service):
    pem, sa_json = certificate_pem(), service_account_json()
    r = api.post("/api/endpoints", json=m365_json(m365_certificate_pem=pem))
    assert r.status_code == 201, r.text
    r = api.post(
        "/api/endpoints",
        json={"name": "gmail", "host": "imap.gmail.com", "google_service_account_json": sa_json},
    )
    assert r.status_code == 201, r.text
    assert (r.json()["login_kind"], r.json()["profile_applied"]) == (
        "Google service account",
        "gmail",
    )
    assert service.token_source(service.endpoint("m365")).m365_certificate_pem == pem
    assert service.token_source(service.endpoint("gmail")).google_service_account_json == sa_json
    assert b"PRIVATE KEY" not in stored_bytes(service)


def test_api_lists_every_problem_with_its_keys(api, service):
    r = api.post(
        "/api/endpoints",
        json=m365_json(
            m365_client_id="",
            m365_client_secret="x",
            m365_certificate_pem="not a pem",
            port=70000,
        ),
    )
    assert r.status_code == 400
    problems = r.json()["problems"]
    assert "port 70000: expected 1-65535" in problems
    assert "m365_client_id is missing (the application/client id)" in problems
    assert "give one of m365_client_secret and m365_certificate_pem" in problems
    r = api.post(
        "/api/endpoints",
        json=m365_json(m365_certificate_pem="-----BEGIN nothing", auth="password"),
    )
    assert r.json()["problems"] == [
        "m365_certificate_pem: expected a PEM file with the private key and the certificate",
        "auth password contradicts m365_tenant/m365_client_id",
    ]
    r = api.post(
        "/api/endpoints",
        json={"name": "g", "host": "imap.gmail.com", "google_service_account_json": "{}"},
    )
    assert r.json()["problems"] == [
        "google_service_account_json: not a Google service account key file (JSON)"
    ]
    r = api.post("/api/endpoints", json={"name": "x", "host": "h", "auth": "xoauth2"})
    assert r.json()["problems"] == [
        (
            "auth xoauth2 needs a token source: m365_tenant with m365_client_id, "
            "or google_service_account_json"
        )
    ]
    assert service.endpoints() == []


def test_api_refuses_a_token_command(api, service):
    r = api.post(
        "/api/endpoints",
        json={"name": "cmd", "host": "h.example", "oauth_token_command": COMMAND},
    )
    assert r.status_code == 400
    (problem,) = r.json()["problems"]
    assert problem.startswith("oauth_token_command: a token command is set only on the command")
    assert COMMAND not in r.text
    assert service.endpoints() == []
    schema = api.get("/api/openapi.json").json()["components"]["schemas"]
    assert "Refused" in schema["EndpointIn"]["properties"]["oauth_token_command"]["description"]


def test_api_choices_are_the_services():
    fields = EndpointIn.model_fields
    assert get_args(fields["profile"].annotation) == PROFILE_NAMES
    assert get_args(fields["auth"].annotation) == tuple(m.value for m in AuthMethod)


def test_endpoint_list_shows_login_kind_and_profile_never_a_secret(api, browser, service):
    service.add_endpoint(EndpointSpec("plain", "127.0.0.1", 1, Security.NONE))
    service.add_endpoint(
        EndpointSpec("adm", "127.0.0.1", 1, Security.NONE, auth_user="master",
                     auth_password=Secret(ADMIN_SECRET))
    )  # fmt: skip
    service.add_endpoint(  # set from the CLI: the web lists it, never its command
        EndpointSpec("cmd", "127.0.0.1", 1, Security.NONE, auth="oauthbearer",
                     tokens=TokenSource(command=COMMAND))
    )  # fmt: skip
    tokens = TokenSource(m365_tenant="t", m365_client_id="c", m365_client_secret=CLIENT_SECRET)
    service.add_endpoint(
        EndpointSpec("m365", "outlook.office365.com", tokens=tokens, profile="microsoft365")
    )
    service.add_endpoint(
        EndpointSpec(
            "gmail",
            "imap.gmail.com",
            tokens=TokenSource(google_service_account_json=service_account_json()),
        )
    )
    r = api.get("/api/endpoints")
    rows = {e["name"]: (e["login_kind"], e["auth"], e["profile"]) for e in r.json()}
    assert rows == {
        "plain": ("password", "auto", "auto"),
        "adm": ("admin login", "auto", "auto"),
        "cmd": ("token command", "oauthbearer", "auto"),
        "m365": ("Microsoft 365 app-only", "auto", "microsoft365"),
        "gmail": ("Google service account", "auto", "auto"),
    }
    page = browser.get("/endpoints").text
    m365_row = re.search(r'<tr data-endpoint="m365">.*?</tr>', page, re.DOTALL).group(0)
    assert "Microsoft 365 app-only" in m365_row
    assert "microsoft365" in m365_row
    assert 'placeholder="mailbox"' in m365_row  # a token endpoint is tested as a mailbox
    gmail_row = re.search(r'<tr data-endpoint="gmail">.*?</tr>', page, re.DOTALL).group(0)
    assert 'gmail <span class="small">(by host)</span>' in gmail_row
    for text in (r.text, page):
        for secret in (ADMIN_SECRET, CLIENT_SECRET, COMMAND, "cmd-secret", "PRIVATE KEY"):
            assert secret not in text


# -- the page's form (multipart) ----------------------------------------------------------------------
def test_form_adds_m365_app_only_with_a_secret(browser, service):
    r = post_form(
        browser, name="m365", login="m365", auth="xoauth2", profile="microsoft365",
        m365_tenant="contoso", m365_client_id="app-id", m365_client_secret=CLIENT_SECRET,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    row = re.search(r'<tr data-endpoint="m365">.*?</tr>', r.text, re.DOTALL).group(0)
    assert "Microsoft 365 app-only" in row
    assert "xoauth2" in row
    assert CLIENT_SECRET not in r.text
    source = service.token_source(service.endpoint("m365"))
    assert source.m365_client_secret == CLIENT_SECRET
    assert service.endpoint("m365").auth == "xoauth2"
    assert CLIENT_SECRET.encode() not in stored_bytes(service)


def test_form_uploads_a_certificate_and_a_service_account_key(browser, service):
    pem, sa_json = certificate_pem(), service_account_json()
    r = post_form(
        browser,
        files={"m365_certificate": ("app.pem", pem.encode(), "application/x-pem-file")},
        name="cert", login="m365", m365_tenant="contoso", m365_client_id="app-id",
    )  # fmt: skip
    assert r.status_code == 200, r.text
    r = post_form(
        browser,
        files={"google_key": ("key.json", sa_json.encode(), "application/json")},
        name="gmail", host="imap.gmail.com", login="google",
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert "Google service account" in r.text
    assert service.token_source(service.endpoint("cert")).m365_certificate_pem == pem.rstrip()
    assert service.token_source(service.endpoint("gmail")).google_service_account_json == sa_json
    assert b"PRIVATE KEY" not in stored_bytes(service)
    assert "PRIVATE KEY" not in r.text


def test_form_reports_every_problem_and_keeps_no_secret(browser, service):
    r = post_form(
        browser,
        files={
            "m365_certificate": ("app.pem", b"-----BEGIN junk", "application/x-pem-file"),
            "google_key": ("key.json", b"\xff\xfe not text", "application/json"),
        },
        name="m365", port="99a", login="m365", m365_tenant="contoso", m365_client_id="app-id",
        m365_client_secret=CLIENT_SECRET, auth_password=ADMIN_SECRET,
    )  # fmt: skip
    assert r.status_code == 400
    problems = re.findall(r"<li>(.*?)</li>", r.text)
    assert problems == [
        (
            "the fields of an admin login for every mailbox are filled in, but the login chosen is "
            "Microsoft 365 app-only (OAuth2): choose that login, or empty them"
        ),
        (
            "the fields of Google service account (OAuth2) are filled in, but the login chosen is "
            "Microsoft 365 app-only (OAuth2): choose that login, or empty them"
        ),
        "the service account key (JSON file): not a text file (PEM or JSON)",
        "port &#39;99a&#39;: expected a number",
        "give one of the client secret and the certificate (PEM file)",
    ]
    assert 'value="contoso"' in r.text  # what is no secret stays in the form
    assert 'value="app-id"' in r.text
    assert "give them again" in r.text
    for secret in (CLIENT_SECRET, ADMIN_SECRET, "BEGIN junk"):
        assert secret not in r.text
    assert service.endpoints() == []

    r = post_form(
        browser,
        files={"m365_certificate": ("app.pem", b"-----BEGIN junk", "application/x-pem-file")},
        name="m365", login="m365", m365_tenant="contoso", m365_client_id="app-id",
    )  # fmt: skip
    assert re.findall(r"<li>(.*?)</li>", r.text) == [
        "the certificate (PEM file): expected a PEM file with the private key and the certificate"
    ]
    r = post_form(browser, name="g", login="google")
    assert re.findall(r"<li>(.*?)</li>", r.text) == [
        "the service account key (JSON file): choose the file to upload"
    ]
    r = post_form(browser, name="a", login="admin", auth="xoauth2")
    assert re.findall(r"<li>(.*?)</li>", r.text) == [
        "admin login is missing (the user that logs in for every mailbox)",
        (
            "login method xoauth2 needs a token source: a Microsoft 365 app or a Google service "
            "account key"
        ),
    ]


def test_form_has_no_token_command_and_refuses_one_posted(browser, service):
    page = browser.get("/endpoints").text
    assert "oauth_token_command" not in page
    assert 'name="login"' in page
    assert "only on the command line" in page
    r = post_form(browser, name="cmd", login="password", oauth_token_command=COMMAND)
    assert r.status_code == 400
    assert "token command: a token command is set only on the command line" in r.text
    assert COMMAND not in r.text
    assert service.endpoints() == []


def test_form_needs_csrf_and_loads_its_script_from_static(browser):
    r = browser.post(
        "/endpoints",
        data={"name": "a", "host": "h"},
        files={"google_key": ("k.json", b"{}", "application/json")},
    )
    assert r.status_code == 403
    page = browser.get("/endpoints")
    assert '<script src="/static/endpoints.js" defer></script>' in page.text
    assert "<script>" not in page.text  # no inline script: the CSP allows 'self' only
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert browser.get("/static/endpoints.js").status_code == 200


# -- the endpoint test ----------------------------------------------------------------------------
def test_endpoint_test_of_a_token_endpoint(api, browser, service):
    tokens = TokenSource(m365_tenant="t", m365_client_id="c", m365_client_secret=CLIENT_SECRET)
    service.add_endpoint(
        EndpointSpec("m365", "127.0.0.1", 1, Security.NONE, tokens=tokens, profile="microsoft365")
    )  # port 1: nothing listens there, so no token is ever fetched
    r = api.post("/api/endpoints/m365/test", json={})  # no mailbox: connects, never logs in
    assert r.status_code == 200
    out = r.json()
    assert (out["ok"], out["logged_in"], out["login"]) == (False, False, "")
    assert out["error"].startswith("cannot connect to 127.0.0.1:1")
    r = api.post("/api/endpoints/m365/test", json={"user": "ann@contoso.example"})
    assert r.status_code == 200
    out = r.json()
    assert out["ok"] is False
    assert out["error"].startswith("cannot connect to 127.0.0.1:1")
    assert (out["login"], out["profile"], out["profile_by_host"]) == (
        "ann@contoso.example",
        "microsoft365",
        False,
    )
    assert out["login_methods_offered"] == []
    page = browser.post(
        "/endpoints/m365/test", data={"csrf_token": browser.csrf, "user": "ann@contoso.example"}
    )
    assert page.status_code == 200
    result = re.search(
        r'<div class="error" role="status" id="test-result">.*?</div>', page.text, re.DOTALL
    )
    assert "login as ann@contoso.example failed: cannot connect" in result.group(0)
    assert "microsoft365 (chosen)" in result.group(0)
    page = browser.post("/endpoints/m365/test", data={"csrf_token": browser.csrf})
    assert page.status_code == 200
    assert "cannot connect to 127.0.0.1:1" in page.text
    assert CLIENT_SECRET not in page.text + r.text
