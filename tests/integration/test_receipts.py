"""--neutralise-read-receipts against real Dovecot servers: request headers renamed, the length kept,
and re-runs (even without the state database) still recognise every copy."""

from __future__ import annotations

import pytest

from tests.integration.conftest_helpers import Account, Migration

pytestmark = pytest.mark.integration

ASKS = (
    b"Message-ID: <dnt.1@receipts.test>\r\nFrom: a@example.org\r\n"
    b"Disposition-Notification-To: <a@example.org>\r\nSubject: please confirm\r\n\r\n"
    b"Disposition-Notification-To: this line is body text\r\n"
)
NO_ID = (
    b"From: b@example.org\r\nReturn-Receipt-To: b@example.org\r\nSubject: old style\r\n\r\nhi\r\n"
)
PLAIN = b"Message-ID: <plain.1@receipts.test>\r\nSubject: nothing asked\r\n\r\nhello\r\n"


@pytest.fixture
def receipts(dovecot_slash, dovecot_dot, make_user, tmp_path):
    source = Account(dovecot_slash, *make_user(dovecot_slash))
    target = Account(dovecot_dot, *make_user(dovecot_dot))
    client = source.client()
    try:
        for body in (ASKS, NO_ID, PLAIN):
            client.append("INBOX", body, [b"\\Seen"], None)
    finally:
        client.logout()
    return Migration(source, target, tmp_path / "state.sqlite3")


def target_bodies(m: Migration) -> list[bytes]:
    client = m.target.client()
    try:
        client.select_folder("INBOX", readonly=True)
        rows = client.fetch(client.search("ALL"), ["BODY.PEEK[]"])
        return sorted(row[b"BODY[]"] for row in rows.values())
    finally:
        client.logout()


def test_receipt_requests_are_renamed_and_reruns_copy_nothing(receipts):
    m = receipts
    code, summary = m.sync_json("--neutralise-read-receipts")
    assert code == 0, summary
    assert summary["messages_copied"] == 3
    bodies = target_bodies(m)
    expected = sorted(
        [
            ASKS.replace(b"Disposition-Notification-To: <a", b"X-Orig-Disposition-Notif-To: <a", 1),
            NO_ID.replace(b"Return-Receipt-To:", b"X-Orig-Receipt-To:"),
            PLAIN,
        ]
    )
    assert bodies == expected
    assert sorted(map(len, bodies)) == sorted(map(len, (ASKS, NO_ID, PLAIN)))
    assert m.cli("verify", "--neutralise-read-receipts").exit_code == 0
    assert m.cli("verify").exit_code == 1  # the bytes do differ from the source's: said so
    # Again, then with the state database lost: every copy is recognised, nothing doubled.
    code, again = m.sync_json("--neutralise-read-receipts")
    assert (code, again["messages_copied"]) == (0, 0)
    m.state.unlink()
    code, fresh = m.sync_json("--neutralise-read-receipts")
    assert (code, fresh["messages_copied"], fresh["messages_skipped_existing"]) == (0, 0, 3)
    assert target_bodies(m) == expected
