"""Endpoints of mail in files (``{user}`` templates): the template and user rules, a batch's
CSV against them, the CLI, and the web API that sets them only under ``serve --files-root``."""

from __future__ import annotations

import mailbox
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from mailferry.bootstrap import open_service
from mailferry.cli.app import main
from mailferry.config import FileStore
from mailferry.domain.errors import ConfigError
from mailferry.domain.model import Security
from mailferry.service.batches import BatchOptions, EndpointSpec
from mailferry.service.fileroutes import (
    expand_files,
    files_problems,
    probe_files,
    under_roots,
    user_problem,
)
from mailferry.web import WebSettings, create_app
from mailferry.web.credentials import AuthStore
from tests.unit.web_support import BASE, FAST

CSV = b"EmailAddress,UserName,Password,TargetPassword\nann@new.example,ann,,pw\n"


@pytest.fixture
def service(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILFERRY_KEY", raising=False)
    svc = open_service(tmp_path / "state.sqlite3")
    yield svc
    svc.close()


def test_template_rules():
    assert files_problems("maildir:///var/vmail/{user}", "--files") == []
    assert files_problems("pst:///shares/{user}/archive.pst", "--files") == []
    assert "expected maildir://" in files_problems("imap://host/{user}", "--files")[0]
    assert "ABSOLUTE" in files_problems("mbox://relative/{user}", "--files")[0]
    assert "no .." in files_problems("maildir:///var/../etc/{user}", "--files")[0]
    assert "only placeholder" in files_problems("maildir:///v/{login}", "--files")[0]


@pytest.mark.parametrize("user", ["", "..", ".hidden", "a/b", "a\\b", "a\0b"])
def test_a_user_that_is_no_path_segment_is_refused(user):
    assert user_problem(user) is not None
    with pytest.raises(ConfigError):
        expand_files("maildir:///v/{user}", user)


def test_expand_puts_the_user_in_every_placeholder():
    store = expand_files("pst:///shares/{user}/{user}.pst", "ann@old.example")
    assert store == FileStore("pst", Path("/shares/ann@old.example/ann@old.example.pst"))
    with pytest.raises(ConfigError, match="source only"):
        expand_files("pst:///shares/{user}.pst", "ann", side="target")


def test_under_roots():
    roots = [Path("/srv/mail")]
    assert under_roots("maildir:///srv/mail/{user}", roots)
    assert under_roots("pst:///srv/mail/pst/{user}.pst", roots)
    assert under_roots("mbox:///srv/mail/x-{user}", roots)  # the user ends the last segment
    assert not under_roots("mbox:///srv/mailx/{user}", roots)
    assert not under_roots("mbox:///etc/cron.d/{user}", roots)
    assert not under_roots("maildir:///srv/{user}", roots)
    assert not under_roots("maildir:///srv/mail/{user}", [])


def test_file_endpoint_rules_in_the_service(service):
    record = service.add_endpoint(EndpointSpec("old", "", files="maildir:///v/{user}"))
    assert (record.files, record.host, record.port) == ("maildir:///v/{user}", "", 0)
    with pytest.raises(ConfigError) as caught:
        service.add_endpoint(
            EndpointSpec("mixed", "mail.example", 993, files="maildir:///v/{user}", dav="auto")
        )
    assert caught.value.problems == [
        "--files names files, not a server: drop --host, --port, --dav"
    ]


def test_batch_csv_against_file_endpoints(service):
    service.add_endpoint(EndpointSpec("old", "", files="maildir:///v/{user}"))
    service.add_endpoint(EndpointSpec("pst", "", files="pst:///p/{user}.pst"))
    service.add_endpoint(EndpointSpec("shared", "", files="maildir:///backup"))
    service.add_endpoint(EndpointSpec("new", "127.0.0.1", 1, Security.NONE))
    status = service.create_batch("b", "old", "new", CSV, BatchOptions())  # no source password
    assert [m.record.source_user for m in status.mailboxes] == ["ann"]
    bad = b"EmailAddress,UserName,Password,TargetPassword\nx@new.example,../root,,pw\n"
    with pytest.raises(ConfigError, match=r"line 2: user '../root' cannot be part of a file path"):
        service.create_batch("b2", "old", "new", bad, BatchOptions())
    with pytest.raises(ConfigError) as caught:
        service.create_batch("b3", "new", "pst", CSV, BatchOptions())
    assert "pst:// is a source only" in caught.value.problems[0]
    with pytest.raises(ConfigError, match=r"has no \{user\}"):
        service.create_batch("b4", "new", "shared", CSV, BatchOptions())
    assert service.folder_progress("b", "ann@new.example") == []


def test_cli_add_list_and_test(tmp_path):
    state = ["--state", str(tmp_path / "s.sqlite3")]
    runner = CliRunner()
    template = f"maildir://{tmp_path}/vmail/{{user}}"
    result = runner.invoke(main, ["endpoint", "add", "old", "--files", template, *state])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"endpoint old: files at {template}"
    listed = runner.invoke(main, ["endpoint", "show", "old", *state])
    assert f"files: {template}" in listed.output
    assert "login: files" in listed.output
    (tmp_path / "vmail").mkdir()
    box = mailbox.Maildir(tmp_path / "vmail" / "ann", create=True)
    box.add(b"Subject: hi\n\nbody\n")
    box.add_folder("Sub").add(b"Subject: there\n\nbody\n")
    tested = runner.invoke(main, ["endpoint", "test", "old", "--user", "ann", *state])
    assert tested.exit_code == 0, tested.output
    assert tested.output.strip().endswith("readable, 2 folders, 2 messages")
    missing = runner.invoke(main, ["endpoint", "test", "old", *state])
    assert missing.exit_code != 0
    assert "test it with --user USER" in missing.output
    assert probe_files(template, "ann").startswith(f"maildir://{tmp_path}/vmail/ann:")


def client_for(service, roots):
    auth = AuthStore.open_sqlite(service.state_path, cost=FAST)
    auth.set_admin_password("correct horse battery")
    token = auth.create_token(f"tests{len(roots)}")
    auth.close()
    settings = WebSettings(password_cost=FAST, files_roots=roots)
    client = TestClient(create_app(service, settings), base_url=BASE)
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def test_web_api_sets_files_only_under_the_roots(service, tmp_path):
    with client_for(service, ()) as client:
        r = client.post("/api/endpoints", json={"name": "f", "files": "maildir:///v/{user}"})
        assert r.status_code == 400
        assert "set only on the command line" in r.json()["problems"][0]
    root = tmp_path / "mail"
    with client_for(service, (root,)) as client:
        outside = {"name": "f", "files": "mbox:///etc/cron.d/{user}"}
        r = client.post("/api/endpoints", json=outside)
        assert r.status_code == 400
        assert r.json()["problems"] == [f"files: not under {root} (mailferry serve --files-root)"]
        r = client.post("/api/endpoints", json={"name": "f", "files": f"maildir://{root}/{{user}}"})
        assert r.status_code == 201, r.text
        assert r.json()["files"] == f"maildir://{root}/{{user}}"
        assert r.json()["login_kind"] == "files"
        r = client.post("/api/endpoints/f/test", json={"user": "ann"})
        assert r.status_code == 400
        assert "mailferry endpoint test" in r.json()["error"]
