"""Folders that go wrong: a target folder that cannot be created, a source name outside modified UTF-7."""

from __future__ import annotations

import datetime as dt

import pytest

from mailferry.sandbox.proxy import Proxy
from tests.integration.conftest_helpers import Account, Migration

pytestmark = pytest.mark.integration

WHEN = dt.datetime(2020, 3, 1, 9, 0, tzinfo=dt.UTC)
TOO_LONG = "L" * 300  # Dovecot: NO [CANNOT] Mailbox name too long


def test_messages_of_an_uncreatable_folder_are_failed_and_reported_once(
    dovecot_slash, dovecot_dot, make_user, tmp_path
):
    m = Migration(
        Account(dovecot_slash, *make_user(dovecot_slash)),
        Account(dovecot_dot, *make_user(dovecot_dot)),
        tmp_path / "state.sqlite3",
    )
    client = m.source.client()
    try:
        client.append("INBOX", b"Subject: in\r\n\r\nin\r\n", [], WHEN)
        client.create_folder("Work")
        client.create_folder("Work/Sub")
        for i in range(3):
            flags = [b"\\Deleted"] if i == 0 else []
            client.append("Work", f"Subject: w{i}\r\n\r\nw\r\n".encode(), flags, WHEN)
        for i in range(2):
            client.append("Work/Sub", f"Subject: s{i}\r\n\r\ns\r\n".encode(), [], WHEN)
    finally:
        client.logout()

    code, summary = m.sync_json("--map", f"Work={TOO_LONG}")
    assert code == 1, summary
    assert summary["messages_copied"] == 1
    assert summary["messages_failed"] == 4
    assert summary["messages_skipped_deleted"] == 1
    by_folder = {f["folder"]: f["reason"] for f in summary["failures"]}
    assert len(summary["failures"]) == len(by_folder) == 2  # once each, under the source name
    assert set(by_folder) == {"Work", "Work/Sub"}
    assert "could not be created" in by_folder["Work"]
    assert by_folder["Work"].endswith(": 2 messages not copied")
    assert by_folder["Work/Sub"].endswith(": 2 messages not copied")
    total = (
        summary["messages_copied"]
        + summary["messages_failed"]
        + summary["messages_skipped_deleted"]
        + summary["messages_remaining"]
    )
    assert total == 6


def test_a_raw_8bit_folder_name_is_listed_warned_of_and_sent_back_as_it_came(
    dovecot_slash, dovecot_dot, make_user, tmp_path
):
    """Dovecot never lists a raw name, so the proxy rewrites its LIST answer: "Plain" becomes the
    Latin-1 bytes of "Gelöscht". Dovecot then refuses those bytes in STATUS ("not valid mUTF-7"),
    which shows they went back byte for byte (their modified UTF-7 would be "no such mailbox")."""
    source = Account(dovecot_slash, *make_user(dovecot_slash))
    client = source.client()
    try:
        client.append("INBOX", b"Subject: in\r\n\r\nin\r\n", [], WHEN)
        client.create_folder("Plain")
    finally:
        client.logout()
    with Proxy("127.0.0.1", dovecot_slash.port) as proxy:
        source.via_port = proxy.port
        m = Migration(
            source, Account(dovecot_dot, *make_user(dovecot_dot)), tmp_path / "state.sqlite3"
        )
        proxy.replace_next(rb'"/" "?Plain"?$', b'"/" "Gel\xf6scht"')
        code, summary = m.sync_json()
    assert code == 1, summary
    assert summary["messages_copied"] == 1  # the rest of the run went on
    [warning] = summary["warnings"]
    assert "'Gelöscht' is not named in modified UTF-7" in warning
    assert "b'Gel\\xf6scht'" in warning
    [failure] = summary["failures"]
    assert failure["folder"] == "Gelöscht"
    assert "not valid mUTF-7" in failure["reason"]
