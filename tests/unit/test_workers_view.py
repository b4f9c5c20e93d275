"""Workers on a shared database, as people see them: each worker's row (registered, beating,
forgotten; lost past its stall timeout), the release check, and the workers list with the worker
of each running mailbox on the batch page, in the API and in `mailferry batch status`. On a
SQLite file (the same SQLAlchemy Core code runs on PostgreSQL: tests/integration/test_queue.py)."""

from __future__ import annotations

import json
import os
import re
import socket
import time

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from mailferry.adapters.store.workers import FORGET_AFTER, WorkerRecord
from mailferry.bootstrap import open_service, upgrade_database
from mailferry.cli.app import main
from mailferry.domain.errors import ConfigError
from mailferry.service.workers import WorkerPresence, check_release, worker_views
from mailferry.web import create_app
from mailferry.web.credentials import AuthStore
from tests.unit.web_support import BASE, FAST, SETTINGS

PASSWORD = "correct horse battery"
CSV = b"EmailAddress,UserName,Password,TargetPassword\nann@new.example,ann,pw-a,tpw-a\nbob@new.example,bob,pw-b,tpw-b\n"
HOST = socket.gethostname()
ME = f"{HOST}:{os.getpid()}:1.0"  # an owner token of a live process (this one)
GONE = "far-away:4242:2.0"


@pytest.fixture
def service(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILFERRY_KEY", raising=False)
    svc = open_service(tmp_path / "state.sqlite3")
    yield svc
    svc.close()


def worker(owner: str, *, heartbeat: float, running: int = 1, stall: float = 30.0) -> WorkerRecord:
    host, pid, started = owner.split(":")
    return WorkerRecord(
        owner=owner, host=host, pid=int(pid), version="0.1.0", started=float(started),
        heartbeat=heartbeat, running=running, concurrency=4, stall=stall,
    )  # fmt: skip


def test_a_worker_row_is_registered_beats_and_is_forgotten(service):
    table = service.store.workers
    now = time.time()
    count = iter([3, 1])
    presence = WorkerPresence(
        table, ME, version="9.9", concurrency=8, stall=10.0, running=lambda: next(count), every=0
    )
    presence.register()
    (row,) = table.all()
    assert (row.owner, row.host, row.pid, row.version) == (ME, HOST, os.getpid(), "9.9")
    assert (row.running, row.concurrency, row.stall) == (0, 8, 10.0)
    presence.beat()
    presence.beat()
    (row,) = table.all()
    assert row.running == 1
    assert row.heartbeat >= now
    assert not row.lost(row.heartbeat + 10.0)
    assert row.lost(row.heartbeat + 10.5)
    presence.forget()
    assert table.all() == []


def test_a_beat_waits_for_its_interval(service):
    table = service.store.workers
    calls = []
    presence = WorkerPresence(
        table, ME, version="1", concurrency=1, stall=30.0, running=lambda: calls.append(1) or 0,
        every=3600,
    )  # fmt: skip
    presence.register()
    presence.beat()
    assert calls == []  # registered just now: the next beat is an hour away


def test_lost_rows_are_shown_then_dropped_after_a_day(service):
    table = service.store.workers
    now = time.time()
    table.register(worker(GONE, heartbeat=now - 60))
    table.register(worker(ME, heartbeat=now))
    views = {v.label: v.lost for v in worker_views(table, now)}
    assert views == {"far-away:4242": True, f"{HOST}:{os.getpid()}": False}
    a_day_on = now - 60 + FORGET_AFTER + 1  # the first lost a day and a second before
    later = f"{HOST}:{os.getpid()}:{a_day_on}"
    table.register(worker(later, heartbeat=a_day_on))
    assert {r.owner for r in table.all()} == {ME, later}  # the one lost for a day is gone


def test_a_worker_of_another_release_is_refused_naming_both(tmp_path, service):
    table = service.store.workers
    with pytest.raises(ConfigError) as unknown:
        check_release(table, "0.1.0")
    assert unknown.value.problems == [
        "mailferry worker 0.1.0 cannot serve a database upgraded by an unknown mailferry release: run the same version everywhere"
    ]
    upgrade_database(service.state_path)  # records this release
    check_release(table, "0.1.0")
    table.record_release("0.2.0", time.time())
    with pytest.raises(ConfigError) as other:
        check_release(table, "0.1.0")
    assert other.value.problems == [
        "mailferry worker 0.1.0 cannot serve a database upgraded by mailferry 0.2.0: run the same version everywhere"
    ]


def _batch_with_running_mailbox(service, client) -> None:
    for name in ("old", "new"):
        r = client.post(
            "/api/endpoints",
            json={"name": name, "host": "127.0.0.1", "port": 1, "security": "none"},
        )
        assert r.status_code == 201, r.text
    fields = {"name": "b1", "source": "old", "target": "new"}
    r = client.post("/api/batches", data=fields, files={"csv": ("b.csv", CSV, "text/csv")})
    assert r.status_code == 201, r.text
    now = time.time()
    service.start("b1")
    assert service.store.claim("b1", "ann@new.example", ME, None, now)
    service.store.workers.register(worker(ME, heartbeat=now, running=1))
    service.store.workers.register(worker(GONE, heartbeat=now - 300, running=2))


def test_the_batch_page_the_api_and_status_show_the_workers(service, tmp_path):
    auth = AuthStore.open_sqlite(service.state_path, cost=FAST)
    auth.set_admin_password(PASSWORD)
    token = auth.create_token("tests")
    auth.close()
    with TestClient(create_app(service, SETTINGS), base_url=BASE) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        _batch_with_running_mailbox(service, client)
        detail = client.get("/api/batches/b1").json()
        listed = client.get("/api/workers").json()
        assert client.post("/login", data={"password": PASSWORD, "next": "/"}).status_code == 200
        page = client.get("/batches/b1").text
    me = f"{HOST}:{os.getpid()}"
    assert {m["address"]: m["worker"] for m in detail["mailboxes"]} == {
        "ann@new.example": me,
        "bob@new.example": None,
    }
    assert [(w["worker"], w["lost"], w["jobs_running"]) for w in detail["workers"]] == [
        (me, False, 1),
        ("far-away:4242", True, 2),
    ]
    assert listed == detail["workers"]
    row = re.search(r'<tr data-mailbox="ann@new.example".*?</tr>', page, re.DOTALL)
    assert row is not None
    assert f'<td class="worker">{me}</td>' in row.group(0)
    assert f'data-worker="{me}" data-lost="no"' in page
    lost = re.search(r'<tr data-worker="far-away:4242" data-lost="yes">.*?</tr>', page, re.DOTALL)
    assert lost is not None
    assert "lost" in lost.group(0)
    assert "2 / 4" in lost.group(0)

    env = {"MAILFERRY_STATE": str(service.state_path)}
    runner = CliRunner()
    text = runner.invoke(main, ["batch", "status", "b1"], env=env, catch_exceptions=False)
    assert text.exit_code == 0, text.output
    assert re.search(rf"ann@new\.example .*{re.escape(me)}", text.output)
    assert re.search(r"far-away:4242  LOST  mailferry 0\.1\.0  2/4 jobs", text.output)
    as_json = runner.invoke(main, ["batch", "status", "b1", "--json"], env=env)
    report = json.loads(as_json.output)
    assert [w["lost"] for w in report["workers"]] == [False, True]
    assert report["mailboxes"][0]["worker"] == me
