"""A batch that moves mail and calendars and contacts: Dovecot ("/") -> Dovecot (".") for mail,
Radicale -> Xandikos for DAV, each endpoint carrying a DAV URL template; the CSV as for mail."""

from __future__ import annotations

import csv
import io
import json
import threading

import pytest
from fastapi.testclient import TestClient

from mailferry.adapters.dav import CollectionKind
from mailferry.bootstrap import open_service
from mailferry.bootstrap import scheduler as build_scheduler
from mailferry.domain.items import identify
from mailferry.domain.model import Security
from mailferry.sandbox import davcorpus
from mailferry.sandbox.corpus import build_corpus, connect, load_corpus
from mailferry.service.batches import BatchOptions, EndpointSpec
from mailferry.web import create_app
from mailferry.web.credentials import AuthStore
from tests.integration.conftest_helpers import Account, Migration
from tests.integration.test_dav_sync import open_account
from tests.unit.web_support import BASE, FAST, SETTINGS

pytestmark = pytest.mark.integration


@pytest.fixture
def service(tmp_path, dovecot_slash, dovecot_dot, radicale, xandikos, monkeypatch):
    monkeypatch.delenv("MAILFERRY_KEY", raising=False)
    svc = open_service(tmp_path / "state.sqlite3")
    svc.add_endpoint(
        EndpointSpec(
            "old",
            "127.0.0.1",
            dovecot_slash.port,
            Security.NONE,
            dav=f"http://127.0.0.1:{radicale.port}/{{user}}/",
        )
    )
    svc.add_endpoint(
        EndpointSpec(
            "new",
            "127.0.0.1",
            dovecot_dot.port,
            Security.NONE,
            dav=f"https://127.0.0.1:{xandikos.port}/",
            dav_ca_file=xandikos.ca_file,
        )
    )
    yield svc
    svc.close()


def seed_dav(server, user, password) -> int:
    """Events of every kind and two contacts in the user's default collections."""
    account = open_account(server, user, password)
    try:
        collections = account.collections()
        calendar = next(c.href for c in collections if c.kind is CollectionKind.CALENDAR)
        book = next(c.href for c in collections if c.kind is CollectionKind.ADDRESSBOOK)
        items = davcorpus.every_kind()
        for name, data in items.items():
            account.put(f"{calendar}{name}.ics", data, CollectionKind.CALENDAR)
        for uid in ("ann@tests", "bob@tests"):
            account.put(f"{book}{uid}.vcf", davcorpus.card(uid), CollectionKind.ADDRESSBOOK)
        return len(items) + 2
    finally:
        account.close()


def target_uids(server, user, password) -> list[str]:
    account = open_account(server, user, password)
    try:
        return [
            identify(account.get(ref.href).data).uid
            for c in account.collections()
            if c.kind in (CollectionKind.CALENDAR, CollectionKind.ADDRESSBOOK)
            for ref in account.items(c.href)
        ]
    finally:
        account.close()


def mailboxes(dovecot_slash, dovecot_dot, radicale, xandikos, make_user, count):
    made = []
    for i in range(count):
        source = Account(dovecot_slash, *make_user(dovecot_slash))
        client = connect(dovecot_slash, source.user, source.password)
        try:
            load_corpus(client, build_corpus(300 + i), dovecot_slash.delimiter)
        finally:
            client.logout()
        radicale.add_user(source.user, source.password)  # the same login for mail and DAV
        target = Account(dovecot_dot, *make_user(dovecot_dot))
        xandikos.add_user(target.user, target.password)
        made.append((source, target, seed_dav(radicale, source.user, source.password)))
    return made


def csv_for(made) -> bytes:
    lines = ["EmailAddress,UserName,Password,TargetUserName,TargetPassword"]
    lines += [
        f"{t.user}@new.example,{s.user},{s.password},{t.user},{t.password}" for s, t, _ in made
    ]
    return ("\n".join(lines) + "\n").encode()


