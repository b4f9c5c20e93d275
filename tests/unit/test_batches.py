"""The batch service without servers: secrets at rest, the connection limiter, the lifecycle."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import threading
import time

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from mailferry.adapters.memory.account import MemoryServer
from mailferry.adapters.secrets import KEY_ENV, Secret, SecretBox
from mailferry.adapters.store.records import FailureRecord, Outcome
from mailferry.adapters.store.sync_state import SqlStateStore
from mailferry.cli.app import main
from mailferry.domain.errors import ConfigError
from mailferry.domain.model import MailboxState, Security
from mailferry.service.batches import (
    BatchOptions,
    EndpointSpec,
    new_owner,
    owner_alive,
)
from mailferry.service.limits import LocalLimiter
from mailferry.service.scheduler import CANDIDATE_PAGE
from tests.conftest import dump, open_test_service
from tests.fakes import MemoryConnector, contents, fill, message, run_batch

CSV = (
    b"EmailAddress,UserName,Password,TargetPassword\n"
    b"ann@new.example,ann,ann-secret,ann-target\n"
    b"bob@new.example,bob,bob-secret,bob-target\n"
)


@pytest.fixture
def service(tmp_path, monkeypatch, state_database):
    monkeypatch.delenv(KEY_ENV, raising=False)
    svc = open_test_service(state_database, tmp_path)
    svc.add_endpoint(EndpointSpec("old", "127.0.0.1", 10143, Security.NONE, max_connections=3))
    svc.add_endpoint(EndpointSpec("new", "mail.new.example", None, Security.SSL))
    yield svc
    svc.close()


# -- secrets ---------------------------------------------------------------------------------------


def test_key_file_is_created_0600_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    box = SecretBox.open(tmp_path / "d")
    key = tmp_path / "d" / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    token = box.encrypt(Secret("hunter2"))
    assert "hunter2" not in token
    assert SecretBox.open(tmp_path / "d").decrypt(token).reveal() == "hunter2"


def test_key_file_readable_by_others_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    SecretBox.open(tmp_path)
    (tmp_path / "secret.key").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        SecretBox.open(tmp_path)


def test_env_key_ring_rotates(tmp_path, monkeypatch):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv(KEY_ENV, old)
    token = SecretBox.open(tmp_path).encrypt(Secret("pw"))
    monkeypatch.setenv(KEY_ENV, f"{new},{old}")
    ring = SecretBox.open(tmp_path)
    assert ring.decrypt(token).reveal() == "pw"
    rotated = ring.rotate(token)
    monkeypatch.setenv(KEY_ENV, new)
    assert SecretBox.open(tmp_path).decrypt(rotated).reveal() == "pw"
    assert not (tmp_path / "secret.key").exists()


def test_wrong_key_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    token = SecretBox.open(tmp_path).encrypt(Secret("pw"))
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        SecretBox.open(tmp_path).decrypt(token)
    monkeypatch.setenv(KEY_ENV, "not-a-key")
    with pytest.raises(ConfigError, match="not a valid key"):
        SecretBox.open(tmp_path)


def test_secret_never_in_repr():
    assert "pw" not in repr(Secret("pw"))
    assert "pw" not in str(Secret("pw"))


def test_passwords_are_stored_only_encrypted(service, state_database):
    service.create_batch("w1", "old", "new", CSV, BatchOptions())
    if state_database.path is not None:
        raw = state_database.path.read_bytes()
        for secret in (b"ann-secret", b"bob-target"):
            assert secret not in raw
    rows = dump(state_database, "batch_mailboxes", "batch_batches")
    assert "ann@new.example" in rows
    assert "ann-secret" not in rows
    assert "ann-target" not in rows


# -- the limiter -----------------------------------------------------------------------------------


def test_limiter_takes_all_slots_or_none():
    caps = {"a": 2, "b": 1}
    limiter = LocalLimiter(caps.__getitem__)
    first = limiter.try_acquire({"a": 1, "b": 1})
    assert first is not None
    assert limiter.try_acquire({"a": 1, "b": 1}) is None
    assert limiter.in_use("a") == 1  # the refused request took nothing
    second = limiter.try_acquire({"a": 1})
    assert second is not None
    assert limiter.try_acquire({"a": 1}) is None
    first.release()
    first.release()  # twice is harmless
    assert limiter.in_use("a") == 1
    assert limiter.in_use("b") == 0
    assert limiter.peak == {"a": 2, "b": 1}


def test_limiter_never_exceeds_cap_under_threads():
    limiter = LocalLimiter(lambda _name: 3)
    held = 0
    worst = 0
    lock = threading.Lock()

    def work():
        nonlocal held, worst
        for _ in range(200):
            lease = limiter.try_acquire({"src": 1})
            if lease is None:
                continue
            with lock:
                held += 1
                worst = max(worst, held)
            time.sleep(0.0001)
            with lock:
                held -= 1
            lease.release()

    threads = [threading.Thread(target=work) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert worst <= 3
    assert limiter.in_use("src") == 0


# -- endpoints and batches -------------------------------------------------------------------------


def test_endpoint_validation_reports_every_problem(service):
    with pytest.raises(ConfigError) as info:
        service.add_endpoint(
            EndpointSpec("bad name", "mail.example", 0, Security.NONE, max_connections=0)
        )
    assert len(info.value.problems) == 4
    with pytest.raises(ConfigError, match="exists already"):
        service.add_endpoint(EndpointSpec("old", "127.0.0.1", 143, Security.NONE))


def test_admin_password_is_encrypted(service):
    service.add_endpoint(
        EndpointSpec(
            "m365",
            "outlook.example",
            None,
            Security.SSL,
            auth_user="admin@new.example",
            auth_password=Secret("adm1n-pw"),
        )
    )
    record = service.endpoint("m365")
    assert record.port == 993
    assert record.auth_secret
    assert "adm1n-pw" not in record.auth_secret
    assert "adm1n-pw" not in repr(record)
    assert service.box.decrypt(record.auth_secret).reveal() == "adm1n-pw"


def test_same_database_as_sync_state(service, state_database):
    store = SqlStateStore.open(state_database.url)  # still a valid sync state database
    store.close()
    applications = state_database.raw("SELECT application FROM meta ORDER BY 1")
    assert {"mailferry", "mailferry.batches"} <= {row[0] for row in applications}


def test_create_batch_refuses_bad_csv_and_unknown_endpoints(service):
    with pytest.raises(ConfigError) as info:
        service.create_batch("w1", "old", "nope", b"EmailAddress\nx\n", BatchOptions())
    assert info.value.problems == ["no target endpoint 'nope'"]
    with pytest.raises(ConfigError):
        service.create_batch(
            "w1", "old", "new", b"EmailAddress,UserName,Password\nbad,u,p\n", BatchOptions()
        )
    assert service.batches() == []


def test_lifecycle_requests(service):
    status = service.create_batch("w1", "old", "new", CSV, BatchOptions())
    assert status.state == "created"
    assert [m.state for m in status.mailboxes] == ["created", "created"]
    assert service.start("w1") == 2
    assert {m.state for m in service.status("w1").mailboxes} == {"queued"}
    assert service.stop("w1") == 2
    assert service.status("w1").state == "stopped"
    assert service.resume("w1") == 2
    with pytest.raises(ConfigError, match="exists already"):
        service.create_batch("w1", "old", "new", CSV, BatchOptions())
    with pytest.raises(ConfigError, match="used by batch"):
        service.remove_endpoint("old")
    service.delete("w1")
    with pytest.raises(ConfigError, match="no batch"):
        service.status("w1")
    service.remove_endpoint("old")


def test_finished_run_is_recorded_and_reported(service):
    service.create_batch("w1", "old", "new", CSV, BatchOptions())
    service.start("w1")
    owner = new_owner()
    store = service.store
    assert store.claim("w1", "ann@new.example", owner, None, time.time())
    assert not store.claim("w1", "ann@new.example", "other", None, time.time())
    assert service.status("w1").mailboxes[0].state == "syncing"
    failure = FailureRecord("ann@new.example", '=HYPERLINK("x")', 7, "target refused")
    summary = {"folders": 3, "messages_copied": 10, "bytes_copied": 1000}
    now = time.time()
    store.finish(
        "w1",
        "ann@new.example",
        owner,
        Outcome("synced", "1 errors", "sync", now - 2, now, summary, [failure]),
    )
    view = service.status("w1").mailboxes[0]
    assert (view.state, view.record.copied, view.record.errors, view.record.pending) == (
        "synced",
        10,
        1,
        None,
    )
    report = service.report_json("w1")
    assert report["mailboxes"][0]["failures"] == [
        {
            "mailbox": "ann@new.example",
            "folder": '=HYPERLINK("x")',
            "uid": 7,
            "reason": "target refused",
            "kind": "message",
            "href": None,
        }
    ]
    assert "'=HYPERLINK" in service.failures_csv("w1")
    assert "ann-secret" not in service.report_csv("w1")


def test_notes_of_a_file_source_reach_the_report_counted_by_reason(service):
    """What a file source handed out not as it holds it (rebuilt, dated from the last resort)
    is in the run's summary per folder; the report says it per mailbox, summed by reason."""
    service.create_batch("w1", "old", "new", CSV, BatchOptions())
    service.start("w1")
    owner = new_owner()
    assert service.store.claim("w1", "ann@new.example", owner, None, time.time())
    mail = {"route": "imap", "seen": 5, "copied": 5, "updated": 0, "failed": 0}
    notes = [
        {"folder": "INBOX", "reason": "rebuilt", "messages": 2},
        {"folder": "Sent", "reason": "rebuilt", "messages": 1},
        {"folder": "Sent", "reason": "dated from its Date: field", "messages": 1},
    ]
    summary = {"messages_copied": 5, "workloads": {"mail": mail}, "notes": notes}
    now = time.time()
    outcome = Outcome("synced", None, "sync", now - 1, now, summary)
    service.store.finish("w1", "ann@new.example", owner, outcome)
    out = io.StringIO()
    service.write_report("w1", out)
    rows = {row["mailbox"]: row for row in csv.DictReader(io.StringIO(out.getvalue()))}
    assert rows["ann@new.example"]["mail_notes"] == "3 rebuilt; 1 dated from its Date: field"
    assert rows["bob@new.example"]["mail_notes"] == ""
    assert service.status("w1").mailboxes[0].record.workloads["mail"]["notes"] == {
        "rebuilt": 3,
        "dated from its Date: field": 1,
    }


