"""Calendars and contacts in batches, without servers: the endpoint's DAV setting (checked,
expanded), the scheduler's DAV pass on fakes, the counters and item failures in status, reports,
the API and the pages."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from mailferry.adapters.dav import parse_dav_url
from mailferry.adapters.memory.account import MemoryServer
from mailferry.adapters.memory.dav import MemoryDavAccount, MemoryDavServer
from mailferry.adapters.memory.davstate import MemoryItemStateStore
from mailferry.adapters.memory.state import MemoryStateStore
from mailferry.adapters.secrets import KEY_ENV
from mailferry.adapters.store.records import EndpointRecord, FailureRecord, Outcome
from mailferry.bootstrap import open_service
from mailferry.cli.app import main
from mailferry.domain.davreport import CollectionReport, DavSummary, ItemProblem
from mailferry.domain.errors import AuthError, ConfigError
from mailferry.domain.items import identify
from mailferry.domain.model import Security
from mailferry.domain.workloads import MailVia, Workload
from mailferry.sandbox import davcorpus
from mailferry.service.batches import BatchOptions, EndpointSpec, new_owner
from mailferry.service.davjobs import DavResult, with_dav
from mailferry.service.davroutes import dav_route, dav_tls, expand, template_problems
from mailferry.service.graphjobs import job_routes
from mailferry.service.scheduler import Scheduler
from mailferry.web import create_app
from mailferry.web.credentials import AuthStore
from tests.fakes import MemoryConnector, fill, message, run_batch
from tests.unit.web_support import BASE, FAST, SETTINGS

CSV = (
    b"EmailAddress,UserName,Password,TargetPassword\n"
    b"ann@new.example,ann@old.example,ann-secret,ann-target\n"
    b"bob@new.example,bob,bob-secret,bob-target\n"
)
ANN = "ann@new.example"


@pytest.fixture
def service(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    svc = open_service(tmp_path / "state.sqlite3")
    svc.add_endpoint(
        EndpointSpec(
            "old", "127.0.0.1", 10143, Security.NONE, dav="https://dav.old.example/{user}/"
        )
    )
    svc.add_endpoint(EndpointSpec("new", "mail.new.example", None, Security.SSL, dav="auto"))
    yield svc
    svc.close()


# -- the endpoint's DAV setting --------------------------------------------------------------------
@pytest.mark.parametrize(
    "template",
    ["auto", "https://dav.example.com/{user}/", "https://dav.example.com:8443/dav/", "http://127.0.0.1:5232/{user}/"],
)  # fmt: skip
def test_good_templates(template):
    assert template_problems(template, "--dav") == []


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("dav.example.com", "expected auto or a URL template"),
        ("ftp://dav.example.com/", "expected auto or a URL template"),
        ("https://admin:hunter2@dav.example.com/", "no USER@ in the template"),
        ("https://{user}.dav.example.com/", "goes in the path, not the host"),
        ("https://dav.example.com/{mailbox}/", "the only placeholder is {user}"),
        ("https://dav.example.com/?user={user}", "no query or fragment"),
        ("https://dav.example.com:port/", "the port is not a number"),
        ("http://dav.example.com/{user}/", "http:// only to loopback"),
    ],
)
def test_bad_templates_name_the_option(template, problem):
    (found,) = template_problems(template, "--dav")
    assert found.startswith("--dav")
    assert problem in found
    assert "hunter2" not in found


def test_plaintext_allowed_when_asked():
    assert template_problems("http://dav.lan/{user}/", "dav", allow_plaintext=True) == []


def test_expand_percent_encodes_the_user_in_path_and_login():
    url = expand("https://dav.example.com/dav/{user}/", "ann@old.example", "ignored")
    assert url == "https://ann%40old.example@dav.example.com/dav/ann%40old.example/"
    parsed = parse_dav_url(url)
    assert (parsed.user, parsed.host, parsed.path) == (
        "ann@old.example",
        "dav.example.com",
        "/dav/ann%40old.example/",
    )
    assert expand("https://dav.example.com:8443", "bob", "x") == "https://bob@dav.example.com:8443/"
    assert expand("https://d.example/{user}/{user}.ics/", "a b", "x").endswith("/a%20b/a%20b.ics/")


def test_auto_is_the_imap_host_over_https():
    assert expand("auto", "ann", "mail.example.com") == "https://ann@mail.example.com/"
    assert expand("auto", "ann", "::1") == "https://ann@[::1]/"
    assert parse_dav_url(expand("auto", "ann", "::1")).host == "::1"


def test_dav_tls_inherits_the_endpoints_unless_set():
    base = EndpointRecord("e", "h", 993, "ssl", 1, ca_file="/ca.pem", insecure=True, dav="auto")
    assert (dav_tls(base).ca_file, dav_tls(base).insecure) == (Path("/ca.pem"), True)
    own = EndpointRecord(
        "e",
        "h",
        993,
        "ssl",
        1,
        ca_file="/ca.pem",
        dav="auto",
        dav_ca_file="/d.pem",
        dav_insecure=False,
    )
    assert (dav_tls(own).ca_file, dav_tls(own).insecure) == (Path("/d.pem"), False)


def test_a_route_needs_dav_on_both_sides():
    """One side's DAV URL alone moves nothing: that side's URL is kept (the other might be
    Microsoft 365 through Graph), and the job's route plan leaves calendars out, saying why."""
    with_dav_ = EndpointRecord("a", "mail.a", 993, "ssl", 1, dav="auto")
    without = EndpointRecord("b", "mail.b", 993, "ssl", 1)
    half = dav_route(with_dav_, without, "u", "v")
    assert half is not None
    assert (half.source_url, half.target_url) == ("https://u@mail.a/", None)
    assert dav_route(without, EndpointRecord("c", "mail.c", 993, "ssl", 1), "u", "v") is None
    plan = job_routes((with_dav_, without), (None, None), None, None).plan
    assert (plan.mail, plan.collections, plan.mailbox) == (MailVia.IMAP, frozenset(), frozenset())
    assert dict(plan.skipped)[Workload.CALENDAR].startswith("the target has no calendars")
    route = dav_route(with_dav_, EndpointRecord("c", "mail.c", 993, "ssl", 1, dav="auto"), "u", "v")
    assert route is not None
    assert (route.source_url, route.target_url) == ("https://u@mail.a/", "https://v@mail.c/")


