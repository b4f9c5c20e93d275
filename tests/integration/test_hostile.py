"""Hostile messages are copied byte-identical or reported with the server's reason; never lost silently."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.integration.conftest_helpers import Account, Migration
from tests.integration.mailcheck import snapshot

pytestmark = pytest.mark.integration

WHEN = dt.datetime(2016, 6, 6, 6, 6, 6, tzinfo=dt.UTC)
HOSTILE = {
    "nul": b"Subject: nul\r\n\r\nbefore\x00after\r\n",
    "long header": b"Subject: "
    + b"x" * 10_000
    + b"\r\nX-Long: "
    + b"y" * 20_000
    + b"\r\n\r\nbody\r\n",
    "bare CR": b"Subject: cr\r\n\r\nline1\rline2\r\rend\r\n",
    "invalid UTF-8": b"Subject: \xff\xfe bad \xc3\x28\r\nFrom: \xe9t\xe9 <a@b>\r\n\r\nbody \xff\r\n",
    "broken MIME": (
        b"Content-Type: multipart/mixed; boundary=zzz\r\nSubject: b\r\n\r\n--zzz\r\n"
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n"
    ),
    "no header": b"\r\njust a body\r\n",
    "bare LF": b"Subject: lf\n\nline1\nline2\n",
    "8-bit binary": b"Subject: bin\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    + bytes(range(1, 256))
    + b"\r\n",
}


def test_hostile_messages_arrive_identical_or_are_reported(
    dovecot_slash, dovecot_dot, make_user, tmp_path
):
    m = Migration(
        Account(dovecot_slash, *make_user(dovecot_slash)),
        Account(dovecot_dot, *make_user(dovecot_dot)),
        tmp_path / "state.sqlite3",
    )
    src = m.source.client()
    try:
        src.create_folder("Hostile")
        accepted = 0
        for body in HOSTILE.values():
            src.append("Hostile", body, [b"\\Seen"], WHEN)
            accepted += 1
    finally:
        src.logout()
    code, summary = m.sync_json()
    copied = summary["messages_copied"]
    failed = summary["messages_failed"]
    assert copied + failed == accepted, summary
    for failure in summary["failures"]:
        assert failure["uid"] is not None and failure["reason"], failure
    assert code == (1 if failed else 0)
    # What was copied is byte-identical to what the source serves.
    s, d = m.source.client(), m.target.client()
    try:
        source_prints = snapshot(s)["Hostile"]
        target_prints = snapshot(d)["Hostile"]
    finally:
        s.logout()
        d.logout()
    assert sum(target_prints.values()) == copied
    assert not (target_prints - source_prints)
    if not failed:
        assert m.cli("verify").exit_code == 0
