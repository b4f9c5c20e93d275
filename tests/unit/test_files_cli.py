"""``mailferry sync`` and ``verify`` with file URLs (no servers): parsing, a run, a re-run."""

from __future__ import annotations

import json
import mailbox

from click.testing import CliRunner

from mailferry.cli.app import main
from mailferry.config import FileStore, parse_location
from tests.fakes import write_takeout


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_file_urls_parse_to_file_stores(tmp_path):
    assert parse_location(f"maildir://{tmp_path}/x", side="target") == FileStore(
        "maildir", tmp_path / "x"
    )
    assert parse_location("MBOX:///a%20b/All%20mail.mbox") == FileStore(
        "mbox", tmp_path.__class__("/a b/All mail.mbox")
    )


def test_sync_mbox_to_maildir_then_verify_and_rerun(tmp_path):
    box = mailbox.mbox(tmp_path / "in.mbox")
    for n in range(3):
        box.add(f"Message-ID: <c{n}@x>\nSubject: {n}\n\n{n}\n".encode())
    box.close()
    state = str(tmp_path / "state.sqlite3")
    urls = (f"mbox://{tmp_path}/in.mbox", f"maildir://{tmp_path}/out")
    first = run("sync", "--json", "--state", state, *urls)
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["messages_copied"] == 3
    assert len(list((tmp_path / "out" / "cur").iterdir())) == 3
    assert run("verify", "--state", state, *urls).exit_code == 0
    again = run("sync", "--json", "--state", state, *urls)
    assert json.loads(again.output)["messages_copied"] == 0


def test_bad_file_urls_are_usage_errors(tmp_path):
    relative = run("sync", "maildir://relative/path", f"maildir://{tmp_path}/out")
    assert relative.exit_code == 2
    assert "expected maildir:///ABSOLUTE/PATH" in relative.output
    (tmp_path / "in").mkdir()
    eml_target = run("sync", f"maildir://{tmp_path}/in", f"eml://{tmp_path}/x")
    assert eml_target.exit_code == 2
    assert "source only" in eml_target.output
    missing = run("sync", f"maildir://{tmp_path}/nothing", f"maildir://{tmp_path}/out")
    assert missing.exit_code == 3
    assert "not a Maildir" in missing.output


def test_messages_dated_from_the_last_resort_are_noted_per_folder(tmp_path):
    mbox = tmp_path / "in.mbox"
    mbox.write_bytes(
        b"From alice@x Thu Mar  7 10:00:00 2019\nSubject: dated\n\none\n\n"
        b"From alice@x\nDate: Fri, 8 Mar 2019 10:00:00 +0000\nSubject: undated\n\ntwo\n\n"
        b"From -\nSubject: no date at all\n\nthree\n"
    )
    state = str(tmp_path / "state.sqlite3")
    urls = (f"mbox://{mbox}", f"maildir://{tmp_path}/out")
    first = run("sync", "--json", "--state", state, *urls)
    assert first.exit_code == 0, first.output
    reason = "dated from its Date: field or the file time (no date on its From line)"
    assert json.loads(first.stdout)["notes"] == [
        {"folder": "INBOX", "reason": reason, "messages": 2}
    ]
    again = run("sync", "--json", "--state", state, *urls)
    assert json.loads(again.stdout)["notes"] == []  # nothing copied, nothing to note
    eml = tmp_path / "eml"
    eml.mkdir()
    (eml / "a.eml").write_bytes(b"Subject: a\nDate: Fri, 8 Mar 2019 10:00:00 +0000\n\na\n")
    (eml / "b.eml").write_bytes(b"Subject: b\n\nb\n")
    text = run("sync", "--state", state, f"eml://{eml}", f"maildir://{tmp_path}/eml-out")
    assert text.exit_code == 0, text.output
    assert "note: 'INBOX': 1 messages dated by its file time (no usable Date: field)" in text.output


def test_a_takeout_mbox_given_on_the_command_line_copies_each_message_once(tmp_path):
    """The command sees a Google Takeout export (folders that are Gmail labels) and applies the
    Gmail profile's label policy: each message once, not once per label (9 copies here)."""
    write_takeout(tmp_path / "All mail Including Spam and Trash.mbox")
    state = str(tmp_path / "state.sqlite3")
    urls = (f"mbox://{tmp_path}/All%20mail%20Including%20Spam%20and%20Trash.mbox",)
    urls += (f"maildir://{tmp_path}/out",)
    first = run("sync", "--json", "--state", state, *urls)
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["messages_copied"] == 5  # All Mail adds the starred one
    copies = [p for p in (tmp_path / "out").rglob("*") if p.parent.name == "cur"]
    assert len(copies) == 5
