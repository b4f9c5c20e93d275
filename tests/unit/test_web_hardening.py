"""Issue #11: Host checks (DNS rebinding), login throttling, HSTS, idle sessions, expiring
tokens, the schema behind login, ``ca_file`` no file probe, the scrypt cost. No sockets."""

from __future__ import annotations

import logging
import re

import pytest
from fastapi.testclient import TestClient

from mailferry.bootstrap import open_service
from mailferry.web import WebSettings, create_app
from mailferry.web.credentials import AuthStore
from mailferry.web.hosts import AllowedHosts
from mailferry.web.passwords import OWASP, ScryptCost, cost_of, hash_password, needs_rehash
from mailferry.web.throttle import ThrottlePolicy
from tests.unit.web_support import BASE, FAST, SETTINGS, Clock

PASSWORD = "correct horse battery"


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
def clock():
    return Clock()


def client_for(service, clock, settings=SETTINGS, base=BASE) -> TestClient:
    return TestClient(create_app(service, settings, clock=clock), base_url=base)


def log_in(c) -> str:
    r = c.post("/login", data={"password": PASSWORD, "next": "/endpoints"})
    assert r.status_code == 200, r.text
    return re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)


# -- Host ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:8080", "127.0.0.2", "mail.example"],
)
def test_loopback_and_configured_hosts_are_served(service, clock, host):
    settings = WebSettings(password_cost=FAST, allowed_hosts=("mail.example",))
    with client_for(service, clock, settings) as c:
        assert c.get("/login", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", ""]
)
def test_a_rebound_host_is_refused_before_login(service, clock, host):
    with client_for(service, clock) as c:
        r = c.post(
            "/login",
            data={"password": PASSWORD},
            headers={"Host": host, "Origin": f"http://{host}"},
            follow_redirects=False,
        )
        assert r.status_code == 400
        assert "set-cookie" not in r.headers
        assert c.get("/api/batches", headers={"Host": host}).status_code == 400


def test_redirects_never_carry_the_host(service, clock):
    with client_for(service, clock) as c:
        r = c.get("/endpoints/", follow_redirects=False)
        assert r.status_code == 307
        assert r.headers["location"] == "/endpoints"
        r = c.get("/api/batches/", follow_redirects=False)
        assert r.headers["location"] == "/api/batches"


def test_allowed_hosts_matching():
    allowed = AllowedHosts(["Mail.Example.", "10.0.0.5", "*.corp.example", "2001:db8::1"])
    assert allowed.allows("mail.example:443")
    assert allowed.allows("10.0.0.5:8080")
    assert allowed.allows("a.corp.example")
    assert allowed.allows("[2001:db8:0::1]:8443")
    assert not allowed.allows("a.b.corp.example")
    assert not allowed.allows("mail.example.evil")
    assert not allowed.allows("[::1")
    assert not allowed.allows("localhost:http")
    assert not allowed.allows(None)


# -- login throttling ------------------------------------------------------------------------------
def test_failures_delay_the_client_exponentially_and_are_logged(service, clock, caplog):
    caplog.set_level(logging.INFO, logger="mailferry.web")
    with client_for(service, clock) as c:
        for _ in range(3):  # ThrottlePolicy.free
            assert c.post("/login", data={"password": "guess-1"}).status_code == 401
        assert c.post("/login", data={"password": "guess-2"}).status_code == 401  # 4th: 2 s
        waits = []
        for _ in range(11):
            r = c.post("/login", data={"password": PASSWORD})  # even the right one waits
            assert r.status_code == 429
            waits.append(int(r.headers["retry-after"]))
            clock.advance(waits[-1] - 1)
            assert c.post("/login", data={"password": PASSWORD}).status_code == 429  # not yet
            clock.advance(1)
            assert c.post("/login", data={"password": "guess-3"}).status_code == 401
        assert waits == [2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]  # doubled, capped
        clock.advance(900)
        r = c.post("/login", data={"password": PASSWORD}, follow_redirects=False)
        assert r.status_code == 303
    failed = [r for r in caplog.records if r.getMessage() == "login.failed"]
    assert len(failed) == 15
    assert {r.name for r in failed} == {"mailferry.web.login"}
    assert failed[0].client == "testclient"
    assert failed[0].user == "admin"
    assert [r for r in caplog.records if r.getMessage() == "login.refused"]
    assert "guess" not in caplog.text
    assert PASSWORD not in caplog.text
    assert not any(
        "guess" in str(r.__dict__) or PASSWORD in str(r.__dict__) for r in caplog.records
    )


def test_the_global_budget_stops_guesses_from_many_clients(service, clock):
    policy = ThrottlePolicy(free=100, budget=5, window=60)
    settings = WebSettings(password_cost=FAST, throttle=policy)
    with client_for(service, clock, settings) as c:
        throttle = c.app.state.web.throttle
        for i in range(5):
            assert throttle.begin(f"10.0.0.{i}") == 0
            throttle.failed(f"10.0.0.{i}")
        assert c.post("/login", data={"password": PASSWORD}).status_code == 429
        clock.advance(61)
        assert (
            c.post("/login", data={"password": PASSWORD}, follow_redirects=False).status_code == 303
        )


