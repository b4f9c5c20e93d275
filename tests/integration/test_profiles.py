"""Provider profiles against real Dovecot servers, with a fault proxy replaying what Gmail and
Microsoft 365 say: Gmail's labels and daily bandwidth cap, Exchange's throttling, reserved and
system folders, its message size limit and its lack of MULTIAPPEND.

Dovecot plays the provider (its folders laid out like Gmail's or Exchange's, the profile chosen
with --source-profile/--target-profile); the proxy puts the provider's words in its mouth.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import Counter

import pytest

from mailferry.sandbox.dovecot import DovecotServer
from mailferry.sandbox.proxy import Proxy
from tests.integration.conftest_helpers import Account, Migration

pytestmark = pytest.mark.integration

GMAIL_FOLDERS = {
    "INBOX": [1, 2, 3],
    "Work": [2, 4],
    "[Gmail]/Sent Mail": [5, 2],
    "[Gmail]/All Mail": [1, 2, 3, 4, 5, 6, 7],  # 6 has no Message-ID; 7 carries no label
    "[Gmail]/Starred": [1],  # views Gmail computes: never copied
    "[Gmail]/Important": [3],
}
GMAIL_CAP = rb"\1 NO [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)"
FAST = ("--retry-wait", "0.05", "--retry-max-wait", "0.5", "--timeout", "5")
M365_LIMIT = 36 * 1024 * 1024  # the microsoft365 profile's largest message


def gmail_message(n: int) -> bytes:
    head = f"Message-ID: <g{n}@gmail.test>\r\n" if n != 6 else ""
    return f"{head}Subject: gmail {n}\r\nFrom: a@gmail.test\r\n\r\nbody {n}\r\n".encode()


def shas(numbers) -> Counter[str]:
    return Counter(hashlib.sha256(gmail_message(n)).hexdigest() for n in numbers)


def folder_shas(account: Account) -> dict[str, Counter[str]]:
    client = account.client()
    try:
        found = {}
        for flags, _delim, name in client.list_folders():
            if b"\\Noselect" in flags:
                continue
            client.select_folder(name, readonly=True)
            rows = client.fetch(client.search("ALL"), ["BODY.PEEK[]"])
            found[name] = Counter(hashlib.sha256(r[b"BODY[]"]).hexdigest() for r in rows.values())
        return {name: c for name, c in found.items() if c}
    finally:
        client.logout()


@pytest.fixture(scope="module")
def gmail_server(tmp_path_factory: pytest.TempPathFactory):
    """Dovecot with Gmail's folder names and special uses (not auto-created)."""
    special = {
        "[Gmail]/All Mail": "\\All",
        "[Gmail]/Sent Mail": "\\Sent",
        "[Gmail]/Starred": "\\Flagged",
    }
    root = tmp_path_factory.mktemp("dovecot_gmail")
    with DovecotServer(root, delimiter="/", special_use=special, auto_create=False) as server:
        yield server


@pytest.fixture
def gmail(gmail_server, dovecot_dot, make_user, tmp_path):
    source = Account(gmail_server, *make_user(gmail_server))
    target = Account(dovecot_dot, *make_user(dovecot_dot))
    client = source.client()
    try:
        for name, numbers in GMAIL_FOLDERS.items():
            if name != "INBOX":
                client.create_folder(name)
            for n in numbers:  # one message, one received date, in every label (as in Gmail)
                when = dt.datetime(2020, 1, n, 12, 0, tzinfo=dt.UTC)
                client.append(name, gmail_message(n), [b"\\Seen"], when)
    finally:
        client.logout()
    with Proxy("127.0.0.1", gmail_server.port) as proxy:
        source.via_port = proxy.port
        yield Migration(source, target, tmp_path / "state.sqlite3"), proxy


def test_gmail_labels_once_and_the_daily_cap_is_waited_out(gmail):
    m, proxy = gmail
    # Gmail's daily bandwidth cap, on the first FETCH after the run has started.
    proxy.replace_next(rb"^(\S+) OK Fetch completed.*", GMAIL_CAP)
    args = ("--source-profile", "gmail", "--retries", "0", "--cap-pause", "1", *FAST)
    result = m.cli("sync", "--json", *args)
    summary = json.loads(result.stdout)
    assert result.exit_code == 0, summary
    assert proxy.faults_fired == 1
    assert summary["cap_pauses"] == 1  # paused, with no retry budget at all, instead of failing
    assert summary["paused_seconds"] >= 1
    assert summary["failures"] == []
    assert summary["messages_copied"] == 7  # messages 1..7, each once
    assert summary["messages_skipped_labels"] == 7  # Work's 2, Sent's 2, All Mail's 1..5
    assert folder_shas(m.target) == {
        "INBOX": shas([1, 2, 3]),
        "Work": shas([4]),
        "Sent": shas([5]),  # [Gmail]/Sent Mail has the \\Sent role: the target's Sent folder
        "[Gmail].All Mail": shas([6, 7]),  # only what carries no label
    }  # Starred and Important are views: not copied
    assert m.cli("verify", "--source-profile", "gmail").exit_code == 0
    again = json.loads(m.cli("sync", "--json", "--source-profile", "gmail").stdout)
    assert (again["messages_copied"], again["failures"]) == (0, [])


