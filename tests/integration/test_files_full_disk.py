"""A Maildir, mbox or Dovecot target on a disk that fills up: the run stops as for a full mailbox (no
message blamed, what is left counted as remaining), no message is left cut off on the disk, and
after more space a re-run copies the rest, nothing twice. The disk is a real tmpfs mounted small
(the tests run as root in CI; skipped where mounting is not allowed)."""

from __future__ import annotations

import grp
import json
import mailbox
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from imapclient import IMAPClient

from mailferry.cli.app import main
from mailferry.sandbox.dovecot import MAIL_GROUP, MAIL_USER, DovecotServer
from mailferry.service.resilience import SERVER_FAILING
from tests.integration.smalldisk import Disk, mount_small_disk

pytestmark = pytest.mark.integration

MESSAGES = 40
BODY = 6_000  # bytes a message: 40 of them do not fit in the small disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Disk]:
    disk = mount_small_disk(tmp_path / "disk", "160k")
    try:
        yield disk
    finally:
        disk.unmount()


def _source(tmp_path: Path, count: int = MESSAGES) -> dict[str, bytes]:
    """A Maildir of ``count`` messages; their bodies by Message-ID."""
    box = mailbox.Maildir(tmp_path / "src", create=True)
    bodies = {}
    for n in range(count):
        mid = f"<full{n}@example.org>"
        body = (f"line {n} ".encode() * BODY)[:BODY]
        box.add(f"Message-ID: {mid}\nSubject: {n}\n\n".encode() + body + b"\n")
        bodies[mid] = body
    box.close()
    return bodies


def _sync(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["sync", "--json", *args], catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout)


def _whole(messages: list[mailbox.Message], bodies: dict[str, bytes]) -> list[str]:
    """The Message-IDs of the target's messages, each checked whole against its source."""
    found = []
    for message in messages:
        mid = message["Message-ID"]
        payload = message.get_payload(decode=True)
        assert isinstance(payload, bytes)
        assert payload.rstrip(b"\r\n") == bodies[mid], f"{mid} is not whole on the target"
        found.append(mid)
    return found


@pytest.mark.parametrize("kind", ["maildir", "mbox"])
def test_a_full_disk_stops_the_run_and_more_space_finishes_it(kind, small_disk, tmp_path):
    bodies = _source(tmp_path)
    out = small_disk.path / "out"
    urls = (f"maildir://{tmp_path / 'src'}", f"{kind}://{out}")
    state = ("--state", str(tmp_path / "state.sqlite3"), "--batch-size", "4")

    code, first = _sync(*state, *urls)
    assert code == 1, first
    assert "disk is full" in (first["stopped"] or ""), first
    assert first["messages_failed"] == 0, first["failures"]  # no message blamed for the disk
    assert 0 < first["messages_copied"] < MESSAGES
    assert first["messages_copied"] + first["messages_remaining"] == MESSAGES
    landed = _whole(_messages(kind, out), bodies)  # nothing cut off, nothing doubled
    assert len(landed) == len(set(landed)) >= first["messages_copied"]
    if kind == "maildir":
        assert not list((out / "tmp").iterdir())  # the burst taken back

    small_disk.resize("4m")
    code, again = _sync(*state, *urls)
    assert code == 0, again
    assert first["messages_copied"] + again["messages_copied"] == MESSAGES
    assert sorted(_whole(_messages(kind, out), bodies)) == sorted(bodies)
    verify = CliRunner().invoke(main, ["verify", *state[:2], *urls], catch_exceptions=False)
    assert verify.exit_code == 0, verify.output


def _messages(kind: str, out: Path) -> list[mailbox.Message]:
    box: mailbox.Mailbox = (
        mailbox.Maildir(out, create=False)
        if kind == "maildir"
        else mailbox.mbox(out / "INBOX.mbox", create=False)
    )
    try:
        return list(box)
    finally:
        box.close()


@pytest.fixture
def dovecot_on_small_disk(tmp_path: Path) -> Iterator[tuple[DovecotServer, Disk]]:
    """A Dovecot whose users' homes are on a small tmpfs."""
    with DovecotServer(tmp_path / "dovecot", delimiter=".") as server:
        owner = f"uid={pwd.getpwnam(MAIL_USER).pw_uid},gid={grp.getgrnam(MAIL_GROUP).gr_gid}"
        disk = mount_small_disk(server.data_dir / "home", "200k", f"mode=0755,{owner}")
        try:
            yield server, disk
        finally:
            disk.unmount()


def test_a_dovecot_whose_disk_is_full_stops_the_run(dovecot_on_small_disk, tmp_path):
    """Dovecot answers every APPEND "[SERVERBUG] Internal error occurred" once its disk is full:
    the run stops after a few such refusals in a row instead of failing every message left."""
    server, disk = dovecot_on_small_disk
    server.add_user("full", "pw")
    bodies = _source(tmp_path, 2 * MESSAGES)
    urls = (f"maildir://{tmp_path / 'src'}", f"imap://full@127.0.0.1:{server.port}")
    args = ("--state", str(tmp_path / "state.sqlite3"), *urls)
    env = {"MAILFERRY_TARGET_PASSWORD": "pw"}
    sync = ["sync", "--json", "--batch-size", "4", *args]
    run = CliRunner().invoke(main, sync, env=env, catch_exceptions=False)
    first = json.loads(run.stdout)
    assert run.exit_code == 1, first
    assert "in a row by a fault of its own" in (first["stopped"] or ""), first
    # The row's refusals, and those of the burst in flight behind the one that ended it (4 each).
    assert SERVER_FAILING <= first["messages_failed"] <= SERVER_FAILING + 2 * 4
    assert first["messages_remaining"] > 0
    assert all("[SERVERBUG]" in f["reason"] for f in first["failures"] if f["folder"] != "*")
    counted = first["messages_copied"] + first["messages_failed"] + first["messages_remaining"]
    assert counted == len(bodies)

    disk.resize("8m")
    run = CliRunner().invoke(main, sync, env=env, catch_exceptions=False)
    again = json.loads(run.stdout)
    assert run.exit_code == 0, again
    assert first["messages_copied"] + again["messages_copied"] == len(bodies)
    verify = CliRunner().invoke(main, ["verify", *args], env=env, catch_exceptions=False)
    assert verify.exit_code == 0, verify.output
    with IMAPClient("127.0.0.1", port=server.port, ssl=False) as client:
        client.login("full", "pw")
        client.select_folder("INBOX", readonly=True)
        ids = [
            data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].split(b":", 1)[1].strip().decode()
            for data in client.fetch(
                client.search(), ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]
            ).values()
        ]
    assert sorted(ids) == sorted(bodies)  # each message once
