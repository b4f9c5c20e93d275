"""Batches of Microsoft 365 mailboxes through the FAKE Graph (sandbox/graph) and the FAKE identity
provider (tests/integration/fake_idp.py), with the real commands: `endpoint add` with a Graph URL,
`batch create` from a CSV, `batch start` and `batch sync` in the foreground, `batch status`,
`batch report`, and the REST API.

- tenant to tenant, 3 mailboxes: every workload through the mailbox import/export API, per
  workload counters in status, reports and the API; a re-run copies nothing; the one mailbox an
  application access policy keeps the app out of fails alone, with its reason;
- CalDAV (Radicale) to Microsoft 365: calendars and contacts through Graph's resources, no mail.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailferry.bootstrap import open_service
from mailferry.cli.app import main
from mailferry.sandbox.graph import mailboxfill
from tests.e2e.test_graph_cli import (  # noqa: F401 - clouds is a fixture
    SECRET,
    SOURCE_APP,
    TARGET_APP,
    clouds,
    seed_radicale,
)
from tests.integration.test_batches_dav import api_mailbox

pytestmark = pytest.mark.integration

USERS = ("alice", "bob", "carol")
WORKLOADS = ("mail", "calendar", "contacts", "tasks", "notes")


def cli(env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(argv), env=env)
    return result.exit_code, result.stdout, result.stderr


def environment(tmp_path: Path, idp) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("MAILFERRY_")},
        "MAILFERRY_STATE": str(tmp_path / "state.sqlite3"),
        "REQUESTS_CA_BUNDLE": str(idp.ca_file),
    }


def add_m365_endpoint(env, name: str, app: str, idp, graph, tmp_path: Path) -> None:
    secret = tmp_path / f"{name}.secret"
    secret.write_text(SECRET + "\n")
    code, _out, err = cli(
        env, "endpoint", "add", name, "--host", "outlook.office365.com",
        "--m365-tenant", idp.tenant, "--m365-client-id", app,
        "--m365-client-secret-file", str(secret),
        "--m365-authority", idp.authority.rsplit("/", 1)[0],
        "--m365-graph-url", graph.url, "--ca-file", str(graph.ca_file),
    )  # fmt: skip
    assert code == 0, err


def write_csv(tmp_path: Path, rows: list[tuple[str, str]]) -> Path:
    path = tmp_path / "batch.csv"
    lines = ["EmailAddress,UserName,Password"] + [f"{target},{source}," for source, target in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fake_graph_batch_tenant_to_tenant_reports_every_workload(clouds, tmp_path):  # noqa: F811
    """FAKE Graph: 3 mailboxes from one tenant to another in one batch. Two move every workload
    through export/import (nobody invited); the third is outside the target app's access policy
    and fails alone with that reason. Status, the JSON and CSV reports and the API show each
    workload's counters; `batch sync` copies nothing more."""
    idp, graph = clouds
    sources, targets = {}, {}
    for user in USERS:
        sources[user] = graph.store.add_mailbox(f"{user}@contoso.com")
        targets[user] = graph.store.add_mailbox(f"{user}@fabrikam.com")
        mailboxfill.fill_mailbox(graph.store, sources[user])
    graph.denied[TARGET_APP] = {"carol@fabrikam.com"}
    env = environment(tmp_path, idp)
    add_m365_endpoint(env, "contoso", SOURCE_APP, idp, graph, tmp_path)
    add_m365_endpoint(env, "fabrikam", TARGET_APP, idp, graph, tmp_path)
    rows = [(f"{u}@contoso.com", f"{u}@fabrikam.com") for u in USERS]
    code, out, err = cli(
        env, "batch", "create", "tenants", "--source", "contoso", "--target", "fabrikam",
        "--csv", str(write_csv(tmp_path, rows)),
    )  # fmt: skip
    assert code == 0, err
    assert "Microsoft 365 on both ends" in err

    code, out, err = cli(env, "batch", "start", "tenants")
    assert code == 1, out + err  # carol failed
    for user in ("alice", "bob"):
        for well_known in ("inbox", "calendar", "contacts", "tasks", "notes"):
            assert mailboxfill.folder_contents(targets[user].well_known(well_known)) == (
                mailboxfill.folder_contents(sources[user].well_known(well_known))
            ), (user, well_known)
        assert targets[user].invitations == 0
    assert mailboxfill.folder_contents(targets["carol"].well_known("inbox")) == []

    code, out, err = cli(env, "batch", "status", "tenants")
    lines = out.splitlines()
    carol = next(line for line in lines if line.startswith("carol@fabrikam.com"))
    assert "failed" in carol
    assert "Microsoft 365 mailbox" in carol
    assert "access policy" in carol.lower() or "403" in carol, carol
    assert "  mail, calendar, contacts, tasks, notes: not run (the mailbox's reason)" in lines
    assert "  mail (graph): 2 seen, 2 copied" in out, out
    assert "  notes (graph): 1 seen, 1 copied" in out, out

    report = json.loads(cli(env, "batch", "report", "tenants", "--json")[1])
    by_address = {m["mailbox"]: m for m in report["mailboxes"]}
    alice = by_address["alice@fabrikam.com"]
    assert alice["state"] == "synced"
    assert {w: s["route"] for w, s in alice["workloads"].items()} == dict.fromkeys(
        WORKLOADS, "graph"
    )
    copied = {w: s["copied"] for w, s in alice["workloads"].items()}
    assert copied == {"mail": 2, "calendar": 1, "contacts": 1, "tasks": 1, "notes": 1}
    assert by_address["carol@fabrikam.com"]["state"] == "failed"
    table = {
        r["mailbox"]: r
        for r in csv.DictReader(io.StringIO(cli(env, "batch", "report", "tenants")[1]))
    }
    assert (table["bob@fabrikam.com"]["mail_copied"], table["bob@fabrikam.com"]["notes_route"]) == (
        "2",
        "graph",
    )

    service = open_service(tmp_path / "state.sqlite3")
    try:
        seen = api_mailbox(service, "tenants", "alice@fabrikam.com")
        assert seen["mailbox"]["workloads"]["calendar"]["copied"] == 1
        assert seen["batch"]["workloads"] is None  # the batch's option: all that may move
        run = json.loads(service.store.runs("tenants")[-1]["summary"])
        assert set(run["workloads"]) == set(WORKLOADS)
        assert "graph" in run
    finally:
        service.close()

    graph.denied.clear()
    code, out, err = cli(env, "batch", "sync", "tenants")
    assert code == 0, out + err
    service = open_service(tmp_path / "state.sqlite3")
    try:
        runs = service.store.runs("tenants")[-3:]
        again = {r["email"]: json.loads(r["summary"])["workloads"] for r in runs}
        for user in ("alice", "bob"):
            sections = again[f"{user}@fabrikam.com"]
            assert sum(s["copied"] + s["updated"] for s in sections.values()) == 0, sections
        assert sum(s["copied"] for s in again["carol@fabrikam.com"].values()) == 6
        (alice_row,) = [
            v.record
            for v in service.status("tenants").mailboxes
            if v.record.email.startswith("alice")
        ]
        assert alice_row.workloads is not None
        assert alice_row.workloads["mail"]["copied_total"] == 2
    finally:
        service.close()
    for user in USERS:
        assert mailboxfill.folder_contents(targets[user].well_known("inbox")) == (
            mailboxfill.folder_contents(sources[user].well_known("inbox"))
        )
    assert SECRET not in out + err


