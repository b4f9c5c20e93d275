"""A Maildir or mbox target on a disk that fills up: the run stops as for a full mailbox (no
message blamed, what is left counted as remaining), no message is left cut off on the disk, and
after more space a re-run copies the rest, nothing twice. The disk is a real tmpfs mounted small
(the tests run as root in CI; skipped where mounting is not allowed)."""

from __future__ import annotations

import json
import mailbox
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailferry.cli import main

pytestmark = pytest.mark.integration

MESSAGES = 40
BODY = 6_000  # bytes a message: 40 of them do not fit in the small disk


class Disk:
    def __init__(self, path: Path) -> None:
        self.path = path

    def resize(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Disk]:
    path = tmp_path / "disk"
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield Disk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _source(tmp_path: Path) -> dict[str, bytes]:
    """A Maildir of MESSAGES messages; their bodies by Message-ID."""
    box = mailbox.Maildir(tmp_path / "src", create=True)
    bodies = {}
    for n in range(MESSAGES):
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