def test_dead_owner_is_not_alive():
    me = new_owner()
    assert owner_alive(me, time.time(), time.time())
    host = me.split(":")[0]
    dead = f"{host}:{2**22 + 12345}:0"
    assert not owner_alive(dead, time.time(), time.time())
    assert not owner_alive("elsewhere:1:0", time.time() - 600, time.time())
    assert owner_alive("elsewhere:1:0", time.time(), time.time())
    assert os.getpid() == int(me.split(":")[1])


def test_schedule_due_uses_batch_every_else_serve_default(service):
    service.create_batch("w1", "old", "new", CSV, BatchOptions())
    service.start("w1")
    owner = new_owner()
    now = time.time()
    for email in ("ann@new.example", "bob@new.example"):
        assert service.store.claim("w1", email, owner, None, now)
        outcome = Outcome("synced", None, "sync", now - 1, now, {"messages_copied": 1})
        service.store.finish("w1", email, owner, outcome)
    assert service.schedule_due(now + 10) == 0  # no schedule anywhere
    assert service.schedule_due(now + 10, default_every=60) == 0  # not due yet
    assert service.schedule_due(now + 61, default_every=60) == 2
    assert {m.state for m in service.status("w1").mailboxes} == {"queued"}
    service.stop("w1")
    assert service.schedule_due(now + 10_000, default_every=60) == 0  # a stopped batch stays so