def run(service, name: str) -> None:
    build_scheduler(service, batch=name, poll=0.1).run(threading.Event(), until_idle=True)


def api_mailbox(service, batch: str, address: str) -> dict:
    auth = AuthStore.open_sqlite(service.state_path, cost=FAST)
    auth.set_admin_password("correct horse battery")
    token = auth.create_token("tests")
    auth.close()
    with TestClient(create_app(service, SETTINGS), base_url=BASE) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        batch_json = client.get(f"/api/batches/{batch}").json()
        detail = client.get(f"/api/batches/{batch}/mailboxes/{address}").json()
    return {"batch": batch_json, "mailbox": detail}


def test_a_batch_moves_mail_calendars_and_contacts(
    service, dovecot_slash, dovecot_dot, radicale, xandikos, make_user
):
    made = mailboxes(dovecot_slash, dovecot_dot, radicale, xandikos, make_user, 2)
    service.create_batch("whole", "old", "new", csv_for(made), BatchOptions())
    service.start("whole")
    run(service, "whole")

    status = service.status("whole")
    assert status.state == "synced", [m.record.reason for m in status.mailboxes]
    for (source, target, items), view in zip(made, status.mailboxes, strict=True):
        m = view.record
        assert m.copied > 0  # the mail
        assert (m.collections, m.items_copied, m.items_failed, m.item_conflicts) == (2, items, 0, 0)
        uids = target_uids(xandikos, target.user, target.password)
        assert len(uids) == items == len(set(uids))  # every item arrived, once
        assert Migration(source, target, service.state_path).cli("verify").exit_code == 0

    report = service.report_json("whole")
    row = report["mailboxes"][0]
    assert (row["collections"], row["items_copied"], row["items_failed"]) == (2, made[0][2], 0)
    columns = next(csv.DictReader(io.StringIO(service.report_csv("whole"))))
    assert (columns["collections"], columns["items_copied"]) == ("2", str(made[0][2]))
    seen = api_mailbox(service, "whole", status.mailboxes[0].record.email)
    assert seen["mailbox"]["items_copied"] == made[0][2]
    assert seen["mailbox"]["collections"] == 2
    assert seen["batch"]["items_copied"] == sum(items for _, _, items in made)
    run_summary = json.loads(service.store.runs("whole")[-1]["summary"])
    assert run_summary["dav"]["items_copied"] in {items for _, _, items in made}

    # a re-run copies no item (and no message), and the counters stay
    assert service.sync("whole") == 2
    run(service, "whole")
    again = service.status("whole")
    assert again.state == "synced"
    runs = service.store.runs("whole")[-2:]
    for one in runs:
        summary = json.loads(one["summary"])
        assert (summary["messages_copied"], summary["dav"]["items_copied"]) == (0, 0)
        assert summary["dav"]["items_skipped_existing"] + summary["dav"]["items_unchanged"] > 0
    for (_, target, items), view in zip(made, again.mailboxes, strict=True):
        assert view.record.items_copied == items
        assert len(target_uids(xandikos, target.user, target.password)) == items


def test_a_wrong_dav_login_fails_that_part_and_keeps_the_mail(
    service, dovecot_slash, dovecot_dot, radicale, xandikos, make_user
):
    made = mailboxes(dovecot_slash, dovecot_dot, radicale, xandikos, make_user, 1)
    ((source, target, _),) = made
    xandikos.add_user(target.user, "another-password")  # DAV refuses the IMAP password now
    service.create_batch("half", "old", "new", csv_for(made), BatchOptions())
    service.start("half")
    run(service, "half")
    (view,) = service.status("half").mailboxes
    assert view.state == "failed"
    assert view.record.reason.startswith("calendars and contacts: target DAV"), view.record.reason
    assert view.record.copied > 0  # the mail pass's result stays
    assert view.record.collections is None
    assert Migration(source, target, service.state_path).cli("verify").exit_code == 0
