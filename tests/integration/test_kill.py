"""kill -9 at many moments of a real `mailferry sync` process; the next run completes without duplicates."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter

import imapclient
import pytest

from tests.integration.conftest_helpers import Account, Migration, bulk_load, kill_during_copy
from tests.integration.mailcheck import snapshot

pytestmark = pytest.mark.integration

FOLDERS = ["INBOX", "Archive", "Archive/2019", "Lists"]


def copying_began(m: Migration, timeout: float) -> None:
    """Wait until the target holds at least one message (polling with a separate session)."""
    deadline = time.monotonic() + timeout
    client = m.target.client()
    try:
        while time.monotonic() < deadline:
            for name in FOLDERS:
                try:
                    status = client.folder_status(name.replace("/", "."), ["MESSAGES"])
                except imapclient.exceptions.IMAPClientError:
                    continue  # not created yet
                if status[b"MESSAGES"]:
                    return
            time.sleep(0.05)
    finally:
        client.logout()
    raise AssertionError("no message arrived on the target in time")


def no_duplicates(m: Migration) -> tuple[dict, dict]:
    src_c, dst_c = m.source.client(), m.target.client()
    try:
        src = snapshot(src_c)
        dst = snapshot(dst_c)
    finally:
        src_c.logout()
        dst_c.logout()
    for name in FOLDERS:
        target = name.replace("/", ".")
        content_src = Counter(k[:2] for k in src[name].elements())
        content_dst = Counter(k[:2] for k in dst.get(target, Counter()).elements())
        over = content_dst - content_src
        assert not over, f"{target}: duplicated {sum(over.values())} messages"
    return src, dst


@pytest.mark.parametrize("connections", ["1", "3"])
def test_kill_9_at_many_points_then_one_run_completes(
    dovecot_slash, dovecot_dot, make_user, tmp_path, connections
):
    m = Migration(
        Account(dovecot_slash, *make_user(dovecot_slash)),
        Account(dovecot_dot, *make_user(dovecot_dot)),
        tmp_path / "state.sqlite3",
    )
    bulk_load(m.source, FOLDERS, per_folder=300)
    args = ("--batch-size", "25", "--connections", connections)
    targets = [name.replace("/", ".") for name in FOLDERS]
    total = len(FOLDERS) * 302  # bulk_load: 300 a folder and a byte-identical pair
    counts = kill_during_copy(m, 6, 2026, targets, no_duplicates, *args, total=total)
    assert len(counts) >= 3, "the migration finished too fast to be interrupted; raise per_folder"
    assert counts == sorted(counts), counts  # no run took a message away
    assert sum(1 for c in counts if c < total) >= 3, counts  # killed while copying
    proc = m.process()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    summary = json.loads(out)
    assert summary["messages_failed"] == 0
    src, dst = no_duplicates(m)
    for name in FOLDERS:
        assert dst[name.replace("/", ".")] == src[name], f"{name} incomplete after kills"
    verify = m.cli("verify")
    assert verify.exit_code == 0, verify.output


def test_sigterm_stops_gracefully_and_the_next_run_finishes(
    dovecot_slash, dovecot_dot, make_user, tmp_path
):
    m = Migration(
        Account(dovecot_slash, *make_user(dovecot_slash)),
        Account(dovecot_dot, *make_user(dovecot_dot)),
        tmp_path / "state.sqlite3",
    )
    bulk_load(m.source, FOLDERS, per_folder=300)
    proc = m.process("--batch-size", "20")
    copying_began(m, timeout=30)
    assert proc.poll() is None, "finished before the signal; raise per_folder"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert b"stopped on request" in err
    stopped = json.loads(out)
    assert stopped["stopped"]
    assert stopped["messages_copied"] > 0
    no_duplicates(m)
    proc = m.process()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    src, dst = no_duplicates(m)
    for name in FOLDERS:
        assert dst[name.replace("/", ".")] == src[name]