def test_cli_status_and_report_without_servers(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    env = {"MAILFERRY_STATE": str(tmp_path / "state.sqlite3")}
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    assert run("endpoint", "add", "old", "--host", "127.0.0.1", "--security", "none").exit_code == 0
    csv_path = tmp_path / "hostile.csv"
    csv_path.write_bytes(
        b"\xef\xbb\xbfEmailAddress,UserName,Password,TargetPassword\r\n"
        b"=cmd@evil.example,@SUM(A1),pw1,pw2\r\n"
    )
    create = run(
        "batch", "create", "h", "--source", "old", "--target", "old", "--csv", str(csv_path)
    )
    assert create.exit_code == 0, create.output
    status = run("batch", "status", "h")
    assert status.exit_code == 0
    assert "batch h (old -> old): created" in status.output
    assert "=cmd@evil.example  created" in status.output
    report = run("batch", "report", "h")
    assert report.exit_code == 0
    rows = list(csv.reader(io.StringIO(report.output, newline="")))
    assert rows[1][:4] == ["'=cmd@evil.example", "'@SUM(A1)", "'=cmd@evil.example", "created"]
    assert "pw1" not in report.output
    as_json = json.loads(run("batch", "report", "h", "--json").output)
    assert as_json["mailboxes"][0]["mailbox"] == "=cmd@evil.example"  # JSON is data: left as is
    listing = run("endpoint", "list", "--json")
    assert json.loads(listing.output)[0]["name"] == "old"
    assert run("batch", "sync", "h", "--every", "soon", "--detach").exit_code == 2
    assert run("batch", "delete", "h", "--yes").exit_code == 0
    assert run("endpoint", "remove", "old").exit_code == 0


def test_batch_options_reach_each_mailbox_job(service):
    options = BatchOptions(include_deleted=True, neutralise_read_receipts=True)
    assert BatchOptions.from_json(json.loads(json.dumps(options.as_json()))) == options
    service.create_batch("opts", "old", "new", CSV, options)
    jobs = list(run_batch(service, "opts", MemoryConnector()).values())
    assert len(jobs) == 2
    assert [j.neutralise_read_receipts for j in jobs] == [True, True]
    assert all(j.options.selection.include_deleted for j in jobs)


def test_the_scheduler_runs_a_batch_on_the_memory_fakes(service):
    service.create_batch("mem", "old", "new", CSV, BatchOptions())
    connector = MemoryConnector()
    source, target = MemoryServer(), MemoryServer()
    fill(source, "INBOX", [message(1), message(2), message(3)])
    connector.servers["ann@new.example"] = (source, target)
    run_batch(service, "mem", connector)
    assert contents(target, "INBOX") == contents(source, "INBOX")
    rows = {m.record.email: m.record for m in service.status("mem").mailboxes}
    assert (rows["ann@new.example"].state, rows["ann@new.example"].copied) == ("synced", 3)
    assert (rows["bob@new.example"].state, rows["bob@new.example"].copied) == ("synced", 0)
    assert len(connector.sessions) == 2
    assert all(s.closed for s in connector.sessions)


def test_a_worker_whose_mailbox_was_taken_over_is_told_to_stop(service):
    """A worker frozen (SIGSTOP) or cut off past the stall timeout is replaced; when it comes
    back, its next progress write tells it to stop, and its finish records nothing."""
    service.create_batch("t", "old", "new", CSV, BatchOptions())
    service.start("t")
    store, email = service.store, "ann@new.example"
    assert store.claim("t", email, "host:1:1", None, 100.0)
    assert store.progress("t", email, "host:1:1", 101.0, done=1) is False
    assert store.claim("t", email, "host:2:2", "host:1:1", 200.0)  # the takeover
    assert store.progress("t", email, "host:1:1", 201.0, done=5) is True
    late = Outcome(MailboxState.SYNCED, None, "sync", 100.0, 202.0, {"messages_copied": 9})
    store.finish("t", email, "host:1:1", late)
    row = next(m.record for m in service.status("t").mailboxes if m.record.email == email)
    assert (row.owner, row.state, row.done, row.copied) == ("host:2:2", "syncing", 0, 0)
    assert store.progress("t", email, "host:2:2", 203.0, done=2) is False


class RecordingJobs:
    """A ``JobControl`` that remembers which batches' jobs it was asked to abort."""

    def __init__(self) -> None:
        self.aborted: list[str] = []

    def abort(self, batch: str) -> int:
        self.aborted.append(batch)
        return 1

    def close(self) -> None:
        pass


def test_stop_and_delete_reach_a_running_mailbox_and_the_queue(service):
    """Both ask the job queue to abort the batch's jobs (on any worker); delete no longer waits
    for running mailboxes: they learn at their next progress write that the batch is gone."""
    if service.jobs is not None:
        service.jobs.close()
    service.jobs = jobs = RecordingJobs()
    service.create_batch("w1", "old", "new", CSV, BatchOptions())
    service.start("w1")
    owner, now = new_owner(), time.time()
    assert service.store.claim("w1", "ann@new.example", owner, None, now)
    assert service.stop("w1") == 1  # bob, queued, stopped now; ann runs on
    assert jobs.aborted == ["w1"]
    assert service.store.progress("w1", "ann@new.example", owner, now + 1) is True
    service.delete("w1")
    assert jobs.aborted == ["w1", "w1"]
    assert service.store.batch("w1") is None
    assert service.store.progress("w1", "ann@new.example", owner, now + 2) is True
    outcome = Outcome(MailboxState.STOPPED, "stopped by request", "sync", now, now + 2, {})
    service.store.finish("w1", "ann@new.example", owner, outcome)  # nothing left to record
    assert service.store.runs("w1") == []


def test_the_scheduler_reaches_mailboxes_past_its_first_page(service):
    """A tick reads pending mailboxes a page at a time (``CANDIDATE_PAGE``): a batch longer than
    two pages still runs every mailbox once, and the store's keyset pages cover it exactly."""
    count = CANDIDATE_PAGE * 2 + 5
    rows = [f"u{i:03d}@new.example,u{i:03d},pw{i},tpw{i}" for i in range(count)]
    csv = ("EmailAddress,UserName,Password,TargetPassword\n" + "\n".join(rows) + "\n").encode()
    service.create_batch("long", "old", "new", csv, BatchOptions())
    service.start("long")
    pages, after = [], None
    while page := service.store.mailboxes("long", pending_only=True, after=after, limit=50):
        pages.append([m.email for m in page])
        after = (page[-1].batch, page[-1].line)
    assert [len(p) for p in pages] == [50, 50, count - 100]
    assert [e for p in pages for e in p] == [f"u{i:03d}@new.example" for i in range(count)]
    only = service.store.mailboxes("long", pending_only=True, email="u007@new.example")
    assert [m.email for m in only] == ["u007@new.example"]
    jobs = run_batch(service, "long", MemoryConnector())
    assert len(jobs) == count
    states = {m.record.state for m in service.status("long").mailboxes}
    assert states == {"synced"}
