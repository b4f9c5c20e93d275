"""A batch a page at a time (issue #17): the page, the filters and the totals the database adds
up must say what reading the whole batch says; reports written in chunks must be the same bytes."""

from __future__ import annotations

import io
import json
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from mailferry.adapters.secrets import KEY_ENV
from mailferry.adapters.store.records import FailureRecord, Outcome
from mailferry.adapters.store.tables import MAILBOXES
from mailferry.cli.app import main
from mailferry.domain.errors import ConfigError, NotFound
from mailferry.domain.model import Security
from mailferry.service.batches import (  # the rows the reports are made of, private
    FAILURE_COLUMNS,
    REPORT_COLUMNS,
    BatchOptions,
    EndpointSpec,
    MailboxView,
    _failure_row,
    _report_row,
    new_owner,
)
from mailferry.service.batchpages import MailboxQuery
from mailferry.service.reports import render_csv
from mailferry.web.present import batch_out
from tests.conftest import open_test_service

COUNT = 250
SPECIAL = ["x_y@new.example", "100%@new.example", "MiXeD@New.Example"]


@pytest.fixture
def service(tmp_path, monkeypatch, state_database):
    monkeypatch.delenv(KEY_ENV, raising=False)
    svc = open_test_service(state_database, tmp_path)
    svc.add_endpoint(EndpointSpec("old", "127.0.0.1", 10143, Security.NONE))
    svc.add_endpoint(EndpointSpec("new", "127.0.0.1", 10144, Security.NONE))
    emails = [f"u{i:03d}@new.example" for i in range(COUNT - len(SPECIAL))] + SPECIAL
    rows = "".join(f"{e},{e.split('@')[0]},pw,tpw\n" for e in emails)
    data = ("EmailAddress,UserName,Password,TargetPassword\n" + rows).encode()
    svc.create_batch("big", "old", "new", data, BatchOptions())
    _mixed_states(svc)
    yield svc
    svc.close()


def _set(svc, condition, **values) -> None:
    with svc.store.db.transaction(write=True) as conn:
        conn.execute(update(MAILBOXES).where(MAILBOXES.c.batch == "big", condition).values(values))


def _mixed_states(svc) -> None:
    """Synced, failed, with failed messages, running (this process), queued (no owner, and an
    owner long dead), as a batch is after a while."""
    line = MAILBOXES.c.line
    _set(svc, line % 5 == 0, state="synced", copied=10, bytes=1000, last_synced=1.0)
    _set(svc, line % 7 == 0, state="failed", reason="login refused")
    _set(svc, line % 11 == 0, state="synced", errors=2)
    now = time.time()
    _set(svc, line.in_([3, 4]), state="syncing", pending="sync", owner=new_owner(), heartbeat=now)
    _set(svc, line.in_([6, 8]), pending="sync")
    _set(svc, line == 9, state="syncing", pending="sync", owner="gone.example:1:1.0", heartbeat=1.0)
    _set(svc, line == 12, items_failed=1, collections=2, items_copied=5)
    _record_failure(svc, FailureRecord("u010@new.example", "INBOX", 7, "refused"))


def _record_failure(svc, failure: FailureRecord) -> None:
    """A pass that ends with one failed message, as the scheduler records it."""
    owner = new_owner()
    _set(svc, MAILBOXES.c.email == failure.email, pending="sync")
    assert svc.store.claim("big", failure.email, owner, None, time.time())
    outcome = Outcome("synced", None, "sync", 1.0, 2.0, {"messages_copied": 3}, [failure])
    svc.store.finish("big", failure.email, owner, outcome)


def _matches(view: MailboxView, query: MailboxQuery) -> bool:
    m = view.record
    failed = m.errors > 0 or (m.items_failed or 0) > 0 or m.state == "failed"
    return (
        (query.state is None or view.state == query.state)
        and (query.errors is None or failed == query.errors)
        and query.search.lower() in m.email.lower()
    )