def test_gmail_labels_as_folders(gmail):
    m, _proxy = gmail
    code, summary = m.sync_json("--source-profile", "gmail", "--labels", "folders")
    assert code == 0, summary
    assert folder_shas(m.target) == {
        "INBOX": shas([1, 2, 3]),
        "Work": shas([2, 4]),
        "Sent": shas([5, 2]),
        "[Gmail].All Mail": shas([6, 7]),
    }
    verify = m.cli("verify", "--source-profile", "gmail", "--labels", "folders")
    assert verify.exit_code == 0, verify.stdout


# -- Microsoft 365 -------------------------------------------------------------------------------

M365_FOLDERS = {
    "INBOX": 3,
    "Files": 1,  # reserved on an Exchange target: renamed
    "Projects": 2,
    "Calendar": 1,  # Exchange system folders on an Exchange source: never copied
    "Sync Issues": 1,
    "Sync Issues/Conflicts": 1,
}


@pytest.fixture
def exchange(dovecot_slash, dovecot_dot, make_user, tmp_path):
    source = Account(dovecot_slash, *make_user(dovecot_slash))
    target = Account(dovecot_dot, *make_user(dovecot_dot))
    client = source.client()
    try:
        for name, count in M365_FOLDERS.items():
            if name != "INBOX":
                client.create_folder(name)
            for i in range(count):
                body = f"Message-ID: <{name}.{i}@m365.test>\r\nSubject: {name} {i}\r\n\r\nhi\r\n"
                client.append(name, body.encode(), [b"\\Seen"], None)
        huge = b"Message-ID: <huge@m365.test>\r\nSubject: huge\r\n\r\n"
        client.append("INBOX", huge + b"x" * (M365_LIMIT + 1 - len(huge)), [], None)
    finally:
        client.logout()
    with (
        Proxy("127.0.0.1", dovecot_slash.port) as src_proxy,
        Proxy("127.0.0.1", dovecot_dot.port) as dst_proxy,
    ):
        source.via_port, target.via_port = src_proxy.port, dst_proxy.port
        yield Migration(source, target, tmp_path / "state.sqlite3"), src_proxy, dst_proxy


def test_microsoft365_target_through_exchange_answers(exchange):
    m, src_proxy, dst_proxy = exchange
    # Exchange's ways of saying "slow down": a BYE on the source, a throttled SELECT on the target.
    src_proxy.replace_next(
        rb"^(\S+) OK \[READ-ONLY\].*", b"* BYE Server Unavailable. 15\r\n\\1 OK [READ-ONLY] done"
    )
    dst_proxy.replace_next(
        rb"^(\S+) OK \[READ-WRITE\].*",
        rb"\1 NO [THROTTLED] Request is throttled. Suggested Backoff Time: 300 milliseconds",
    )
    appended = rb"^\S+ OK \[APPENDUID \d+ (\S+)\]"
    dst_proxy.watch(appended)
    profile = ("--target-profile", "microsoft365")
    result = m.cli("sync", "--json", *profile, "--retries", "6", *FAST)
    summary = json.loads(result.stdout)
    assert result.exit_code == 1, summary  # the message over Exchange's limit is reported
    assert src_proxy.faults_fired == 1
    assert dst_proxy.faults_fired == 1
    # Each side's refusal is a throttle, never a failure: one retry each, or one for both when
    # they come in the same attempt (a folder's two sides are selected at once).
    assert summary["throttled"] in (1, 2), summary
    [failure] = summary["failures"]
    assert failure["folder"] == "INBOX"
    assert f"over the target's limit of {M365_LIMIT} bytes" in failure["reason"]
    assert summary["messages_copied"] == sum(M365_FOLDERS.values())
    # Dovecot offers MULTIAPPEND; the profile never counts on it: one APPEND, one message.
    uid_sets = [re.search(appended, line).group(1) for line in dst_proxy.seen(appended)]
    assert len(uid_sets) == summary["messages_copied"]
    assert all(uid.isdigit() for uid in uid_sets), uid_sets  # never a range like b"4:9"
    counts = {name: sum(c.values()) for name, c in folder_shas(m.target).items()}
    assert counts == {
        "INBOX": 3,
        "Files (migrated)": 1,  # "Files" is reserved on Exchange
        "Projects": 2,
        "Calendar": 1,  # an ordinary folder on a generic source
        "Sync Issues": 1,
        "Sync Issues.Conflicts": 1,
    }
    assert [(r["source"], r["target"]) for r in summary["renames"]] == [
        ("Files", "Files (migrated)")
    ]
    # A second pass copies nothing and reports the same message again, with the same reason.
    again = json.loads(m.cli("sync", "--json", *profile, *FAST).stdout)
    assert again["messages_copied"] == 0
    assert [f["reason"] for f in again["failures"]] == [failure["reason"]]


def test_microsoft365_source_leaves_its_system_folders(exchange):
    m, _src_proxy, _dst_proxy = exchange
    profiles = ("--source-profile", "microsoft365", "--target-profile", "microsoft365")
    result = m.cli("sync", "--json", *profiles)
    summary = json.loads(result.stdout)
    assert result.exit_code == 1, summary  # the message over Exchange's limit, as above
    counts = {name: sum(c.values()) for name, c in folder_shas(m.target).items()}
    assert counts == {"INBOX": 3, "Projects": 2}  # Files, Calendar, Sync Issues/*: Exchange's own
    assert summary["folders"] == 2