def test_fake_graph_batch_from_radicale_to_microsoft_365(
    clouds,  # noqa: F811
    tmp_path,
    make_user,
    radicale,
    smtp_sink,
):
    """Radicale -> FAKE Graph as a batch: the source endpoint carries a DAV template, the target
    is Microsoft 365 through Graph; with --workloads calendar,contacts no IMAP session is opened,
    calendars and contacts go through Graph's resources (the meeting parked: nobody invited, no
    mail at the SMTP sink), and a re-run copies nothing."""
    idp, graph = clouds
    target = graph.store.add_mailbox("alice@fabrikam.com")
    user, password = make_user(radicale)
    seed_radicale(radicale.url(user), user, password, radicale)
    mailed = len(smtp_sink.messages)
    env = environment(tmp_path, idp)
    code, _out, err = cli(
        env, "endpoint", "add", "radicale", "--host", "127.0.0.1", "--port", "1",
        "--dav", f"http://127.0.0.1:{radicale.port}/{{user}}/",
    )  # fmt: skip
    assert code == 0, err
    add_m365_endpoint(env, "fabrikam", TARGET_APP, idp, graph, tmp_path)
    path = tmp_path / "dav.csv"
    path.write_text(f"EmailAddress,UserName,Password\nalice@fabrikam.com,{user},{password}\n")
    code, _out, err = cli(
        env, "batch", "create", "cal", "--source", "radicale", "--target", "fabrikam",
        "--csv", str(path), "--workloads", "calendar,contacts",
    )  # fmt: skip
    assert code == 0, err
    assert "between CalDAV/CardDAV and Microsoft 365" in err
    code, out, err = cli(env, "batch", "start", "cal")
    assert code == 0, out + err
    code, out, err = cli(env, "batch", "status", "cal")
    assert "  calendar (collections): 3 seen, 3 copied" in out, out
    assert "  contacts (collections): 2 seen, 2 copied" in out, out
    assert len(target.well_known("calendar").items) == 3
    assert target.invitations == 0
    assert len(smtp_sink.messages) == mailed
    code, out, err = cli(env, "batch", "sync", "cal")
    assert code == 0, out + err
    report = json.loads(cli(env, "batch", "report", "cal", "--json")[1])
    (row,) = report["mailboxes"]
    assert {w: s["copied"] for w, s in row["workloads"].items()} == {"calendar": 0, "contacts": 0}
    assert {w: s["copied_total"] for w, s in row["workloads"].items()} == {
        "calendar": 3,
        "contacts": 2,
    }
    assert password not in json.dumps(report)
