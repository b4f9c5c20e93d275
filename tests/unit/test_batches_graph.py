"""Microsoft 365 in batches, on memory fakes (no sockets): the routes a job plans from its endpoints,
the Graph mailbox pass in the scheduler (no IMAP session when mail goes through Graph; one
refused mailbox fails alone), the outcome and the mailbox row's per-workload counters, and how
status, the reports, the API and the pages show them. The FAKE Graph end to end is in
tests/e2e/test_graph_batch.py."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from dataclasses import dataclass

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from mailferry.adapters.memory.exchange import MemoryExchange, MemoryMailbox
from mailferry.adapters.memory.mailboxstate import MemoryMailboxStateStore
from mailferry.adapters.memory.state import MemoryStateStore
from mailferry.adapters.oauth.sources import TokenSource
from mailferry.adapters.secrets import KEY_ENV
from mailferry.adapters.store.records import EndpointRecord, Outcome
from mailferry.adapters.tls import TlsOptions
from mailferry.bootstrap import open_service
from mailferry.cli.app import main
from mailferry.domain.errors import AuthError, ConfigError, StateError
from mailferry.domain.mailboxreport import Doubt, EntryProblem, FolderOutcome, MailboxSummary
from mailferry.domain.model import Security
from mailferry.domain.workloads import MailVia, RoutePlan, Workload
from mailferry.service.batches import BatchOptions, EndpointSpec, new_owner
from mailferry.service.davjobs import DavResult
from mailferry.service.graphjobs import (
    GraphAccess,
    GraphResult,
    job_routes,
    with_graph,
    with_workloads,
)
from mailferry.service.scheduler import Scheduler
from mailferry.web import create_app
from mailferry.web.credentials import AuthStore
from tests.fakes import MemoryConnector
from tests.unit.web_support import BASE, FAST, SETTINGS

CSV = (
    b"EmailAddress,UserName,Password\n"
    b"ann@new.example,ann@old.example,\n"
    b"bob@new.example,bob@old.example,\n"
)
ANN, BOB = "ann@new.example", "bob@new.example"
MAILBOX_ROLES = frozenset(
    {
        "User.Read.All",
        "MailboxFolder.ReadWrite.All",
        "MailboxItem.Read.All",
        "MailboxItem.ImportExport.All",
    }
)
RESOURCE_ROLES = frozenset({"Calendars.ReadWrite", "Contacts.ReadWrite", "Tasks.ReadWrite.All"})


class NoTokens:
    def token(self) -> str:
        return "unused"

    def refresh(self) -> str:
        return "unused"


def access(roles: frozenset[str] = MAILBOX_ROLES) -> GraphAccess:
    return GraphAccess("https://graph.test", NoTokens(), TlsOptions(), roles)


@dataclass
class Link:
    source: MemoryMailbox
    target: MemoryMailbox
    state: MemoryMailboxStateStore
    key: str
    closed: bool = False

    def close(self) -> None:
        self.closed = True


class GraphConnector(MemoryConnector):
    """Memory IMAP servers (``connect``: recorded in ``jobs``), every endpoint Microsoft 365 with
    ``roles``, and a pair of memory Exchange mailboxes per mailbox (kept across passes);
    ``refuse``: the mailboxes an access policy keeps the app out of."""

    def __init__(self, roles: frozenset[str] = MAILBOX_ROLES, refuse=()) -> None:
        super().__init__()
        self.roles = roles
        self.refuse = set(refuse)
        self.exchanges: dict[str, tuple[MemoryExchange, MemoryExchange]] = {}
        self.states: dict[str, MemoryMailboxStateStore] = {}
        self.links: list[Link] = []
        self.graph_jobs: list[str] = []

    def tokens(self, record, user):
        del record, user
        return NoTokens()  # the endpoint's IMAP token (XOAUTH2 on the memory servers: unchecked)

    def graph(self, record):
        del record
        return access(self.roles)

    def exchange(self, email: str) -> tuple[MemoryExchange, MemoryExchange]:
        return self.exchanges.setdefault(email, (MemoryExchange("src"), MemoryExchange("dst")))

    def mailboxes(self, job):
        email = job.mailbox.email
        self.graph_jobs.append(email)
        if email in self.refuse:
            raise AuthError(f"Microsoft 365 mailbox {email}: Graph refuses access (HTTP 403)")
        source, target = self.exchange(email)
        state = self.states.setdefault(email, MemoryMailboxStateStore())
        link = Link(MemoryMailbox(source), MemoryMailbox(target), state, f"graph {email}")
        self.links.append(link)
        return link


def fill(exchange: MemoryExchange) -> None:
    for n in range(3):
        exchange.add(exchange.well_known("inbox"), f"mail {n}")
    exchange.add(exchange.well_known("calendar"), "event", item_class="IPM.Appointment")
    exchange.add(exchange.well_known("contacts"), "card", item_class="IPM.Contact")


@pytest.fixture
def service(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    svc = open_service(tmp_path / "state.sqlite3")
    for name in ("old", "new"):  # an app-only token source: no password per mailbox
        tokens = TokenSource(
            m365_tenant=f"{name}-tenant", m365_client_id="app", m365_client_secret="s"
        )
        svc.add_endpoint(
            EndpointSpec(name, f"mail.{name}.example", None, Security.SSL, tokens=tokens)
        )
    yield svc
    svc.close()


def run(service, batch: str, connector: MemoryConnector, *, sync: bool = False) -> None:
    service.sync(batch) if sync else service.start(batch)
    scheduler = Scheduler(service, connector, MemoryStateStore, batch=batch, poll=0.01)
    scheduler.run(threading.Event(), until_idle=True)


# -- routes ------------------------------------------------------------------------------------------
OLD = EndpointRecord("old", "mail.old.example", 993, "ssl", 1)
DAV = EndpointRecord("dav", "mail.dav.example", 993, "ssl", 1, dav="auto")


def test_routes_follow_the_endpoints_and_the_apps_roles():
    both = job_routes((OLD, OLD), (access(), access()), None, None).plan
    assert (both.mail, both.mailbox, both.collections) == (
        MailVia.GRAPH,
        frozenset(Workload),
        frozenset(),
    )
    by_imap = job_routes((OLD, OLD), (access(), access()), None, MailVia.IMAP).plan
    assert (by_imap.mail, Workload.MAIL in by_imap.mailbox) == (MailVia.IMAP, False)
    mixed = job_routes((DAV, OLD), (None, access(RESOURCE_ROLES)), None, None).plan
    assert (mixed.mail, mixed.mailbox) == (MailVia.IMAP, frozenset())
    assert mixed.collections == {Workload.CALENDAR, Workload.CONTACTS, Workload.TASKS}
    no_roles = job_routes((OLD, OLD), (access(frozenset()), access()), None, None).plan
    assert no_roles.mail is MailVia.IMAP
    assert "the source app lacks" in dict(no_roles.skipped)[Workload.CALENDAR]
    with pytest.raises(ConfigError, match=r"^workload tasks cannot move: the target app lacks"):
        job_routes((OLD, OLD), (access(RESOURCE_ROLES), access(RESOURCE_ROLES - {"Tasks.ReadWrite.All"})),
                   frozenset({Workload.TASKS}), None)  # fmt: skip


# -- the scheduler -----------------------------------------------------------------------------------
def test_both_microsoft_365_moves_every_workload_through_graph_without_imap(service):
    connector = GraphConnector()
    for email in (ANN, BOB):
        fill(connector.exchange(email)[0])
    service.create_batch("t", "old", "new", CSV, BatchOptions())
    run(service, "t", connector)
    assert connector.jobs == []  # no IMAP session was ever opened
    assert sorted(connector.graph_jobs) == [ANN, BOB]
    assert all(link.closed for link in connector.links)
    status = service.status("t")
    assert status.state == "synced", [v.record.reason for v in status.mailboxes]
    ann = service.mailbox("t", ANN).record
    assert ann.folders == 10  # the well-known folders but the outbox: the Graph pass's
    assert ann.workloads is not None
    assert {w: (s["route"], s["copied"]) for w, s in ann.workloads.items()} == {
        "mail": ("graph", 3), "calendar": ("graph", 1), "contacts": ("graph", 1),
        "tasks": ("graph", 0), "notes": ("graph", 0),  # their folders, empty
    }  # fmt: skip
    run_summary = json.loads(service.store.runs("t")[-1]["summary"])
    assert run_summary["graph"]["workloads"]["mail"]["copied"] == 3
    assert run_summary["messages_copied"] == 0  # no IMAP pass; the mail is under workloads

    connector.exchange(ANN)[0].add(connector.exchange(ANN)[0].well_known("inbox"), "one more")
    run(service, "t", connector, sync=True)
    ann = service.mailbox("t", ANN).record
    assert (ann.workloads["mail"]["copied"], ann.workloads["mail"]["copied_total"]) == (1, 4)
    assert ann.workloads["calendar"]["copied"] == 0
    assert ann.workloads["calendar"]["copied_total"] == 1

    result = CliRunner().invoke(main, ["batch", "status", "t", "--state", str(service.state_path)])
    assert "  4 copied (Graph)  " in result.output  # the messages column
    assert "  mail (graph): 1 seen, 1 copied (4 in all), 0 updated, 0 already there, " in (
        result.output
    )
    rows = {r["mailbox"]: r for r in csv.DictReader(io.StringIO(service.report_csv("t")))}
    assert (rows[ANN]["mail_route"], rows[ANN]["mail_copied"], rows[ANN]["notes_seen"]) == (
        "graph",
        "1",
        "0",
    )
    report = {r["mailbox"]: r for r in service.report_json("t")["mailboxes"]}
    assert report[BOB]["workloads"]["contacts"]["copied_total"] == 1


def test_mail_via_imap_runs_the_imap_pass_and_graph_for_the_rest(service):
    connector = GraphConnector()
    fill(connector.exchange(ANN)[0])
    service.create_batch("i", "old", "new", CSV, BatchOptions(mail_via=MailVia.IMAP))
    run(service, "i", connector)
    assert sorted(j.mailbox.email for j in connector.jobs) == [ANN, BOB]
    ann = service.mailbox("i", ANN).record
    assert ann.workloads["mail"]["route"] == "imap"
    assert ann.workloads["calendar"] == {**ann.workloads["calendar"], "route": "graph", "copied": 1}
    assert connector.exchange(ANN)[1].items(connector.exchange(ANN)[1].well_known("inbox")) == []


def test_a_mailbox_graph_refuses_fails_alone_with_one_line(service):
    connector = GraphConnector(refuse={BOB})
    fill(connector.exchange(ANN)[0])
    service.create_batch("r", "old", "new", CSV, BatchOptions())
    run(service, "r", connector)
    ann, bob = (service.mailbox("r", e) for e in (ANN, BOB))
    assert ann.state == "synced"
    assert bob.state == "failed"
    assert bob.record.reason == f"Microsoft 365 mailbox {BOB}: Graph refuses access (HTTP 403)"
    assert bob.record.workloads["mail"] == {
        "route": "graph", "reason": bob.record.reason, "copied_total": 0,
    }  # fmt: skip


def test_a_stop_request_reaches_a_graph_pass_in_flight(service):
    """No IMAP pass writes the mailbox's row here: the Graph pass's heartbeat does, and learns of
    the batch's stop request from it; the mailbox ends Stopped, its copies so far kept."""
    connector = GraphConnector()
    source, target = connector.exchange(ANN)
    for n in range(200):
        source.add(source.well_known("inbox"), f"mail {n}")
    source.delay = target.delay = 0.05  # per request: the pass would take seconds
    service.create_batch(
        "s", "old", "new", CSV.splitlines()[0] + b"\n" + CSV.splitlines()[1], BatchOptions()
    )
    service.start("s")
    scheduler = Scheduler(service, connector, MemoryStateStore, batch="s", poll=0.01)
    done = threading.Event()
    runner = threading.Thread(target=lambda: scheduler.run(done, until_idle=True))
    runner.start()
    deadline = time.monotonic() + 10
    while not target.items(target.well_known("inbox")) and time.monotonic() < deadline:
        time.sleep(0.05)
    service.stop("s")
    runner.join(timeout=20)
    assert not runner.is_alive()
    view = service.mailbox("s", ANN)
    assert (view.state, view.record.reason) == ("stopped", "stopped by request")
    assert 0 < len(target.items(target.well_known("inbox"))) < 200


