"""`mailferry sync` and `verify` against two real Dovecot servers ("/" and "." delimiters)."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from mailferry.adapters.imap.wire import parse_list
from tests.integration.conftest_helpers import Account, Migration, load
from tests.integration.mailcheck import snapshot, subscribed

pytestmark = pytest.mark.integration

# What the corpus's folders must become on a "." target that has Sent/Drafts/Trash/Junk already:
# written out by hand, independently of mailferry's mapping code.
SPECIAL = {
    "Sent Messages": "Sent",
    "Deleted Messages": "Trash",
    "Junk E-mail": "Junk",
    "Entwürfe": "Drafts",  # a Drafts folder by name, beside the flagged "Drafts": merged
    "Releases/v1.2": "Releases.v1_2",
}


def expected_target(name: str) -> str:
    return SPECIAL.get(name, name.replace("/", "."))


@pytest.fixture
def slash_to_dot(dovecot_slash, dovecot_dot, make_user, tmp_path):
    source = Account(dovecot_slash, *make_user(dovecot_slash))
    target = Account(dovecot_dot, *make_user(dovecot_dot))
    return Migration(source, target, tmp_path / "state.sqlite3")


def assert_faithful(m: Migration, rename=expected_target) -> None:
    """Every live source message is on the mapped target folder exactly once, with flags and date."""
    src_client, dst_client = m.source.client(), m.target.client()
    try:
        src = snapshot(src_client, skip_deleted=True)
        dst = snapshot(dst_client)
    finally:
        src_client.logout()
        dst_client.logout()
    expected: dict[str, Counter] = {}
    for name, prints in src.items():
        expected.setdefault(rename(name), Counter()).update(prints)
    for name, prints in expected.items():
        assert dst.get(name) == prints, f"{name}: target differs from source"
    extra = {n for n, p in dst.items() if p and n not in expected}
    assert not extra, f"unexpected messages in {extra}"


def test_full_migration_is_faithful_and_second_run_copies_nothing(slash_to_dot):
    m = slash_to_dot
    corpus, report = load(m.source, big_message_mb=30)
    assert not report.refused
    live = sum(1 for msg in corpus.messages if "\\Deleted" not in msg.flags)
    deleted = len(corpus.messages) - live

    code, first = m.sync_json()
    assert code == 0, first
    assert first["messages_copied"] == live
    assert first["messages_skipped_deleted"] == deleted
    assert first["messages_failed"] == 0
    assert first["bytes_copied"] > 30 * 1024 * 1024
    assert {r["source"]: r["target"] for r in first["renames"]} == {
        "Releases/v1.2": "Releases.v1_2",
        "Entwürfe": "Drafts",
    }
    assert_faithful(m)

    verify = m.cli("verify")
    assert verify.exit_code == 0, verify.stdout
    assert "identical" in verify.stdout

    dst = m.target.client()
    try:
        names = {name for _f, _d, name in dst.list_folders()}
        assert {
            "Empty",
            "Projects.2024.Q2",
            "Archive",
            "Archive.2009",
            "R&D",
            "日本語",
        } <= names
        assert not {"Sent Messages", "Deleted Messages", "Entwürfe"} & names  # merged by role
        subs = subscribed(dst)
        for folder in corpus.subscribed:
            assert expected_target("/".join(folder)) in subs
    finally:
        dst.logout()

    code, second = m.sync_json()
    assert code == 0
    assert second["messages_copied"] == 0
    assert second["flags_updated"] == 0
    assert_faithful(m)


def test_reverse_direction_dot_to_slash(dovecot_dot, dovecot_slash, make_user, tmp_path):
    source = Account(dovecot_dot, *make_user(dovecot_dot))
    target = Account(dovecot_slash, *make_user(dovecot_slash))
    m = Migration(source, target, tmp_path / "state.sqlite3")
    _corpus, report = load(source)
    assert report.refused  # "v1.2" cannot exist under a "." delimiter: the loader says so
    code, summary = m.sync_json()
    assert code == 0, summary
    # Dovecot auto-created Sent/Trash/Junk/Drafts on the source: the corpus's folders of those roles
    # (by name) merge into them.
    merged = {
        "Sent Messages": "Sent",
        "Deleted Messages": "Trash",
        "Junk E-mail": "Junk",
        "Entwürfe": "Drafts",
    }
    assert_faithful(m, rename=lambda name: merged.get(name, name.replace(".", "/")))
    assert m.cli("verify").exit_code == 0


def test_incremental_pass_copies_new_mail_and_flag_changes_only(slash_to_dot):
    m = slash_to_dot
    load(m.source)
    assert m.sync_json()[0] == 0
    src = m.source.client()
    try:
        src.select_folder("Projects/2024/Q1")
        uid = src.search("ALL")[0]
        src.set_flags([uid], [b"\\Flagged", b"$Label1"])
        src.append(
            "Reçus",
            b"Message-ID: <new@x>\r\nSubject: new\r\n\r\nnew\r\n",
            [b"\\Seen"],
            dt.datetime(2021, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
        )
        src.append(
            "INBOX", b"Subject: no id\r\n\r\nfresh\r\n", [], dt.datetime(2022, 1, 1, tzinfo=dt.UTC)
        )
    finally:
        src.logout()
    code, summary = m.sync_json()
    assert code == 0, summary
    assert summary["messages_copied"] == 2
    assert summary["flags_updated"] == 1
    assert_faithful(m)


def test_lost_state_database_does_not_duplicate(slash_to_dot):
    m = slash_to_dot
    load(m.source)
    assert m.sync_json()[0] == 0
    m.state.unlink()
    code, summary = m.sync_json()
    assert code == 0, summary
    assert summary["messages_copied"] == 0
    assert_faithful(m)


def test_source_uidvalidity_change_does_not_duplicate(slash_to_dot):
    m = slash_to_dot
    load(m.source)
    assert m.sync_json()[0] == 0
    src = m.source.client()
    try:  # recreate INBOX/Reçus with the same messages: new UIDVALIDITY, new UIDs
        src.select_folder("Reçus")
        rows = src.fetch(src.search("ALL"), ["FLAGS", "INTERNALDATE", "BODY.PEEK[]"])
        before = src.folder_status("Reçus", ["UIDVALIDITY"])[b"UIDVALIDITY"]
        src.close_folder()
        src.delete_folder("Reçus")
        src.create_folder("Reçus")
        for row in rows.values():
            flags = [f for f in row[b"FLAGS"] if f.lower() != b"\\recent"]
            src.append("Reçus", row[b"BODY[]"], flags, row[b"INTERNALDATE"])
        assert src.folder_status("Reçus", ["UIDVALIDITY"])[b"UIDVALIDITY"] != before
    finally:
        src.logout()
    code, summary = m.sync_json()
    assert code == 0, summary
    assert summary["messages_copied"] == 0
    assert_faithful(m)


def test_dry_run_prints_the_plan_and_writes_nothing(slash_to_dot):
    m = slash_to_dot
    load(m.source)
    result = m.cli("sync", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "INBOX" in result.stdout
    assert "Releases.v1_2" in result.stdout
    assert not m.state.exists()
    dst = m.target.client()
    try:
        names = {name for _f, _d, name in dst.list_folders()}
        assert "Projects.2024" not in names
        dst.select_folder("INBOX")
        assert dst.search("ALL") == []
    finally:
        dst.logout()


def test_filters_map_and_date_window(slash_to_dot):
    m = slash_to_dot
    load(m.source)
    code, summary = m.sync_json(
        "--include",
        "^(INBOX|Projects|Reçus)",
        "--exclude",
        "Q2$",
        "--map",
        "Reçus=Received",
        "--since",
        "2015-01-01",
        "--before",
        "2020-01-01",
    )
    assert code == 0, summary
    assert summary["messages_skipped_filtered"] > 0
    dst = m.target.client()
    try:
        names = {name for _f, _d, name in dst.list_folders()}
        assert "Received" in names and "Reçus" not in names
        assert "Projects.2024.Q2" not in names and "R&D" not in names
        for folder in ("INBOX", "Received"):
            dst.select_folder(folder, readonly=True)
            for row in dst.fetch(dst.search("ALL"), ["INTERNALDATE"]).values():
                assert dt.date(2015, 1, 1) <= row[b"INTERNALDATE"].date() < dt.date(2020, 1, 1)
    finally:
        dst.logout()


def test_master_user_login_acts_for_the_mailbox(slash_to_dot):
    m = slash_to_dot
    load(m.source)
    server = m.source.server
    plain_env = m.env()
    m.source.password = server.master_password
    try:
        result = m.cli("sync", "--json", "--source-authuser", server.master_user)
    finally:
        m.source.password = plain_env["MAILFERRY_SOURCE_PASSWORD"]
    assert result.exit_code == 0, result.output
    assert_faithful(m)


def test_verify_reports_a_difference(slash_to_dot):
    m = slash_to_dot
    load(m.source)
    assert m.sync_json()[0] == 0
    dst = m.target.client()
    try:
        dst.select_folder("R&D")
        uid = dst.search("ALL")[0]
        dst.set_flags([uid], [b"\\Flagged"])
        dst.append("Junk", b"Subject: stray\r\n\r\nstray\r\n")
    finally:
        dst.logout()
    result = m.cli("verify")
    assert result.exit_code == 1
    assert "DIFF R&D -> R&D" in result.stdout
    assert "flags" in result.stdout
    assert "extra on target" in result.stdout


AWKWARD = [
    "c[c",
    "[Gmail]/All Mail",
    'quo"te',
    "back\\slash",
    "a]b",
    "(paren)",
    "{brace}",
    "%pct",
    "*star",
    "x~y",
]


def test_folder_names_with_imap_specials_survive(slash_to_dot):
    m = slash_to_dot
    src = m.source.client()
    try:
        for name in AWKWARD:
            src.create_folder(name)
            src.append(
                name,
                f"Subject: {name}\r\n\r\nin {name}\r\n".encode(),
                [b"\\Seen"],
                dt.datetime(2019, 9, 9, 9, 9, 9, tzinfo=dt.UTC),
            )
    finally:
        src.logout()
    code, summary = m.sync_json()
    assert code == 0, summary
    assert summary["messages_copied"] == len(AWKWARD)
    assert m.cli("verify").exit_code == 0
    dst = m.target.client()
    try:
        typ, data = dst._imap.list('""', "*")
        assert typ == "OK"
        names = {name for _f, _d, name in parse_list(data)}
    finally:
        dst.logout()
    assert {n.replace("/", ".") for n in AWKWARD} <= names


def test_several_connections_give_the_same_faithful_result(slash_to_dot):
    m = slash_to_dot
    load(m.source, scale=3)
    code, summary = m.sync_json("--connections", "4", "--batch-size", "7")
    assert code == 0, summary
    assert_faithful(m)
    code, again = m.sync_json("--connections", "4")
    assert (code, again["messages_copied"]) == (0, 0)
