"""The batch service against real Dovecot servers, in-process: lifecycle, stop/resume, caps across
batches, scheduled incremental passes. (The 8-mailbox kill test is tests/e2e/test_batch_cli.py.)"""

from __future__ import annotations

import threading
import time

import pytest

from mailferry.bootstrap import open_service
from mailferry.bootstrap import scheduler as build_scheduler
from mailferry.domain.model import Security
from mailferry.sandbox.corpus import build_corpus, connect, load_corpus
from mailferry.service.batches import BatchOptions, EndpointSpec
from mailferry.service.limits import LocalLimiter
from mailferry.service.scheduler import Scheduler
from tests.integration.conftest_helpers import Account, Migration

pytestmark = pytest.mark.integration


@pytest.fixture
def service(tmp_path, dovecot_slash, dovecot_dot, monkeypatch):
    monkeypatch.delenv("MAILFERRY_KEY", raising=False)
    svc = open_service(tmp_path / "state.sqlite3")
    svc.add_endpoint(
        EndpointSpec("old", "127.0.0.1", dovecot_slash.port, Security.NONE, max_connections=2)
    )
    svc.add_endpoint(
        EndpointSpec("new", "127.0.0.1", dovecot_dot.port, Security.NONE, max_connections=10)
    )
    yield svc
    svc.close()


def pairs(dovecot_slash, dovecot_dot, make_user, count, *, scale=1):
    made = []
    for i in range(count):
        source = Account(dovecot_slash, *make_user(dovecot_slash))
        client = connect(dovecot_slash, source.user, source.password)
        try:
            load_corpus(client, build_corpus(200 + i, scale=scale), dovecot_slash.delimiter)
        finally:
            client.logout()
        made.append((source, Account(dovecot_dot, *make_user(dovecot_dot))))
    return made


def csv_for(made) -> bytes:
    lines = ["EmailAddress,UserName,Password,TargetUserName,TargetPassword"]
    lines += [f"{t.user}@new.example,{s.user},{s.password},{t.user},{t.password}" for s, t in made]
    return ("\n".join(lines) + "\n").encode()


def run_until_idle(scheduler: Scheduler) -> None:
    scheduler.run(threading.Event(), until_idle=True)


def assert_verified(service, made) -> None:
    for source, target in made:
        result = Migration(source, target, service.state_path).cli("verify")
        assert result.exit_code == 0, result.output


def test_lifecycle_sync_then_complete(service, dovecot_slash, dovecot_dot, make_user):
    made = pairs(dovecot_slash, dovecot_dot, make_user, 3)
    service.create_batch("life", "old", "new", csv_for(made), BatchOptions())
    service.start("life")
    limiter = LocalLimiter(service.capacity)
    run_until_idle(build_scheduler(service, limiter=limiter, batch="life", poll=0.1))
    assert limiter.peak == {"old": 2, "new": 2}
    status = service.status("life")
    assert status.state == "synced"
    first = {m.record.email: m.record.copied for m in status.mailboxes}
    assert all(first.values())
    assert_verified(service, made)

    # new mail on one source, then an incremental pass: only that message is copied
    source, target = made[0]
    client = connect(dovecot_slash, source.user, source.password)
    client.append("INBOX", b"Subject: late\r\nMessage-ID: <late@x>\r\n\r\nlate\r\n", [], None)
    client.logout()
    assert service.sync("life") == 3
    run_until_idle(build_scheduler(service, batch="life", poll=0.1))
    after = {m.record.email: m.record for m in service.status("life").mailboxes}
    assert after[f"{target.user}@new.example"].copied == first[f"{target.user}@new.example"] + 1
    assert sum(r.copied for r in after.values()) == sum(first.values()) + 1

    assert service.complete("life") == 3
    run_until_idle(build_scheduler(service, batch="life", poll=0.1))
    status = service.status("life")
    assert status.state == "completed"
    assert service.sync("life") == 0  # completed mailboxes are never synced again
    assert len(service.store.runs("life")) == 9
    assert_verified(service, made)


def test_stop_mid_run_then_resume(service, dovecot_slash, dovecot_dot, make_user):
    made = pairs(dovecot_slash, dovecot_dot, make_user, 1, scale=8)
    service.create_batch("stoppy", "old", "new", csv_for(made), BatchOptions())
    service.start("stoppy")
    scheduler = build_scheduler(service, batch="stoppy", poll=0.05)
    thread = threading.Thread(target=run_until_idle, args=(scheduler,))
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        (view,) = service.status("stoppy").mailboxes
        if view.state == "syncing" and view.record.done > 0:
            break
        time.sleep(0.01)
    service.stop("stoppy")
    thread.join(timeout=120)
    (view,) = service.status("stoppy").mailboxes
    assert view.state == "stopped", view
    assert view.record.pending is None
    service.resume("stoppy")
    run_until_idle(build_scheduler(service, batch="stoppy", poll=0.1))
    (view,) = service.status("stoppy").mailboxes
    assert view.state == "synced", view.record.reason
    assert_verified(service, made)


def test_cap_is_shared_across_batches(service, dovecot_slash, dovecot_dot, make_user):
    made = pairs(dovecot_slash, dovecot_dot, make_user, 4)
    service.create_batch("a", "old", "new", csv_for(made[:2]), BatchOptions())
    service.create_batch("b", "old", "new", csv_for(made[2:]), BatchOptions())
    service.start("a")
    service.start("b")
    limiter = LocalLimiter(service.capacity)
    scheduler = build_scheduler(service, limiter=limiter, poll=0.05)  # every batch
    run_until_idle(scheduler)
    assert limiter.peak["old"] == 2
    assert {service.status(n).state for n in ("a", "b")} == {"synced"}


def test_every_schedules_incremental_passes(service, dovecot_slash, dovecot_dot, make_user):
    made = pairs(dovecot_slash, dovecot_dot, make_user, 1)
    service.create_batch("cron", "old", "new", csv_for(made), BatchOptions())
    service.sync("cron", every=3600)
    run_until_idle(build_scheduler(service, batch="cron", poll=0.1))
    (view,) = service.status("cron").mailboxes
    assert view.state == "synced"
    assert service.schedule_due(time.time()) == 0  # synced just now
    assert service.schedule_due(time.time() + 3601) == 1
    assert service.status("cron").mailboxes[0].state == "queued"