def test_a_workload_chosen_that_cannot_move_fails_each_mailbox_with_why(service):
    connector = GraphConnector(roles=MAILBOX_ROLES - {"MailboxItem.ImportExport.All"})
    options = BatchOptions(workloads=frozenset({Workload.NOTES}))
    service.create_batch("n", "old", "new", CSV, options)
    run(service, "n", connector)
    view = service.mailbox("n", ANN)
    assert view.state == "failed"
    assert view.record.reason.startswith("workload notes cannot move: the source app lacks ")
    assert "the target app lacks MailboxItem.ImportExport.All" in view.record.reason
    assert connector.graph_jobs == []


def kept_doubt(connector: GraphConnector) -> tuple[MemoryMailboxStateStore, Doubt]:
    """ANN's mailbox state with a doubt an earlier pass kept (a calendar item maybe twice)."""
    calendar = connector.exchange(ANN)[0].well_known("calendar")
    doubt = Doubt(calendar, Workload.CALENDAR, EntryProblem("Calendar", "src-e1", "maybe twice"))
    state = connector.states.setdefault(ANN, MemoryMailboxStateStore())
    state.add_import_intents(f"graph {ANN}", calendar, [], [doubt])
    return state, doubt


def test_a_graph_pass_s_doubts_are_forgotten_only_once_its_outcome_is_recorded(
    service, monkeypatch
):
    """The job's outcome carries the doubt under not_recognisable, and the doubt is still in the
    state while that outcome is written: a worker killed before the write leaves it to the next
    pass. Once recorded, it goes."""
    connector = GraphConnector()
    state, doubt = kept_doubt(connector)
    at_finish = []
    finish = service.store.finish

    def recording(batch, email, owner, outcome):
        if email == ANN:
            carried = outcome.summary["graph"]["workloads"]["calendar"]["not_recognisable"]
            at_finish.append((carried, state.doubts(f"graph {ANN}")))
        return finish(batch, email, owner, outcome)

    monkeypatch.setattr(service.store, "finish", recording)
    service.create_batch("d", "old", "new", CSV, BatchOptions())
    run(service, "d", connector)
    assert at_finish == [([doubt.problem.as_json()], [doubt])]
    assert state.doubts(f"graph {ANN}") == []
    [summary] = [json.loads(r["summary"]) for r in service.store.runs("d") if r["email"] == ANN]
    assert summary["graph"]["workloads"]["calendar"]["not_recognisable"] == [
        doubt.problem.as_json()
    ]


