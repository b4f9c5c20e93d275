"""``/healthz``, ``/metrics`` (auth, format), the access log, and ``serve``'s Host and token
options. No sockets. (Counters fed by a real batch run: tests/integration/test_metrics.py.)"""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from mailferry.adapters.metrics import PrometheusTelemetry
from mailferry.bootstrap import open_service
from mailferry.cli.app import main
from mailferry.domain.model import Summary
from mailferry.web import create_app
from mailferry.web.credentials import AuthStore
from mailferry.web.server import Listen
from tests.unit.web_support import BASE, FAST, SETTINGS, Clock

CSV = b"EmailAddress,UserName,Password,TargetPassword\na@new.example,a,pw-a,tpw-a\n"


@pytest.fixture
def service(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILFERRY_KEY", raising=False)
    svc = open_service(tmp_path / "state.sqlite3")
    yield svc
    svc.close()


@pytest.fixture
def token(service):
    auth = AuthStore.open_sqlite(service.state_path, cost=FAST)
    value = auth.create_token("prometheus")
    auth.close()
    return value


def test_healthz_follows_the_scheduler_heartbeat(service):
    clock = Clock()
    app = create_app(service, SETTINGS, scheduler_owner="me:1:0", clock=clock)
    with TestClient(app, base_url=BASE) as c:
        r = c.get("/healthz")
        assert r.status_code == 503
        assert r.json() == {
            "status": "unhealthy",
            "database": "ok",
            "scheduler": "not running",
            "heartbeat_age_seconds": None,
        }
        service.store.heartbeat("someone-else:2:0", clock.now, service=True)
        assert c.get("/healthz").status_code == 503  # not this process's scheduler
        service.store.heartbeat("me:1:0", clock.now, service=True)
        clock.advance(5)
        r = c.get("/healthz")
        assert r.status_code == 200
        assert r.json()["scheduler"] == "ok"
        assert r.json()["heartbeat_age_seconds"] == 5.0
        clock.advance(60)
        r = c.get("/healthz")
        assert (r.status_code, r.json()["scheduler"]) == (503, "stale")


def test_healthz_says_when_the_database_is_unreachable(service):
    clock = Clock()
    with TestClient(create_app(service, SETTINGS, clock=clock), base_url=BASE) as c:
        service.store.heartbeat("x:1:0", clock.now, service=True)
        assert c.get("/healthz").status_code == 200
        service.state_path.unlink()
        service.state_path.mkdir()  # the file is gone, a directory in its place
        service.store.close()
        r = c.get("/healthz")
        assert r.status_code == 503
        assert r.json()["database"] == "unreachable"


def test_metrics_need_a_token_and_speak_prometheus(service, token):
    service.store.heartbeat("x:1:0", 0, service=True)
    metrics = PrometheusTelemetry()
    metrics.pass_finished("old", "new", "synced", Summary(messages_copied=7, bytes_copied=700))
    with TestClient(create_app(service, SETTINGS, metrics=metrics), base_url=BASE) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer mft_nope"}).status_code == 401
        r = c.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain; version=")
        text = r.text
    assert 'mailferry_messages_copied_total{source="old",target="new"} 7.0' in text
    assert 'mailferry_bytes_copied_total{source="old",target="new"} 700.0' in text
    assert 'mailferry_mailbox_passes_total{outcome="synced",source="old",target="new"} 1.0' in text
    assert "# TYPE mailferry_throttles_total counter" in text


def test_metrics_count_mailboxes_per_state(service, token):
    from mailferry.domain.model import Security  # noqa: PLC0415
    from mailferry.service.batches import BatchOptions, EndpointSpec  # noqa: PLC0415

    for name in ("old", "new"):
        service.add_endpoint(EndpointSpec(name, "127.0.0.1", 1, Security.NONE))
    service.create_batch("wave1", "old", "new", CSV, BatchOptions())
    with TestClient(create_app(service, SETTINGS), base_url=BASE) as c:
        text = c.get("/metrics", headers={"Authorization": f"Bearer {token}"}).text
        assert (
            'mailferry_mailboxes{batch="wave1",source="old",state="created",target="new"} 1.0'
            in text
        )
        service.start("wave1")
        text = c.get("/metrics", headers={"Authorization": f"Bearer {token}"}).text
        assert 'state="queued"' in text


def test_access_log_without_query_or_secrets(service, token, caplog):
    caplog.set_level(logging.INFO, logger="mailferry.web.access")
    with TestClient(create_app(service, SETTINGS), base_url=BASE) as c:
        c.get("/api/batches?secret=hunter2", headers={"Authorization": f"Bearer {token}"})
        c.get("/login", headers={"Host": "evil.example"})
    records = [r for r in caplog.records if r.name == "mailferry.web.access"]
    assert [(r.method, r.path, r.status) for r in records] == [
        ("GET", "/api/batches", 200),
        ("GET", "/login", 400),
    ]
    assert all(r.duration_ms >= 0 for r in records)
    assert "hunter2" not in str([r.__dict__ for r in records])
    assert token not in str([r.__dict__ for r in records])


def test_serve_host_names(tmp_path):
    assert Listen("0.0.0.0", allow_remote=True).check()[-1].startswith("--host 0.0.0.0")  # noqa: S104
    listen = Listen("0.0.0.0", allow_remote=True, allowed_hosts=("mail.example",))  # noqa: S104
    assert listen.check() == []
    assert listen.host_names() == ("mail.example",)
    assert Listen("10.0.0.5", allow_remote=True).host_names() == ("10.0.0.5",)
    assert Listen("127.0.0.1").host_names() == ()


def test_token_create_with_expiry_and_list(tmp_path):
    state = str(tmp_path / "state.sqlite3")
    runner = CliRunner()
    r = runner.invoke(main, ["token", "create", "ci", "--expires", "30d", "--state", state])
    assert r.exit_code == 0, r.output
    value = r.output.strip()
    assert runner.invoke(main, ["token", "create", "cron", "--state", state]).exit_code == 0
    r = runner.invoke(main, ["token", "create", "x", "--expires", "soon", "--state", state])
    assert r.exit_code == 2
    assert "--expires 'soon'" in r.output
    r = runner.invoke(main, ["token", "list", "--state", state])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith("ci\t")
    assert "\texpires 20" in lines[0]
    assert lines[1].startswith("cron\t")
    assert lines[1].endswith("never expires")
    assert value not in r.output


def test_a_tls_certificates_names_are_allowed_hosts(tmp_path):
    import datetime as dt  # noqa: PLC0415
    import ipaddress  # noqa: PLC0415

    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.example")])
    now = dt.datetime.now(dt.UTC)
    sans = [x509.DNSName("mail.example"), x509.IPAddress(ipaddress.ip_address("192.0.2.7"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "cert.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    listen = Listen("0.0.0.0", tls_cert=path, tls_key=path)  # noqa: S104
    assert listen.host_names() == ("mail.example", "192.0.2.7")
    assert listen.check() == []