QUERIES = [
    MailboxQuery(),
    MailboxQuery(page=3),
    MailboxQuery(per_page=7, page=5),
    MailboxQuery(state="failed"),
    MailboxQuery(state="queued"),
    MailboxQuery(state="syncing"),
    MailboxQuery(state="synced", errors=True),
    MailboxQuery(errors=False, per_page=1000),
    MailboxQuery(search="U01"),
    MailboxQuery(search="_"),
    MailboxQuery(search="%"),
    MailboxQuery(search="mixed@new"),
    MailboxQuery(state="completed"),
]


@pytest.mark.parametrize("query", QUERIES, ids=repr)
def test_a_page_is_the_slice_of_the_whole_batch_the_filters_choose(service, query):
    whole = service.status("big")
    chosen = [v for v in whole.mailboxes if _matches(v, query)]
    page = service.status_page("big", query)
    expected = chosen[query.offset : query.offset + query.per_page]
    assert [v.record.email for v in page.mailboxes] == [v.record.email for v in expected]
    assert [v.state for v in page.mailboxes] == [v.state for v in expected]
    assert page.totals.matched == len(chosen)
    assert page.counts() == whole.counts()
    assert page.state == whole.state


def test_the_states_the_fixture_means_are_there(service):
    counts = service.status("big").counts()
    assert counts["queued"] == 3  # two without an owner, one whose owner is long dead
    assert counts["syncing"] == 2  # this process holds them
    assert {"synced", "failed", "created"} <= counts.keys()


def test_the_totals_shown_are_those_of_the_whole_batch(service):
    whole = batch_out(service.status("big"), now=2e9)
    paged = batch_out(service.status_page("big", MailboxQuery(per_page=1)), now=2e9)
    assert paged == whole


def test_queries_out_of_range_are_refused_naming_the_option():
    with pytest.raises(ConfigError) as caught:
        MailboxQuery(state="sleeping", page=0, per_page=5000).check({"state": "--only"})
    assert [p.split(" ")[0] for p in caught.value.problems] == ["--only", "page", "per_page"]


def test_reports_written_in_chunks_are_what_the_whole_batch_gives(service):
    """The CSV and the failure list as render_csv made them from the whole batch; the JSON as
    json.dumps(indent=2) of the whole report."""
    whole = service.status("big")
    rows = [_report_row(v) for v in whole.mailboxes]
    assert service.report_text("big", "csv") == render_csv(REPORT_COLUMNS, rows)
    failures = service.store.failures("big")
    assert len(failures) == 1
    expected_failures = render_csv(FAILURE_COLUMNS, [_failure_row(f) for f in failures])
    assert service.report_text("big", "failures") == expected_failures
    report = json.loads(service.report_text("big", "json"))
    assert len(report["mailboxes"]) == COUNT
    assert report["counts"] == whole.counts()
    by_email = {m["mailbox"]: m for m in report["mailboxes"]}
    assert by_email["u010@new.example"]["failures"][0]["reason"] == "refused"
    text = service.report_text("big", "json")
    assert text == json.dumps(report, indent=2, ensure_ascii=False)


def test_a_report_of_no_batch_is_refused_before_a_byte_is_written(service):
    buffer = io.StringIO()
    with pytest.raises(NotFound, match="no batch"):
        service.write_report("nope", buffer, "json")
    assert buffer.getvalue() == ""


def test_batch_status_pages_and_filters_on_the_command_line(service, state_database):
    if state_database.path is None:
        pytest.skip("the CLI opens the SQLite file")
    base = ["batch", "status", "big", "--state", str(state_database.path)]
    result = CliRunner().invoke(main, [*base, "--only", "failed", "--per-page", "3"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    failed = sum(1 for v in service.status("big").mailboxes if v.state == "failed")
    assert lines[1].startswith(f"mailboxes 1-3 of {failed} matching ({COUNT} in the batch")
    assert len(lines) == 2 + 3
    assert all("  failed  " in line for line in lines[2:])
    result = CliRunner().invoke(main, [*base, "--search", "MIXED", "--json"])
    report = json.loads(result.output)
    assert [m["mailbox"] for m in report["mailboxes"]] == ["MiXeD@New.Example"]
    assert (report["matched"], report["page"], report["per_page"]) == (1, 1, 100)
    bad = CliRunner().invoke(main, [*base, "--only", "sleeping"])
    assert bad.exit_code == 2
    assert "--only 'sleeping'" in bad.output