def test_a_graph_pass_s_doubts_stay_when_its_outcome_cannot_be_recorded(service, monkeypatch):
    connector = GraphConnector()
    state, doubt = kept_doubt(connector)
    finish = service.store.finish

    def failing(batch, email, owner, outcome):
        if email == ANN:
            raise StateError("database is locked (test)")
        return finish(batch, email, owner, outcome)

    monkeypatch.setattr(service.store, "finish", failing)
    service.create_batch("f", "old", "new", CSV, BatchOptions())
    run(service, "f", connector)
    assert state.doubts(f"graph {ANN}") == [doubt]


# -- the outcome ------------------------------------------------------------------------------------
def graph_summary() -> MailboxSummary:
    summary = MailboxSummary()
    summary.count(Workload.MAIL, "seen", 3)
    summary.count(Workload.MAIL, "copied", 2)
    summary.fail(Workload.MAIL, EntryProblem("Inbox", "item-9", "too big"))
    summary.folders.append(FolderOutcome("Odd", None, "mail", note="failed: 409 conflict"))
    return summary


def test_the_graph_pass_in_the_outcome():
    synced = Outcome("synced", None, "sync", 1.0, 2.0, {"messages_copied": 0})
    merged = with_graph(synced, GraphResult(graph_summary()), ANN)
    assert merged.summary["graph"]["workloads"]["mail"]["copied"] == 2
    assert [(f.kind, f.folder, f.item_uid, f.reason) for f in merged.failures] == [
        ("item", "Inbox", "item-9", "too big"),
        ("item", "Odd", None, "failed: 409 conflict"),
    ]
    assert merged.reason == "2 errors; first: too big"
    failed = with_graph(synced, GraphResult(None, "connection lost"), ANN)
    assert (failed.state, failed.reason) == ("failed", "Microsoft 365 mailbox: connection lost")
    stopped = Outcome("stopped", "stopped by request", "sync", 1.0, 2.0, {})
    assert with_graph(stopped, GraphResult(None, "x"), ANN).reason == "stopped by request"
    plan = RoutePlan(mail=MailVia.GRAPH, mailbox=frozenset({Workload.MAIL, Workload.NOTES}))
    sections = with_workloads(merged, plan, None, None, GraphResult(graph_summary()))
    assert sections.summary["workloads"]["mail"]["failed"] == 1
    assert "notes" not in sections.summary["workloads"]  # no notes folder: nothing to say
    plan = RoutePlan(mail=MailVia.IMAP, collections=frozenset({Workload.CALENDAR}))
    dav = DavResult(None, "target DAV: login refused")
    down = with_workloads(synced, plan, None, dav, None).summary["workloads"]
    assert down == {"calendar": {"route": "collections", "reason": "target DAV: login refused"}}


