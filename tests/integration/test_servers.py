"""`mailferry sync` to and from Cyrus IMAP and Courier-IMAP (and Dovecot with their namespace).

Both announce ``NAMESPACE (("INBOX." "."))``: folders live below INBOX, a top-level folder is
refused. Courier also hands out a new UIDVALIDITY on every STATUS of an empty folder until the
first APPEND; Cyrus stores raw 8-bit header bytes as ``X`` (munge8bit, on by default).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter

import pytest

from mailferry.domain.namespace import Namespace
from tests.integration.conftest_helpers import Account, Migration, bulk_load, kill_during_copy, load
from tests.integration.mailcheck import snapshot
from tests.integration.test_sync import assert_faithful, expected_target

pytestmark = pytest.mark.integration

PREFIXED = ["dovecot_prefixed", "courier", "cyrus"]
KILL_FOLDERS = ["INBOX", "Archive", "Archive/2019", "Lists"]


def prefixed(name: str) -> str:
    """Where a source folder goes on an ("INBOX." ".") target that has Sent, Trash, Junk."""
    target = expected_target(name)
    return target if target == "INBOX" else f"INBOX.{target}"


def prefixed_bare(name: str) -> str:
    """The same on a target without special-use folders (Courier, Cyrus): names are kept."""
    named = {"Releases/v1.2": "Releases.v1_2", "Entwürfe": "Drafts"}  # Entwürfe: a Drafts name
    target = named.get(name, name.replace("/", "."))
    return target if target == "INBOX" else f"INBOX.{target}"


def migration(request, source: str, target: str, make_user, tmp_path) -> Migration:
    src, dst = request.getfixturevalue(source), request.getfixturevalue(target)
    return Migration(
        Account(src, *make_user(src)), Account(dst, *make_user(dst)), tmp_path / "state.sqlite3"
    )


def checkpoints(m: Migration) -> dict[str, int]:
    with sqlite3.connect(m.state) as db:
        rows = db.execute("SELECT target_folder, target_uidvalidity FROM checkpoints").fetchall()
    return dict(rows)


@pytest.mark.parametrize("target", PREFIXED)
def test_to_a_prefixed_namespace_folders_go_below_inbox(request, target, make_user, tmp_path):
    m = migration(request, "dovecot_slash", target, make_user, tmp_path)
    load(m.source)
    code, first = m.sync_json()
    assert code == 0, first
    assert first["messages_failed"] == 0, first["failures"]
    assert not any("INBOX." in r["target"] for r in first["renames"])  # reports: logical names
    if target == "cyrus":  # munge8bit: 8-bit header bytes are stored as "X"; verify says so
        verify = m.cli("verify")
        assert verify.exit_code != 0, verify.stdout
    else:
        assert_faithful(m, rename=prefixed if target == "dovecot_prefixed" else prefixed_bare)
    code, second = m.sync_json()
    assert code == 0, second
    assert second["messages_copied"] == 0, second  # Courier: the checkpoint holds APPENDUID's
    lose_state(m)  # matched on the target by Message-ID (Courier quotes the item's name) or content
    code, third = m.sync_json()
    assert (code, third["messages_copied"]) == (0, 0), third
    assert third["messages_skipped_existing"] == first["messages_copied"]


def test_courier_checkpoints_hold_the_uidvalidity_the_appends_reported(
    request, make_user, tmp_path
):
    """A fresh Courier INBOX moves its UIDVALIDITY on every STATUS until the first APPEND."""
    m = migration(request, "dovecot_slash", "courier", make_user, tmp_path)
    load(m.source)
    code, report = m.sync_json()
    assert code == 0, report
    recorded = checkpoints(m)
    assert "INBOX" in recorded
    courier = Namespace("INBOX.", ".")
    client = m.target.client()
    try:
        now = {
            name: client.folder_status(courier.physical(name), ["UIDVALIDITY"])[b"UIDVALIDITY"]
            for name in recorded
        }
    finally:
        client.logout()
    assert recorded == now


@pytest.mark.parametrize("source", ["courier", "cyrus"])
def test_from_a_prefixed_namespace_folders_lose_the_prefix(request, source, make_user, tmp_path):
    m = migration(request, source, "dovecot_dot", make_user, tmp_path)
    load(m.source)
    client = m.source.client()
    try:
        on_source = {name for _f, _d, name in client.list_folders()}
    finally:
        client.logout()
    code, report = m.sync_json()
    assert code == 0, report
    client = m.target.client()
    try:
        on_target = set(snapshot(client))
    finally:
        client.logout()
    assert not any(n.startswith("INBOX.") for n in on_target), on_target
    logical = {n.removeprefix("INBOX.") for n in on_source}
    assert {expected_target(n.replace(".", "/")) for n in logical} - {"INBOX"} <= on_target
    verify = m.cli("verify")  # bytes, flags and dates of every message, read back from both sides
    assert verify.exit_code == 0, verify.output
    lose_state(m)
    code, again = m.sync_json()
    assert (code, again["messages_copied"]) == (0, 0), again
    assert again["messages_skipped_existing"] == report["messages_copied"]


def lose_state(m: Migration) -> None:
    for path in m.state.parent.glob(m.state.name + "*"):
        path.unlink()


def physical(name: str) -> str:
    """A "/" folder of the source as an ("INBOX." ".") server names it."""
    return name if name == "INBOX" else "INBOX." + name.replace("/", ".")


def assert_no_duplicates(m: Migration) -> tuple[dict, dict]:
    src_c, dst_c = m.source.client(), m.target.client()
    try:
        src, dst = snapshot(src_c), snapshot(dst_c)
    finally:
        src_c.logout()
        dst_c.logout()
    for name in KILL_FOLDERS:
        content_src = Counter(k[:2] for k in src[name].elements())
        content_dst = Counter(k[:2] for k in dst.get(physical(name), Counter()).elements())
        over = content_dst - content_src
        assert not over, f"{physical(name)}: duplicated {sum(over.values())} messages"
    return src, dst


@pytest.mark.parametrize("target", ["courier", "cyrus"])
def test_kill_9_at_many_points_then_one_run_completes(request, target, make_user, tmp_path):
    """kill -9 of a real `mailferry sync` process into Cyrus and Courier: no duplicate after any
    kill, and the next run completes the copy."""
    m = migration(request, "dovecot_slash", target, make_user, tmp_path)
    bulk_load(m.source, KILL_FOLDERS, per_folder=80)
    targets = [physical(name) for name in KILL_FOLDERS]
    args = ("--batch-size", "15")
    total = len(KILL_FOLDERS) * 82  # bulk_load: 80 a folder and a byte-identical pair
    counts = kill_during_copy(m, 4, 11, targets, assert_no_duplicates, *args, total=total)
    assert len(counts) >= 2, "the migration finished too fast to be interrupted; raise per_folder"
    assert counts == sorted(counts), counts  # no run took a message away
    assert sum(1 for c in counts if c < total) >= 2, counts  # killed while copying
    proc = m.process()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out)["messages_failed"] == 0
    src, dst = assert_no_duplicates(m)
    for name in KILL_FOLDERS:
        assert dst[physical(name)] == src[name], f"{name} incomplete after kills"