def test_one_check_at_a_time_per_client(clock):
    from mailferry.web.throttle import LoginThrottle  # noqa: PLC0415

    throttle = LoginThrottle(clock=clock)
    assert throttle.begin("a") == 0
    assert throttle.begin("a") == 1  # a parallel request waits for the first answer
    assert throttle.begin("b") == 0
    throttle.release("a")
    assert throttle.begin("a") == 0


# -- sessions, tokens, headers ---------------------------------------------------------------------
def test_idle_session_ends_but_activity_keeps_it(service, clock):
    settings = WebSettings(password_cost=FAST, idle_minutes=30)
    with client_for(service, clock, settings) as c:
        log_in(c)
        clock.advance(29 * 60)
        assert c.get("/", follow_redirects=False).status_code == 200  # activity
        clock.advance(29 * 60)
        assert c.get("/", follow_redirects=False).status_code == 200
        clock.advance(31 * 60)
        assert c.get("/", follow_redirects=False).status_code == 303  # idle: back to login


def test_dashboard_polling_is_not_activity(service, clock):
    with client_for(service, clock) as c:
        log_in(c)
        for _ in range(20):
            clock.advance(2 * 60)
            c.get("/batches/none/live")  # htmx every few seconds (404: no batch; still auth)
        assert c.get("/", follow_redirects=False).status_code == 303


def test_tokens_expire(service, clock):
    auth = AuthStore.open_sqlite(service.state_path, cost=FAST, clock=clock)
    token = auth.create_token("ci", lifetime=3600)
    forever = auth.create_token("cron")
    infos = {t.name: t for t in auth.tokens()}
    assert infos["ci"].expires == clock.now + 3600
    assert infos["cron"].expires is None
    auth.close()
    with client_for(service, clock) as c:
        assert (
            c.get("/api/batches", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        )
        clock.advance(3601)
        r = c.get("/api/batches", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
        assert (
            c.get("/api/batches", headers={"Authorization": f"Bearer {forever}"}).status_code == 200
        )


def test_hsts_only_over_tls(service, clock):
    with client_for(service, clock) as plain:
        assert "strict-transport-security" not in plain.get("/login").headers
    tls = WebSettings(password_cost=FAST, secure_cookies=True)
    with client_for(service, clock, tls, base="https://127.0.0.1:8443") as c:
        assert c.get("/login").headers["strict-transport-security"].startswith("max-age=")


def test_api_schema_needs_login(service, clock):
    with client_for(service, clock) as c:
        assert c.get("/api/openapi.json").status_code == 401
        assert c.get("/openapi.json").status_code == 404
        assert c.get("/docs").status_code in (303, 404)
        log_in(c)
        assert "/api/batches" in c.get("/api/openapi.json").json()["paths"]


def test_ca_file_answers_alike_for_missing_unreadable_and_not_a_ca(service, clock, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a certificate\n")
    directory = tmp_path / "dir"
    directory.mkdir()
    answers = set()
    with client_for(service, clock) as c:
        csrf = log_in(c)
        for path in (tmp_path / "missing.pem", text, directory, "/etc/shadow", "/dev/zero"):
            body = {"name": "x", "host": "127.0.0.1", "security": "none", "ca_file": str(path)}
            r = c.post("/api/endpoints", json=body, headers={"X-CSRF-Token": csrf})
            assert r.status_code == 400
            answers.add(r.json()["error"].replace(str(path), "PATH"))
    assert len(answers) == 1, answers
    assert "no such file" not in answers.pop()


# -- the admin password's hash ---------------------------------------------------------------------
def test_default_scrypt_cost_is_owasps():
    assert (OWASP.n, OWASP.r, OWASP.p) == (2**17, 8, 1)
    assert ScryptCost() == OWASP
    stored = hash_password("a fine long password")  # the real cost, once
    assert cost_of(stored) == OWASP
    assert not needs_rehash(stored)


def test_weaker_hash_is_rehashed_at_the_next_login(service, clock):
    old = ScryptCost(n=2**4)
    auth = AuthStore.open_sqlite(service.state_path, cost=old)
    auth.set_admin_password(PASSWORD)
    auth.close()
    auth = AuthStore.open_sqlite(service.state_path, cost=FAST)
    assert cost_of(auth.admin_hash()) == old
    assert not auth.check_admin("wrong password!")
    assert cost_of(auth.admin_hash()) == old  # a wrong password changes nothing
    assert auth.check_admin(PASSWORD)
    assert cost_of(auth.admin_hash()) == FAST
    assert auth.check_admin(PASSWORD)
    auth.close()