# -- options, the API and the pages ---------------------------------------------------------------
def test_batch_options_keep_workloads_and_mail_via():
    options = BatchOptions(
        workloads=frozenset({Workload.NOTES, Workload.MAIL}), mail_via=MailVia.IMAP
    )
    data = options.as_json()
    assert (data["workloads"], data["mail_via"]) == (["mail", "notes"], "imap")
    assert BatchOptions.from_json(data) == options
    assert BatchOptions.from_json({}).workloads is None


def test_batch_create_refuses_an_unknown_workload(service, tmp_path):
    path = tmp_path / "b.csv"
    path.write_bytes(CSV)
    argv = ["batch", "create", "b", "--source", "old", "--target", "new", "--csv", str(path)]
    result = CliRunner().invoke(
        main, [*argv, "--workloads", "mail,fax", "--state", str(service.state_path)]
    )
    assert result.exit_code == 2
    assert "--workloads: unknown fax" in result.stderr


@pytest.fixture
def client(service):
    auth = AuthStore.open_sqlite(service.state_path, cost=FAST)
    auth.set_admin_password("correct horse battery")
    token = auth.create_token("tests")
    auth.close()
    with TestClient(create_app(service, SETTINGS), base_url=BASE) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def test_api_and_pages_show_the_workloads(client, service):
    files = {"csv": ("b.csv", CSV, "text/csv")}
    form = {"name": "w", "source": "old", "target": "new", "workloads": "mail, calendar"}
    created = client.post("/api/batches", data={**form, "mail_via": "imap"}, files=files)
    assert created.status_code == 201, created.text
    assert (created.json()["workloads"], created.json()["mail_via"]) == (
        ["mail", "calendar"],
        "imap",
    )
    bad = client.post("/api/batches", data={**form, "name": "x", "workloads": "fax"}, files=files)
    assert bad.status_code == 400
    assert bad.json()["problems"][0].startswith("workloads: unknown fax")
    service.start("w")
    owner = new_owner()
    assert service.store.claim("w", ANN, owner, None, time.time())
    plan = RoutePlan(mail=MailVia.GRAPH, mailbox=frozenset({Workload.MAIL}))
    outcome = with_graph(
        Outcome("synced", None, "sync", 1.0, 2.0, {}), GraphResult(graph_summary()), ANN
    )
    service.store.finish(
        "w", ANN, owner, with_workloads(outcome, plan, None, None, GraphResult(graph_summary()))
    )
    detail = client.get(f"/api/batches/w/mailboxes/{ANN}").json()
    assert detail["workloads"]["mail"] == {
        "route": "graph", "reason": None, "seen": 3, "copied": 2, "copied_total": 2,
        "updated": 0, "already_there": 0, "unchanged": 0, "failed": 1,
    }  # fmt: skip
    assert client.get(f"/api/batches/w/mailboxes/{BOB}").json()["workloads"] is None
    del client.headers["Authorization"]
    assert client.post("/login", data={"password": "correct horse battery"}).status_code == 200
    page = client.get(f"/batches/w/mailboxes/{ANN}").text
    assert '<tr data-workload="mail">' in page
    assert "Microsoft Graph (mailbox import/export)" in page
    assert "(2 in all)" in page
    assert "Workloads</h2>" not in client.get(f"/batches/w/mailboxes/{BOB}").text
    assert 'name="mail_via"' in client.get("/batches/new").text
    assert "· only mail, calendar · mail via imap</p>" in client.get("/batches/w").text
