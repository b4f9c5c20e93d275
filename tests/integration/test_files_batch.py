"""A batch from files: three Maildir trees, one per mailbox, mapped by the CSV's users through an
endpoint ``maildir:///ROOT/{user}``, into real Dovecot accounts; every message arrives once, with
its flags and folders, a second pass copies nothing, and ``verify`` is clean for each pair."""

from __future__ import annotations

import mailbox
import threading

import pytest
from click.testing import CliRunner

from mailferry.bootstrap import open_service
from mailferry.bootstrap import scheduler as build_scheduler
from mailferry.cli.app import main
from mailferry.domain.model import Security
from mailferry.service.batches import BatchOptions, EndpointSpec
from tests.integration.conftest_helpers import Account

pytestmark = pytest.mark.integration


def make_tree(root, user: str, count: int) -> None:
    """A Maildir++ tree with ``count`` messages in INBOX (every other one read) and one in
    ``Archive.2020``, made by Python's ``mailbox``."""
    root.mkdir(exist_ok=True)
    box = mailbox.Maildir(root / user, create=True)
    for n in range(count):
        msg = mailbox.MaildirMessage(
            f"Message-ID: <{user}-{n}@files.example>\nSubject: {user} {n}\n\nbody {n}\n"
        )
        msg.set_subdir("cur")
        msg.set_flags("S" if n % 2 == 0 else "")
        box.add(msg)
    archive = box.add_folder("Archive.2020")
    archive.add(mailbox.MaildirMessage(f"Message-ID: <{user}-a@files.example>\n\nold\n"))


def run(service) -> None:
    build_scheduler(service, batch="files", poll=0.1).run(threading.Event(), until_idle=True)


def test_batch_of_three_maildir_trees_into_dovecot(tmp_path, dovecot_dot, make_user, monkeypatch):
    monkeypatch.delenv("MAILFERRY_KEY", raising=False)
    service = open_service(tmp_path / "state.sqlite3")
    try:
        service.add_endpoint(EndpointSpec("old", "", files=f"maildir://{tmp_path}/vmail/{{user}}"))
        service.add_endpoint(EndpointSpec("new", "127.0.0.1", dovecot_dot.port, Security.NONE))
        targets = [Account(dovecot_dot, *make_user(dovecot_dot)) for _ in range(3)]
        rows = ["EmailAddress,UserName,Password,TargetUserName,TargetPassword"]
        for n, target in enumerate(targets):
            make_tree(tmp_path / "vmail", f"user{n}", 3 + n)
            rows.append(f"{target.user}@new.example,user{n},,{target.user},{target.password}")
        service.create_batch(
            "files", "old", "new", ("\n".join(rows) + "\n").encode(), BatchOptions()
        )
        service.start("files")
        run(service)
        status = service.status("files")
        assert status.state == "synced", [m.record.reason for m in status.mailboxes]
        copied = {m.record.source_user: m.record.copied for m in status.mailboxes}
        assert copied == {"user0": 4, "user1": 5, "user2": 6}

        client = targets[2].client()
        try:
            client.select_folder("INBOX", readonly=True)
            uids = client.search("ALL")
            flags = client.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
            subjects = sorted(
                (v[b"BODY[HEADER.FIELDS (SUBJECT)]"].strip(), b"\\Seen" in v[b"FLAGS"])
                for v in flags.values()
            )
            assert subjects[0] == (b"Subject: user2 0", True)
            assert subjects[1] == (b"Subject: user2 1", False)
            names = {name for _, _, name in client.list_folders()}
            assert "Archive.2020" in names
        finally:
            client.logout()

        service.sync("files")  # a second pass: nothing new in the files, nothing copied
        run(service)
        again = {m.record.source_user: m.record.copied for m in service.status("files").mailboxes}
        assert again == copied  # the counts are totals over passes: unchanged

        for n, target in enumerate(targets):
            argv = [
                "verify", f"maildir://{tmp_path}/vmail/user{n}", target.url,
                "--state", str(service.state_path),
            ]  # fmt: skip
            env = {"MAILFERRY_TARGET_PASSWORD": target.password}
            result = CliRunner().invoke(main, argv, env=env, catch_exceptions=False)
            assert result.exit_code == 0, result.output
    finally:
        service.close()
