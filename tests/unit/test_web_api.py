"""The REST API through FastAPI's TestClient: every route, auth failures, bad input. No sockets:
endpoints point at hosts nothing connects to (nothing here starts a batch's scheduler)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from mailferry.bootstrap import open_service
from mailferry.service.csvimport import parse_batch_csv
from mailferry.web import create_app
from mailferry.web.credentials import AuthStore
from mailferry.web.operations import folder_defaults
from mailferry.web.passwords import check_password, hash_password
from tests.unit.web_support import BASE, FAST, SETTINGS

PASSWORD = "correct horse battery"
CSV = (
    b"EmailAddress,UserName,Password,TargetPassword\n"
    b"alice@new.example,alice,pw-a,tpw-a\n"
    b"bob@new.example,bob,pw-b,tpw-b\n"
)


@pytest.fixture
def service(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILFERRY_KEY", raising=False)
    svc = open_service(tmp_path / "state.sqlite3")
    yield svc
    svc.close()


@pytest.fixture
def token(service):
    auth = AuthStore.open_sqlite(service.state_path, cost=FAST)
    auth.set_admin_password(PASSWORD)
    value = auth.create_token("tests")
    auth.close()
    return value


@pytest.fixture
def client(service, token):
    with TestClient(create_app(service, SETTINGS), base_url=BASE) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def add_endpoints(client):
    for name in ("old", "new"):
        r = client.post(
            "/api/endpoints",
            json={"name": name, "host": "127.0.0.1", "port": 1, "security": "none"},
        )
        assert r.status_code == 201, r.text


def create(client, name="b1", data=CSV, **extra):
    fields = {"name": name, "source": "old", "target": "new", **extra}
    return client.post("/api/batches", data=fields, files={"csv": ("b.csv", data, "text/csv")})


def test_password_hash_is_scrypt_and_checks():
    stored = hash_password("secret-password", FAST)
    assert stored.startswith("scrypt$1024$")
    assert "secret-password" not in stored
    assert check_password("secret-password", stored)
    assert not check_password("secret-passwore", stored)
    assert not check_password("x", "garbage")


def test_short_admin_password_refused(service):
    auth = AuthStore.open_sqlite(service.state_path, cost=FAST)
    with pytest.raises(Exception, match="at least 12"):
        auth.set_admin_password("short")
    auth.close()


def test_openapi_schema(client):
    schema = client.get("/api/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/api/endpoints",
        "/api/endpoints/{name}/test",
        "/api/batches",
        "/api/batches/{name}",
        "/api/batches/{name}/{action}",
        "/api/batches/{name}/report",
        "/api/batches/{name}/mailboxes/{address}",
    ):
        assert path in paths
    assert "auth_password" not in json.dumps(schema["components"]["schemas"]["EndpointOut"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/endpoints"),
        ("post", "/api/endpoints"),
        ("post", "/api/endpoints/x/test"),
        ("get", "/api/batches"),
        ("post", "/api/batches"),
        ("get", "/api/batches/x"),
        ("post", "/api/batches/x/start"),
        ("delete", "/api/batches/x"),
        ("get", "/api/batches/x/report"),
        ("get", "/api/batches/x/mailboxes/a@b.example"),
    ],
)
def test_every_route_needs_auth(service, token, method, path):
    with TestClient(create_app(service, SETTINGS), base_url=BASE) as anonymous:
        r = getattr(anonymous, method)(path)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"].startswith("authentication required")
        r = getattr(anonymous, method)(path, headers={"Authorization": "Bearer mft_wrong"})
        assert r.status_code == 401


def test_session_cookie_needs_csrf_header_for_changes(service, token):
    with TestClient(create_app(service, SETTINGS), base_url=BASE) as browser:
        r = browser.post("/login", data={"password": PASSWORD}, follow_redirects=False)
        assert r.status_code == 303
        assert browser.get("/api/endpoints").status_code == 200
        body = {"name": "old", "host": "127.0.0.1", "security": "none"}
        assert browser.post("/api/endpoints", json=body).status_code == 403
        page = browser.get("/endpoints").text
        csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        r = browser.post("/api/endpoints", json=body, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 201


def test_endpoints_add_list_never_return_passwords(client):
    r = client.post(
        "/api/endpoints",
        json={
            "name": "adm",
            "host": "127.0.0.1",
            "security": "none",
            "auth_user": "master",
            "auth_password": "sup3r-secret",
        },
    )
    assert r.status_code == 201
    assert "sup3r-secret" not in r.text
    listed = client.get("/api/endpoints")
    assert listed.status_code == 200
    assert listed.json()[0]["has_admin_password"] is True
    assert "sup3r-secret" not in listed.text
    assert client.get("/api/openapi.json").status_code == 200


def test_endpoint_bad_input(client):
    r = client.post("/api/endpoints", json={"name": "bad name", "host": "a b", "port": 70000})
    assert r.status_code == 400
    problems = r.json()["problems"]
    assert any("endpoint name" in p for p in problems)
    assert "port 70000: expected 1-65535" in problems  # the API names its keys, not options
    r = client.post("/api/endpoints", json={"host": "x"})
    assert r.status_code == 422
    assert any("name" in p for p in r.json()["problems"])
    r = client.post(
        "/api/endpoints", json={"name": "plain", "host": "mail.example", "security": "none"}
    )
    assert r.status_code == 400
    assert "unencrypted" in r.json()["error"]
    add_endpoints(client)
    r = client.post("/api/endpoints", json={"name": "old", "host": "127.0.0.1", "security": "none"})
    assert r.status_code == 409


def test_endpoint_test_failure_is_a_result(client):
    add_endpoints(client)  # port 1: nothing listens there
    r = client.post("/api/endpoints/old/test", json={"user": "u", "password": "p"})
    assert r.status_code == 200
    assert r.json()["ok"] is False
    assert r.json()["error"]
    assert "p" not in r.json().get("password", "")
    r = client.post("/api/endpoints/old/test", json={})  # no login: the connection is tested
    assert r.status_code == 200
    assert (r.json()["ok"], r.json()["logged_in"]) == (False, False)
    assert client.post("/api/endpoints/none/test", json={}).status_code == 404


def test_batch_lifecycle_routes(client):
    add_endpoints(client)
    r = create(client, since="2020-01-01", include_folders="^INBOX$")
    assert r.status_code == 201, r.text
    batch = r.json()
    assert batch["mailbox_count"] == 2
    assert batch["since"] == "2020-01-01"
    assert {m["state"] for m in batch["mailboxes"]} == {"created"}
    assert "pw-a" not in r.text
    assert "tpw-a" not in r.text

    listed = client.get("/api/batches").json()
    assert [b["name"] for b in listed] == ["b1"]
    assert client.get("/api/batches/b1").json()["counts"] == {"created": 2}

    r = client.post("/api/batches/b1/start")
    assert r.json() == {"batch": "b1", "action": "start", "mailboxes": 2}
    assert client.get("/api/batches/b1").json()["counts"] == {"queued": 2}
    r = client.post("/api/batches/b1/stop")
    assert r.json()["mailboxes"] == 2
    assert client.get("/api/batches/b1").json()["counts"] == {"stopped": 2}
    assert client.post("/api/batches/b1/resume").json()["mailboxes"] == 2
    client.post("/api/batches/b1/stop")
    assert client.post("/api/batches/b1/sync").json()["mailboxes"] == 2
    client.post("/api/batches/b1/stop")
    assert client.post("/api/batches/b1/complete").json()["mailboxes"] == 2
    assert client.post("/api/batches/b1/explode").status_code == 422
    assert client.post("/api/batches/nope/start").status_code == 404

    mailbox = client.get("/api/batches/b1/mailboxes/alice@new.example")
    assert mailbox.status_code == 200
    detail = mailbox.json()
    assert detail["batch"] == "b1"
    assert detail["folder_progress"] == []
    assert detail["failures"] == []
    assert client.get("/api/batches/b1/mailboxes/zed@new.example").status_code == 404

    r = client.delete("/api/batches/b1")
    assert r.status_code == 200
    assert client.get("/api/batches/b1").status_code == 404
    assert client.delete("/api/batches/b1").status_code == 404


def test_a_batch_is_shown_a_page_at_a_time_filtered(client):
    add_endpoints(client)
    create(client)
    page = client.get("/api/batches/b1?per_page=1&page=2").json()
    assert [m["address"] for m in page["mailboxes"]] == ["bob@new.example"]
    assert (page["matched"], page["page"], page["per_page"]) == (2, 2, 1)
    assert page["mailbox_count"] == 2  # the batch's totals, whatever the page
    found = client.get("/api/batches/b1?q=ALICE").json()
    assert [m["address"] for m in found["mailboxes"]] == ["alice@new.example"]
    assert client.get("/api/batches/b1?state=created&errors=no").json()["matched"] == 2
    assert client.get("/api/batches/b1?errors=yes").json()["mailboxes"] == []
    for bad in ("state=sleeping", "errors=maybe", "per_page=0", "per_page=5000", "page=0"):
        r = client.get(f"/api/batches/b1?{bad}")
        assert r.status_code == 400, bad
        assert bad.split("=")[0] in r.text


def test_reports(client):
    add_endpoints(client)
    create(client)
    csv = client.get("/api/batches/b1/report?format=csv")
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"]
    assert csv.text.splitlines()[0].startswith("mailbox,source_user")
    assert "alice@new.example" in csv.text
    data = client.get("/api/batches/b1/report?format=json").json()
    assert data["batch"] == "b1"
    assert len(data["mailboxes"]) == 2
    failures = client.get("/api/batches/b1/report?format=failures")
    assert failures.text.startswith("mailbox,folder,uid,reason")
    assert client.get("/api/batches/b1/report?format=xml").status_code == 422
    assert client.get("/api/batches/zz/report").status_code == 404


def test_batch_bad_input(client):
    add_endpoints(client)
    bad = (
        b"EmailAddress,UserName,Password,TargetPassword\nnot-an-address,u,p,t\nok@x.example,,p,t\n"
    )
    r = create(client, data=bad)
    assert r.status_code == 400
    problems = r.json()["problems"]
    assert any(p.startswith("line 2:") for p in problems)
    assert any(p.startswith("line 3:") for p in problems)
    assert create(client, name="b2", since="yesterday").status_code == 400
    r = create(client, name="b3", include_folders="([")
    assert r.status_code == 400
    assert "regular expression" in r.json()["error"]
    r = client.post("/api/batches", data={"name": "b4"})
    assert r.status_code == 422
    r = create(client, name="b5", source="missing")
    assert r.status_code == 400
    assert create(client).status_code == 201
    assert create(client).status_code == 409


def test_folder_defaults_fill_empty_cells_and_keep_lines():
    data = (
        b"EmailAddress,UserName,Password,TargetPassword,IncludeFolders\n"
        b"a@x.example,a,p,t,\n"
        b'b@x.example,b,"multi\nline",t,^Work\n'
        b"c@x.example,c,p,t,\n"
    )
    rows = parse_batch_csv(folder_defaults(data, "^INBOX$\n^Sent", "Junk"))
    assert [r.line for r in rows] == [2, 3, 5]
    assert rows[0].include == ("^INBOX$", "^Sent")
    assert rows[1].include == ("^Work",)
    assert rows[2].exclude == ("Junk",)


def test_batch_options_for_gmail_labels_and_read_receipts(client, service):
    add_endpoints(client)
    r = create(client, name="g1", labels="folders", neutralise_read_receipts="true")
    assert r.status_code == 201, r.text
    assert (r.json()["labels"], r.json()["neutralise_read_receipts"]) == ("folders", True)
    stored = service.batch("g1").options
    assert (stored["labels"], stored["neutralise_read_receipts"]) == ("folders", True)
    plain = create(client, name="g2")
    assert (plain.json()["labels"], plain.json()["neutralise_read_receipts"]) == ("once", False)
    r = create(client, name="g3", labels="all")
    assert r.status_code == 400
    assert r.json()["problems"] == ["labels 'all': expected one of once, folders"]