def test_service_reports_dav_problems_with_the_others(service, tmp_path):
    spec = EndpointSpec(
        "x", "h", None, Security.SSL, max_connections=0, dav="ftp://d/", dav_ca_file=tmp_path / "no"
    )
    with pytest.raises(ConfigError) as caught:
        service.add_endpoint(spec)
    problems = caught.value.problems
    assert any(p.startswith("--max-connections") for p in problems)
    assert any(p.startswith("--dav 'ftp://d/'") for p in problems)
    assert any(p.startswith("--dav-ca-file") and "no such file" in p for p in problems)
    lone = EndpointSpec("y", "h", None, Security.SSL, dav_insecure=True)
    with pytest.raises(ConfigError, match="need --dav"):
        service.add_endpoint(lone)


def test_cli_endpoint_add_with_dav_then_show_and_list(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    state = str(tmp_path / "state.sqlite3")
    ca = tmp_path / "dav-ca.pem"
    ca.write_text("x")
    runner = CliRunner()
    added = runner.invoke(
        main,
        ["endpoint", "add", "old", "--host", "imap.old.example", "--state", state,
         "--dav", "https://dav.old.example/{user}/", "--dav-ca-file", str(ca)],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "calendars and contacts at https://dav.old.example/{user}/" in added.output
    shown = runner.invoke(main, ["endpoint", "show", "old", "--json", "--state", state])
    row = json.loads(shown.output)
    assert (row["dav"], row["dav_ca_file"], row["dav_insecure"]) == (
        "https://dav.old.example/{user}/",
        str(ca),
        None,  # not given: as the endpoint's --insecure
    )
    (listed,) = json.loads(
        runner.invoke(main, ["endpoint", "list", "--json", "--state", state]).output
    )
    assert listed["dav"] == "https://dav.old.example/{user}/"
    text = runner.invoke(main, ["endpoint", "show", "old", "--state", state]).output
    assert "dav: https://dav.old.example/{user}/" in text
    bad = runner.invoke(
        main,
        ["endpoint", "add", "bad", "--host", "h", "--state", state, "--dav", "https://u@d/"],
    )  # fmt: skip
    assert bad.exit_code == 2
    assert "--dav: no USER@ in the template" in bad.output
    missing = runner.invoke(main, ["endpoint", "show", "nope", "--state", state])
    assert missing.exit_code == 2


# -- the scheduler's DAV pass ----------------------------------------------------------------------
class Link:
    """The scheduler's ``DavLink`` on memory DAV servers (``adapters/memory/dav.py``)."""

    def __init__(self, source, target, state) -> None:
        self.source, self.target, self.state = source, target, state
        self.key = "dav pair"
        self.closed = False

    def close(self) -> None:
        self.closed = True


class DavConnector(MemoryConnector):
    """The memory connector plus DAV: a pair of memory DAV servers and an item state per mailbox
    (kept across passes); ``refuse`` lists the mailboxes whose DAV login fails."""

    def __init__(self, refuse=()) -> None:
        super().__init__()
        self.refuse = set(refuse)
        self.links: dict[str, Link] = {}
        self.dav_servers: dict[str, tuple[MemoryDavServer, MemoryDavServer]] = {}
        self.states: dict[str, MemoryItemStateStore] = {}
        self.order: list[str] = []

    def connect(self, job):
        self.order.append(f"mail {job.mailbox.email}")
        return super().connect(job)

    def dav(self, job):
        email = job.mailbox.email
        self.order.append(f"dav {email}")
        if email in self.refuse:
            raise AuthError("target DAV https://dav.new.example/: login refused")
        source, target = self.dav_servers.setdefault(email, dav_pair())
        state = self.states.setdefault(email, MemoryItemStateStore())
        link = Link(MemoryDavAccount(source, USER), MemoryDavAccount(target, USER), state)
        self.links[email] = link
        return link


USER = "alice"
CAL = "/alice/calendars/calendar/"


def uids(server: MemoryDavServer) -> list[str]:
    return sorted(identify(i.data).uid for i in server.collection(CAL).items.values())


def dav_pair() -> tuple[MemoryDavServer, MemoryDavServer]:
    source, target = MemoryDavServer(), MemoryDavServer()
    source.add_user(USER)
    target.add_user(USER)
    return source, target


def test_scheduler_copies_items_once_and_records_item_failures(service):
    service.create_batch("i", "old", "new", CSV, BatchOptions())
    connector = DavConnector()
    source, target = connector.dav_servers.setdefault(ANN, dav_pair())
    source.store(f"{CAL}a.ics", davcorpus.simple_event("a@t"))
    source.store(f"{CAL}b.ics", davcorpus.series("b@t"))
    source.store(f"{CAL}broken.ics", b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:broken@t\r\n")
    run_batch(service, "i", connector)
    ann = service.mailbox("i", ANN).record
    assert (ann.items_copied, ann.items_failed, ann.collections) == (2, 1, 2)
    assert uids(target) == ["a@t", "b@t"]
    (failure,) = [f for f in service.store.failures("i") if f.email == ANN]
    assert (failure.kind, failure.folder, failure.href, failure.item_uid) == (
        "item",
        "calendar",
        f"{CAL}broken.ics",
        "broken@t",
    )
    assert service.mailbox("i", ANN).record.reason.startswith("1 errors; first: ")

    assert service.sync("i") == 2  # again: nothing new, nothing copied twice
    scheduler = Scheduler(service, connector, MemoryStateStore, batch="i", poll=0.01)
    scheduler.run(threading.Event(), until_idle=True)
    again = service.mailbox("i", ANN).record
    assert (again.items_copied, again.items_failed) == (2, 1)
    assert uids(target) == ["a@t", "b@t"]
    last = json.loads(service.store.runs("i")[-1]["summary"])
    assert last["dav"]["items_copied"] == 0


def test_a_full_dav_target_fails_the_mailbox_with_why_and_the_next_sync_finishes(service):
    """The batch shows what the CLI shows: the stop's reason on the mailbox, the items left in
    its DAV summary; after more room, the next sync copies the rest, nothing twice."""
    service.create_batch("f", "old", "new", CSV, BatchOptions())
    connector = DavConnector()
    source, target = connector.dav_servers.setdefault(ANN, dav_pair())
    for n in range(10):
        source.store(f"{CAL}e{n}.ics", davcorpus.simple_event(f"e{n}@t"))
    target.space = 4 * len(davcorpus.simple_event("e0@t"))
    run_batch(service, "f", connector)
    ann = service.mailbox("f", ANN).record
    assert ann.state == "failed"
    assert (ann.reason or "").startswith("the target's storage is full (")
    (ann_run,) = [r for r in service.store.runs("f") if r["email"] == ANN]  # not bob's: both ran
    first = json.loads(ann_run["summary"])["dav"]
    assert first["items_copied"] + first["items_remaining"] == 10
    assert (first["items_failed"], first["items_remaining"] > 0) == (0, True)

    target.space = None
    service.sync("f")
    scheduler = Scheduler(service, connector, MemoryStateStore, batch="f", poll=0.01)
    scheduler.run(threading.Event(), until_idle=True)
    assert service.mailbox("f", ANN).record.state == "synced"
    assert uids(target) == uids(source)


def test_scheduler_runs_dav_after_mail_and_a_dav_login_failure_keeps_the_mail(service):
    service.create_batch("b", "old", "new", CSV, BatchOptions())
    connector = DavConnector(refuse={"bob@new.example"})
    for email in (ANN, "bob@new.example"):
        connector.servers[email] = (fill_server(), fill_server(empty=True))
    jobs = run_batch(service, "b", connector)
    route = jobs[ANN].dav
    assert route.source_url == "https://ann%40old.example@dav.old.example/ann%40old.example/"
    # no TargetUserName in the CSV: the target user is the address
    assert route.target_url == "https://ann%40new.example@mail.new.example/"
    for email in (ANN, "bob@new.example"):
        assert connector.order.index(f"mail {email}") < connector.order.index(f"dav {email}")
    assert connector.links[ANN].closed
    views = {v.record.email: v for v in service.status("b").mailboxes}
    ann, bob = views[ANN], views["bob@new.example"]
    assert (ann.state, ann.record.collections, ann.record.copied) == ("synced", 2, 3)
    assert bob.state == "failed"
    assert (
        bob.record.reason
        == "calendars and contacts: target DAV https://dav.new.example/: login refused"
    )
    assert (bob.record.copied, bob.record.collections) == (3, None)  # the mail pass's result stays


def test_a_shutdown_during_the_dav_pass_leaves_the_mailbox_queued(service):
    """The DAV pass stops on the job's stop event: shut down mid-pass, the mailbox is
    interrupted (pending, resumed by the next start) and its mail result is recorded."""
    service.create_batch("z", "old", "new", CSV, BatchOptions())
    service.start("z")
    scheduler = None
    stop = threading.Event()

    class Stopping(DavConnector):
        def dav(self, job):
            link = super().dav(job)
            # what SIGTERM does (``Scheduler.shutdown``, which then waits for this very job)
            stop.set()
            scheduler._shutdown.set()  # the first half of shutdown()
            for running in scheduler._running.values():
                running.stop.set()
            return link

    connector = Stopping()
    for email in (ANN, "bob@new.example"):
        connector.servers[email] = (fill_server(), fill_server(empty=True))
    scheduler = Scheduler(service, connector, MemoryStateStore, batch="z", poll=0.01, workers=1)
    scheduler.run(stop, until_idle=True)
    views = {v.record.email: v for v in service.status("z").mailboxes}
    ann = views[ANN].record
    assert (ann.state, ann.pending, ann.reason) == (
        "syncing",
        "sync",
        "interrupted; resumes on the next start",
    )
    assert ann.copied == 3
    assert ann.collections == 0  # the pass stopped before its first collection
    assert connector.links[ANN].closed


def fill_server(*, empty: bool = False) -> MemoryServer:
    server = MemoryServer()
    if not empty:
        fill(server, "INBOX", [message(n) for n in range(3)])
    return server


def test_a_batch_without_dav_on_both_sides_runs_no_dav_pass(service):
    service.add_endpoint(EndpointSpec("plain", "mail.plain.example", None, Security.SSL))
    service.create_batch("m", "old", "plain", CSV, BatchOptions())
    connector = DavConnector()
    jobs = run_batch(service, "m", connector)
    assert all(not job.routes.plan.collections for job in jobs.values())
    assert not any(step.startswith("dav") for step in connector.order)
    assert {v.record.collections for v in service.status("m").mailboxes} == {None}


# -- the outcome, the row, the reports -------------------------------------------------------------
def dav_summary() -> DavSummary:
    summary = DavSummary(items_copied=5, items_updated=1, items_skipped_existing=2)
    summary.collections = [
        CollectionReport("/ann/calendar/", "/t/calendar/", "calendar", 6),
        CollectionReport("/ann/contacts/", None, "addressbook", 2, note="failed: 403 Forbidden"),
    ]
    summary.failures = [ItemProblem("calendar", "/ann/calendar/x.ics", "x@uid", "too big")]
    summary.conflicts = [ItemProblem("calendar", "/ann/calendar/y.ics", "y@uid", "changed there")]
    return summary


def test_with_dav_adds_counters_and_item_failures():
    mail = FailureRecord(ANN, "INBOX", 7, "refused")
    synced = Outcome("synced", "1 errors; first: refused", "sync", 1.0, 2.0, {"x": 1}, [mail])
    merged = with_dav(synced, DavResult(dav_summary()), ANN)
    assert merged.summary["dav"]["items_copied"] == 5
    assert merged.summary["x"] == 1
    kinds = [(f.kind, f.folder, f.href, f.item_uid) for f in merged.failures]
    assert kinds == [
        ("message", "INBOX", None, None),
        ("item", "calendar", "/ann/calendar/x.ics", "x@uid"),
        ("item", "contacts", "/ann/contacts/", None),
    ]
    assert merged.reason == "3 errors; first: refused"
    failed = with_dav(synced, DavResult(None, "login refused"), ANN)
    assert (failed.state, failed.reason) == ("failed", "calendars and contacts: login refused")
    assert "dav" not in failed.summary
    stopped = Outcome("stopped", "stopped by request", "sync", 1.0, 2.0, {})
    assert with_dav(stopped, DavResult(dav_summary()), ANN).reason == "stopped by request"


def finish(service, batch: str, outcome: Outcome) -> None:
    owner = new_owner()
    assert service.store.claim(batch, ANN, owner, None, time.time())
    service.store.finish(batch, ANN, owner, outcome)


def test_counters_and_item_failures_in_status_and_reports(service):
    service.create_batch("r", "old", "new", CSV, BatchOptions())
    service.start("r")
    summary = {"folders": 2, "messages_copied": 4}
    first = with_dav(
        Outcome("synced", None, "sync", 1.0, 2.0, summary), DavResult(dav_summary()), ANN
    )
    finish(service, "r", first)
    m = service.mailbox("r", ANN).record
    assert (m.collections, m.items_copied, m.items_updated, m.items_skipped) == (2, 5, 1, 2)
    assert (m.items_failed, m.item_conflicts, m.errors) == (1, 1, 2)
    service.sync("r")  # a second pass: copied counts all passes, the rest the last one
    again = DavSummary(items_copied=2)
    finish(
        service, "r", with_dav(Outcome("synced", None, "sync", 3.0, 4.0, {}), DavResult(again), ANN)
    )
    m = service.mailbox("r", ANN).record
    assert (m.collections, m.items_copied, m.items_failed, m.item_conflicts) == (0, 7, 0, 0)
    finish_again = with_dav(
        Outcome("synced", None, "sync", 5.0, 6.0, {}), DavResult(dav_summary()), ANN
    )
    service.sync("r")
    finish(service, "r", finish_again)

    rows = {r["mailbox"]: r for r in csv.DictReader(io.StringIO(service.report_csv("r")))}
    assert (rows[ANN]["collections"], rows[ANN]["items_copied"], rows[ANN]["item_conflicts"]) == (
        "2",
        "12",
        "1",
    )
    assert rows["bob@new.example"]["items_copied"] == ""  # no DAV pass ran
    report = service.report_json("r")
    ann = next(r for r in report["mailboxes"] if r["mailbox"] == ANN)
    assert ann["items_failed"] == 1
    assert {"mailbox": ANN, "folder": "calendar", "uid": "x@uid", "reason": "too big",
            "kind": "item", "href": "/ann/calendar/x.ics"} in ann["failures"]  # fmt: skip
    failures = list(csv.DictReader(io.StringIO(service.failures_csv("r"))))
    assert [(f["kind"], f["uid"], f["href"]) for f in failures] == [
        ("item", "x@uid", "/ann/calendar/x.ics"),
        ("item", "", "/ann/contacts/"),
    ]


def test_batch_status_shows_the_items(service, tmp_path):
    service.create_batch("s", "old", "new", CSV, BatchOptions())
    service.start("s")
    finish(
        service,
        "s",
        with_dav(Outcome("synced", None, "sync", 1.0, 2.0, {}), DavResult(dav_summary()), ANN),
    )
    result = CliRunner().invoke(main, ["batch", "status", "s", "--state", str(service.state_path)])
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert "2 collections: 5 copied, 2 there, 1 updated, 1 failed, 1 conflicts" in lines[ANN]
    assert "  -  " in lines["bob@new.example"]
    as_json = CliRunner().invoke(
        main, ["batch", "status", "s", "--json", "--state", str(service.state_path)]
    )
    rows = {r["mailbox"]: r for r in json.loads(as_json.output)["mailboxes"]}
    assert (rows[ANN]["items_copied"], rows["bob@new.example"]["collections"]) == (5, None)


# -- the API and the pages -------------------------------------------------------------------------
@pytest.fixture
def client(service):
    auth = AuthStore.open_sqlite(service.state_path, cost=FAST)
    auth.set_admin_password("correct horse battery")
    token = auth.create_token("tests")
    auth.close()
    with TestClient(create_app(service, SETTINGS), base_url=BASE) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def test_api_endpoints_carry_dav(client):
    r = client.post(
        "/api/endpoints",
        json={"name": "d", "host": "imap.d.example", "dav": "https://dav.d.example/{user}/"},
    )
    assert r.status_code == 201, r.text
    assert (r.json()["dav"], r.json()["dav_insecure"]) == ("https://dav.d.example/{user}/", None)
    listed = {e["name"]: e for e in client.get("/api/endpoints").json()}
    assert listed["new"]["dav"] == "auto"
    bad = client.post(
        "/api/endpoints",
        json={
            "name": "e",
            "host": "h",
            "dav": "https://dav.d.example/{who}/",
            "dav_ca_file": "/nope",
        },
    )
    assert bad.status_code == 400
    problems = bad.json()["problems"]
    assert any(p.startswith("dav 'https://dav.d.example/{who}/'") for p in problems)
    assert any(p.startswith("dav_ca_file '/nope': not a CA certificate file") for p in problems)


def test_api_and_pages_show_items_per_mailbox(client, service):
    service.create_batch("w", "old", "new", CSV, BatchOptions())
    service.start("w")
    finish(
        service,
        "w",
        with_dav(Outcome("synced", None, "sync", 1.0, 2.0, {}), DavResult(dav_summary()), ANN),
    )
    batch = client.get("/api/batches/w").json()
    assert batch["items_copied"] == 5
    rows = {m["address"]: m for m in batch["mailboxes"]}
    assert (rows[ANN]["collections"], rows[ANN]["items_copied"], rows[ANN]["item_conflicts"]) == (
        2,
        5,
        1,
    )
    assert rows["bob@new.example"]["collections"] is None
    detail = client.get(f"/api/batches/w/mailboxes/{ANN}").json()
    assert detail["items_skipped"] == 2
    item = next(f for f in detail["failures"] if f["href"])
    assert (item["kind"], item["folder"], item["uid"], item["item_uid"]) == (
        "item",
        "calendar",
        None,
        "x@uid",
    )

    del client.headers["Authorization"]
    login = client.post("/login", data={"password": "correct horse battery"})
    assert login.status_code == 200, login.text
    page = client.get("/batches/w").text
    assert "Calendars and contacts" in page
    assert "5 items, 2 there, 1 conflicts" in page
    mailbox = client.get(f"/batches/w/mailboxes/{ANN}").text
    assert (
        "2 collections · 5 items copied; 1 updated, 2 already there, 1 failed, 1 conflicts"
        in mailbox
    )
    assert 'data-kind="item"' in mailbox
    assert "/ann/calendar/x.ics" in mailbox
    endpoints = client.get("/endpoints").text
    assert "<code>https://dav.old.example/{user}/</code>" in endpoints
    assert 'name="dav"' in endpoints


def test_pages_without_dav_say_nothing_of_items(client, service):
    service.create_batch("p", "old", "new", CSV, BatchOptions())
    del client.headers["Authorization"]
    client.post("/login", data={"password": "correct horse battery"})
    mailbox = client.get(f"/batches/p/mailboxes/{ANN}").text
    assert "Calendars and contacts" not in mailbox
    assert "Failed messages</h2>" in mailbox


def test_batch_create_says_what_happens_to_calendars(service, tmp_path):
    service.add_endpoint(EndpointSpec("plain", "mail.plain.example", None, Security.SSL))
    csv_path = tmp_path / "b.csv"
    csv_path.write_bytes(CSV)
    state = str(service.state_path)
    runner = CliRunner()
    both = runner.invoke(
        main, ["batch", "create", "both", "--source", "old", "--target", "new",
               "--csv", str(csv_path), "--state", state],
    )  # fmt: skip
    assert both.exit_code == 0, both.output
    assert "calendars and contacts follow the mail" in both.output
    one = runner.invoke(
        main, ["batch", "create", "one", "--source", "old", "--target", "plain",
               "--csv", str(csv_path), "--state", state],
    )  # fmt: skip
    assert "not moved: endpoint old has a DAV URL, plain has none" in one.output
