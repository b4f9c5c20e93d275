"""The pages through TestClient: login, cookies, CSRF, forms with their errors, confirmations."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from mailferry.bootstrap import open_service
from mailferry.web import create_app
from mailferry.web.chart import Span, series, svg
from mailferry.web.credentials import AuthStore
from tests.unit.web_support import BASE, FAST, SETTINGS

PASSWORD = "correct horse battery"
CSV = b"EmailAddress,UserName,Password,TargetPassword\na@new.example,a,pw-a,tpw-a\n"


@pytest.fixture
def service(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILFERRY_KEY", raising=False)
    svc = open_service(tmp_path / "state.sqlite3")
    auth = AuthStore.open_sqlite(svc.state_path, cost=FAST)
    auth.set_admin_password(PASSWORD)
    auth.close()
    yield svc
    svc.close()


@pytest.fixture
def browser(service):
    with TestClient(create_app(service, SETTINGS), base_url=BASE) as c:
        yield c


def login(browser) -> str:
    r = browser.post("/login", data={"password": PASSWORD, "next": "/endpoints"})
    assert r.status_code == 200
    return csrf_of(r.text)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_pages_redirect_to_login(browser):
    r = browser.get("/batches/x?y=1", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Fbatches%2Fx%3Fy%3D1"
    assert browser.get("/login").status_code == 200


def test_login_sets_a_strict_httponly_cookie_and_logout_ends_it(browser):
    r = browser.post("/login", data={"password": "wrong"}, follow_redirects=False)
    assert r.status_code == 401
    assert "Wrong password" in r.text
    r = browser.post("/login", data={"password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    page = browser.get("/")
    assert "No batches yet" in page.text
    assert PASSWORD not in page.text
    assert "content-security-policy" in page.headers
    csrf = csrf_of(page.text)
    assert browser.post("/logout", data={"csrf_token": "nope"}).status_code == 403
    r = browser.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert browser.get("/", follow_redirects=False).status_code == 303


def test_open_redirect_refused(browser):
    r = browser.post(
        "/login", data={"password": PASSWORD, "next": "//evil.example/"}, follow_redirects=False
    )
    assert r.headers["location"] == "/"


def test_login_page_says_when_no_admin_is_set(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILFERRY_KEY", raising=False)
    svc = open_service(tmp_path / "s.sqlite3")
    with TestClient(create_app(svc, SETTINGS), base_url=BASE) as c:
        assert "mailferry admin init" in c.get("/login").text
    svc.close()


def test_forms_need_csrf(browser):
    login(browser)
    r = browser.post("/endpoints", data={"name": "a", "host": "127.0.0.1", "security": "none"})
    assert r.status_code == 403


def test_endpoints_then_batch_with_line_errors_then_confirmed_delete(browser):
    csrf = login(browser)
    for name in ("old", "new"):
        r = browser.post(
            "/endpoints",
            data={"csrf_token": csrf, "name": name, "host": "127.0.0.1", "port": "1",
                  "security": "none", "max_connections": "3"},
        )  # fmt: skip
        assert r.status_code == 200
        assert f"<td>{name}</td>" in r.text
    r = browser.post(
        "/endpoints",
        data={"csrf_token": csrf, "name": "x", "host": "h", "port": "abc", "max_connections": "3"},
    )
    assert r.status_code == 400
    assert "expected a number" in r.text

    bad = b"EmailAddress,UserName,Password,TargetPassword\nnope,u,p,t\nb@x.example,b,,t\n"
    fields = {"csrf_token": csrf, "name": "wave1", "source": "old", "target": "new"}
    r = browser.post("/batches/new", data=fields, files={"csv": ("m.csv", bad, "text/csv")})
    assert r.status_code == 400
    assert "line 2: EmailAddress &#39;nope&#39; is not a valid address" in r.text
    assert "line 3: Password is empty" in r.text
    assert 'value="wave1"' in r.text  # the form keeps what was typed

    assert 'value="folders"' in browser.get("/batches/new").text  # the Gmail labels choice
    fields |= {"labels": "folders", "neutralise_read_receipts": "true"}
    r = browser.post("/batches/new", data=fields, files={"csv": ("m.csv", CSV, "text/csv")})
    assert r.status_code == 200
    assert "1 mailboxes created" in r.text
    assert "read receipts neutralised · Gmail labels as folders" in r.text
    assert "a@new.example" in r.text
    assert "pw-a" not in r.text
    live = browser.get("/batches/wave1/live")
    assert 'hx-trigger="every 2.0s"' in live.text
    assert "No data copied yet" in live.text

    r = browser.post("/batches/wave1/action/start", data={"csrf_token": csrf})
    assert "1 mailboxes queued to start" in r.text
    r = browser.get("/batches/wave1/mailboxes/a@new.example")
    assert "No folder has been copied yet" in r.text

    r = browser.post("/batches/wave1/action/delete", data={"csrf_token": csrf})
    assert "Delete batch wave1?" in r.text  # asked first
    r = browser.post("/batches/wave1/action/delete", data={"csrf_token": csrf, "confirmed": "yes"})
    assert "Batch wave1 deleted" in r.text
    assert browser.get("/batches/wave1").status_code == 404
    assert "Not found" in browser.get("/batches/wave1").text


def test_the_batch_page_shows_a_page_of_mailboxes_with_filters_kept_in_the_links(browser, service):
    csrf = login(browser)
    for name in ("old", "new"):
        browser.post(
            "/endpoints",
            data={"csrf_token": csrf, "name": name, "host": "127.0.0.1", "port": "1",
                  "security": "none", "max_connections": "3"},
        )  # fmt: skip
    rows = "".join(f"u{i}@new.example,u{i},p,t\n" for i in range(5))
    data = ("EmailAddress,UserName,Password,TargetPassword\n" + rows).encode()
    fields = {"csrf_token": csrf, "name": "w", "source": "old", "target": "new"}
    assert browser.post("/batches/new", data=fields, files={"csv": ("m.csv", data, "text/csv")})
    r = browser.get("/batches/w?per_page=2&page=2&q=new.example&state=created")
    assert r.status_code == 200
    shown = re.findall(r'data-mailbox="([^"]+)"', r.text)
    assert shown == ["u2@new.example", "u3@new.example"]
    assert "Mailboxes 3\N{EN DASH}4 of 5 matching (5 in the batch)" in r.text
    assert 'href="/batches/w?state=created&amp;q=new.example&amp;per_page=2&amp;page=1"' in r.text
    assert 'href="/batches/w?state=created&amp;q=new.example&amp;per_page=2&amp;page=3"' in r.text
    # the live refresh asks for the same page
    assert (
        'hx-get="/batches/w/live?state=created&amp;q=new.example&amp;per_page=2&amp;page=2"'
        in r.text
    )
    assert '<option value="created" selected>' in r.text
    r = browser.get("/batches/w/live?q=u4")
    assert re.findall(r'data-mailbox="([^"]+)"', r.text) == ["u4@new.example"]
    assert browser.get("/batches/w?state=sleeping").status_code == 400


def test_chart_svg():
    data = series([Span(0.0, 10.0, 10_000), Span(5.0, 10.0, 5_000)], buckets=10)
    assert data is not None
    assert data.rates[0] == pytest.approx(1000.0)
    assert data.rates[-1] == pytest.approx(2000.0)
    drawn = svg(data)
    assert drawn.startswith("<svg")
    assert "2.0 KB/s" in drawn
    assert "No data copied yet" in svg(None)
