"""A target smaller than the mailbox: the run stops cleanly, and after more quota a re-run completes."""

from __future__ import annotations

import pytest

from mailferry.sandbox.dovecot import DovecotServer
from tests.integration.conftest_helpers import Account, Migration, load
from tests.integration.mailcheck import snapshot

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
