"""A target smaller than the mailbox: the run stops cleanly, and after more quota a re-run completes."""

from __future__ import annotations

import pytest

from mailferry.sandbox.dovecot import DovecotServer
from tests.integration.conftest_helpers import Account, Migration, load
from tests.integration.mailcheck import snapshot
from tests.integration.test_sync import expected_target

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def quota_server(tmp_path_factory):
    with DovecotServer(
        tmp_path_factory.mktemp("quota"), delimiter=".", quota_bytes=50_000_000
    ) as server:
        yield server


def test_full_target_stops_cleanly_then_completes_after_more_quota(
    dovecot_slash, quota_server, make_user, tmp_path
):
    m = Migration(
        Account(dovecot_slash, *make_user(dovecot_slash)),
        Account(quota_server, *make_user(quota_server)),
        tmp_path / "state.sqlite3",
    )
    corpus, _ = load(m.source)
    quota_server.set_quota(m.target.user, corpus.total_bytes // 3)

    code, summary = m.sync_json("--batch-size", "10")
    assert code == 1, summary
    assert summary["stopped"] and "full" in summary["stopped"]
    assert 0 < summary["messages_copied"] < len(corpus.messages)
    assert summary["messages_failed"] == 0  # no message is blamed for a full mailbox
    assert_adds_up(m, summary, len(corpus.messages))

    quota_server.set_quota(m.target.user, 50_000_000)
    code, again = m.sync_json()
    assert code == 0, again
    live = sum(1 for msg in corpus.messages if "\\Deleted" not in msg.flags)
    assert summary["messages_copied"] + again["messages_copied"] == live
    s, d = m.source.client(), m.target.client()
    try:
        src = snapshot(s, skip_deleted=True)
        dst = snapshot(d)
    finally:
        s.logout()
        d.logout()
    total_src = sum(sum(c.values()) for c in src.values())
    total_dst = sum(sum(c.values()) for c in dst.values())
    assert total_dst == total_src  # everything once: nothing missing, nothing doubled
    assert m.cli("verify").exit_code == 0


def assert_adds_up(m: Migration, summary: dict, source_total: int) -> None:
    """copied + remaining + failed + skipped = source, in total and per (target) folder."""
    remaining = summary["remaining"]
    assert summary["messages_remaining"] == sum(remaining.values()) > 0
    skipped = sum(summary[k] for k in summary if k.startswith("messages_skipped_"))
    accounted = summary["messages_copied"] + summary["messages_remaining"] + skipped
    assert accounted + summary["messages_failed"] == source_total
    s, d = m.source.client(), m.target.client()
    try:
        src, dst = snapshot(s, skip_deleted=True), snapshot(d)
    finally:
        s.logout()
        d.logout()
    left: dict[str, int] = {}  # per target folder: live source messages not there yet
    for name, prints in src.items():
        target = expected_target(name)
        left[target] = left.get(target, 0) + sum(prints.values()) - remaining.get(name, 0)
    for target, count in left.items():
        assert sum(dst.get(target, {}).values()) == count, target
