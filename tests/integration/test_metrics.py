"""``/metrics`` after a real batch run against two Dovecots: the scheduler's counters move, the
mailboxes per state follow; ``/healthz`` follows the scheduler's heartbeat."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from mailferry.adapters.metrics import PrometheusTelemetry
from mailferry.bootstrap import open_service
from mailferry.bootstrap import scheduler as build_scheduler
from mailferry.domain.model import Security
from mailferry.sandbox.corpus import build_corpus, connect, load_corpus
from mailferry.service.batches import BatchOptions, EndpointSpec
from mailferry.web import create_app
from mailferry.web.credentials import AuthStore
from tests.unit.web_support import BASE, FAST, SETTINGS

pytestmark = pytest.mark.integration


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in the text exposition format (0 if absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_move_after_a_batch_run(
    tmp_path, dovecot_slash, dovecot_dot, make_user, monkeypatch
):
    monkeypatch.delenv("MAILFERRY_KEY", raising=False)
    service = open_service(tmp_path / "state.sqlite3")
    service.add_endpoint(EndpointSpec("old", "127.0.0.1", dovecot_slash.port, Security.NONE))
    service.add_endpoint(EndpointSpec("new", "127.0.0.1", dovecot_dot.port, Security.NONE))
    source_user, source_password = make_user(dovecot_slash)
    client = connect(dovecot_slash, source_user, source_password)
    try:
        load_corpus(client, build_corpus(700), dovecot_slash.delimiter)
    finally:
        client.logout()
    target_user, target_password = make_user(dovecot_dot)
    lost_user, _ = make_user(dovecot_slash)
    csv = (
        "EmailAddress,UserName,Password,TargetUserName,TargetPassword\n"
        f"{target_user}@new.example,{source_user},{source_password},{target_user},{target_password}\n"
        f"lost@new.example,{lost_user},wrong-password,{target_user},{target_password}\n"
    ).encode()
    service.create_batch("wave", "old", "new", csv, BatchOptions())
    auth = AuthStore.open_sqlite(service.state_path, cost=FAST)
    token = auth.create_token("prometheus")
    auth.close()
    headers = {"Authorization": f"Bearer {token}"}
    metrics = PrometheusTelemetry()
    scheduler = build_scheduler(service, batch="wave", poll=0.1, is_service=True, telemetry=metrics)
    app = create_app(service, SETTINGS, metrics=metrics, scheduler_owner=scheduler.owner)
    try:
        with TestClient(app, base_url=BASE) as web:
            before = web.get("/metrics", headers=headers).text
            assert (
                sample(before, "mailferry_messages_copied_total", source="old", target="new") == 0
            )
            assert web.get("/healthz").status_code == 503  # no heartbeat yet
            service.start("wave")
            health = []
            scheduler.run(
                threading.Event(),
                until_idle=True,
                on_tick=lambda: health.append(web.get("/healthz").json()["scheduler"]),
            )
            assert health[0] == "ok"  # the heartbeat written by the first tick
            status = {m.record.email: m for m in service.status("wave").mailboxes}
            copied = status[f"{target_user}@new.example"].record.copied
            assert copied > 0
            assert status["lost@new.example"].state == "failed"

            text = web.get("/metrics", headers=headers).text
            route = {"source": "old", "target": "new"}
            assert sample(text, "mailferry_messages_copied_total", **route) == copied
            assert sample(text, "mailferry_bytes_copied_total", **route) > copied * 100
            assert sample(text, "mailferry_mailbox_passes_total", outcome="synced", **route) == 1
            assert sample(text, "mailferry_mailbox_passes_total", outcome="failed", **route) == 1
            assert sample(text, "mailferry_mailboxes", batch="wave", state="synced", **route) == 1
            assert sample(text, "mailferry_mailboxes", batch="wave", state="failed", **route) == 1
            r = web.get("/healthz")  # the scheduler has stopped and said so
            assert (r.status_code, r.json()["scheduler"]) == (503, "not running")
    finally:
        service.close()
