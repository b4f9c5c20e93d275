"""Role folders merge by name as well as by flag, against real Dovecot servers ("/" -> ".")."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from tests.integration.conftest_helpers import Account, Migration
from tests.integration.mailcheck import snapshot

pytestmark = pytest.mark.integration

WHEN = dt.datetime(2021, 5, 4, 10, 0, tzinfo=dt.UTC)
TWIN = b"Subject: same in both\r\nMessage-ID: <twin@roles.test>\r\n\r\nsent twice\r\n"


def _fill(account: Account) -> None:
    """A flagged "Sent Messages" (the fixture's \\Sent) and a "Sent Items" sharing one message."""
    client = account.client()
    try:
        for name, count in (("Sent Messages", 3), ("Sent Items", 2)):
            client.create_folder(name)
            for i in range(count):
                body = (
                    f"Subject: {name} {i}\r\nMessage-ID: <{i}.{len(name)}@roles.test>\r\n\r\nx\r\n"
                )
                client.append(name, body.encode(), [b"\\Seen"], WHEN)
            client.append(name, TWIN, [], WHEN)
    finally:
        client.logout()


def _target_view(m: Migration) -> dict[str, Counter]:
    client = m.target.client()
    try:
        return snapshot(client)
    finally:
        client.logout()


def test_a_named_sent_folder_merges_into_the_targets_sent_and_survives_lost_state(
    dovecot_slash, dovecot_dot, make_user, tmp_path
):
    m = Migration(
        Account(dovecot_slash, *make_user(dovecot_slash)),
        Account(dovecot_dot, *make_user(dovecot_dot)),
        tmp_path / "state.sqlite3",
    )
    _fill(m.source)

    code, first = m.sync_json()
    assert code == 0, first
    assert first["messages_copied"] == 7
    assert {(r["source"], r["target"]) for r in first["renames"]} == {("Sent Items", "Sent")}
    after = _target_view(m)
    assert "Sent Items" not in after and "Sent Messages" not in after
    assert sum(after["Sent"].values()) == 7  # both folders, the shared message twice
    assert m.cli("verify").exit_code == 0

    m.state.unlink()  # lost state: each folder is matched again, neither takes the other's copies
    code, again = m.sync_json()
    assert code == 0, again
    assert again["messages_copied"] == 0
    assert again["messages_skipped_existing"] == 7
    assert _target_view(m) == after
    verify = m.cli("verify")
    assert verify.exit_code == 0, verify.stdout
    assert "Sent Items + Sent Messages -> Sent: 7 source, 7 target" in verify.stdout
