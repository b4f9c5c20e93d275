"""Real faults between mailferry and real Dovecot servers, injected by a TCP proxy on 127.0.0.1.

Every scenario ends the same way: every message copied exactly once, checked by `mailferry verify` and
by an independent comparison; faults cost reconnects, never messages.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from mailferry.sandbox.proxy import Proxy
from tests.integration.conftest_helpers import Account, Migration, bulk_load
from tests.integration.mailcheck import snapshot

pytestmark = pytest.mark.integration

FAST_RETRIES = (
    "--retries",
    "12",
    "--retry-wait",
    "0.05",
    "--retry-max-wait",
    "0.5",
    "--timeout",
    "3",
)


@pytest.fixture
def proxied(dovecot_slash, dovecot_dot, make_user, tmp_path):
    source = Account(dovecot_slash, *make_user(dovecot_slash))
    target = Account(dovecot_dot, *make_user(dovecot_dot))
    with (
        Proxy("127.0.0.1", dovecot_slash.port, seed=1) as src_proxy,
        Proxy("127.0.0.1", dovecot_dot.port, seed=2) as dst_proxy,
    ):
        source.via_port = src_proxy.port
        target.via_port = dst_proxy.port
        yield Migration(source, target, tmp_path / "state.sqlite3"), src_proxy, dst_proxy


def exactly_once(m: Migration, folders: list[str]) -> None:
    s, d = m.source.client(), m.target.client()
    try:
        src, dst = snapshot(s), snapshot(d)
    finally:
        s.logout()
        d.logout()
    for name in folders:
        want = Counter(k[:2] for k in src[name].elements())
        got = Counter(k[:2] for k in dst[name.replace("/", ".")].elements())
        assert got == want, (
            f"{name}: {sum((got - want).values())} extra, {sum((want - got).values())} missing"
        )


def run_to_completion(m: Migration, *args: str, reruns: int = 1) -> list[dict]:
    summaries = []
    for _ in range(1 + reruns):
        result = m.cli("sync", "--json", *FAST_RETRIES, *args)
        assert result.stdout, (result.exit_code, result.stderr)
        summaries.append(json.loads(result.stdout))
        if result.exit_code == 0:
            break
    return summaries


def test_soak_twenty_random_cuts_lose_and_duplicate_nothing(proxied):
    m, src_proxy, dst_proxy = proxied
    folders = ["INBOX", "Lists", "Lists/dev", "Archive"]
    bulk_load(m.source, folders, per_folder=500)  # 2,000 messages + twins
    src_proxy.schedule_random_cuts(10, max_bytes=1_500_000, seed=11)
    dst_proxy.schedule_random_cuts(10, max_bytes=1_500_000, seed=12)
    summaries = run_to_completion(m, "--batch-size", "50")
    fired = src_proxy.faults_fired + dst_proxy.faults_fired
    assert fired == 20, f"only {fired} of 20 cuts fired"
    assert len(summaries) <= 2
    assert summaries[-1]["messages_failed"] == 0
    assert sum(s["reconnects"] for s in summaries) >= 10
    exactly_once(m, folders)
    assert m.cli("verify").exit_code == 0


def test_stalled_server_counts_as_dropped(proxied):
    m, src_proxy, _dst = proxied
    bulk_load(m.source, ["INBOX"], per_folder=60)
    src_proxy.stall_after(40_000, 8.0)  # longer than --timeout 3
    [summary] = run_to_completion(m, reruns=0)
    assert summary["messages_failed"] == 0
    assert summary["reconnects"] >= 1
    exactly_once(m, ["INBOX"])


def test_bye_with_throttling_text_backs_off_and_finishes(proxied):
    m, src_proxy, _dst = proxied
    bulk_load(m.source, ["INBOX"], per_folder=80)
    # Exchange's way: an untagged BYE between responses, here just before EXAMINE's answer.
    src_proxy.replace_next(
        rb"^(\S+) OK \[READ-ONLY\].*",
        b"* BYE Server Unavailable. 15\r\n\\1 OK [READ-ONLY] done",
    )
    [summary] = run_to_completion(m, reruns=0)
    assert summary["throttled"] >= 1, summary
    assert summary["failures"] == []
    exactly_once(m, ["INBOX"])


def test_throttled_answer_with_suggested_backoff(proxied):
    m, src_proxy, _dst = proxied
    bulk_load(m.source, ["INBOX"], per_folder=30)
    src_proxy.replace_next(
        rb"^(\S+) OK \[READ-ONLY\].*",
        rb"\1 NO [THROTTLED] Request is throttled. Suggested Backoff Time: 300 milliseconds",
    )
    [summary] = run_to_completion(m, reruns=0)
    assert summary["throttled"] == 1
    assert summary["seconds"] >= 0.3
    assert summary["failures"] == []
    exactly_once(m, ["INBOX"])


def test_half_close_and_refused_reconnects_are_survived(proxied):
    m, src_proxy, _dst = proxied
    bulk_load(m.source, ["INBOX"], per_folder=60)
    src_proxy.half_close_after(50_000)
    [summary] = run_to_completion(m, reruns=0)
    assert src_proxy.faults_fired == 1
    assert summary["failures"] == []
    assert summary["reconnects"] >= 1
    exactly_once(m, ["INBOX"])


def test_budget_spent_reports_the_folder_and_a_rerun_finishes(proxied):
    m, _src, dst_proxy = proxied
    bulk_load(m.source, ["INBOX"], per_folder=40)
    dst_proxy.cut_after(5_000, direction="up")
    dst_proxy.refuse_new(on=True)
    result = m.cli("sync", "--json", "--retries", "2", "--retry-wait", "0.01")
    assert result.exit_code in (1, 3)
    assert "INBOX" in result.stdout or "connect" in (result.stderr or result.stdout)
    dst_proxy.refuse_new(on=False)
    [summary] = run_to_completion(m, reruns=0)
    assert summary["failures"] == []
    exactly_once(m, ["INBOX"])


def test_throttled_first_login_is_waited_for(proxied):
    m, src_proxy, _dst = proxied
    bulk_load(m.source, ["INBOX"], per_folder=5)
    src_proxy.replace_next(
        rb"^(\S+) OK .*Logged in.*",
        rb"\1 NO [UNAVAILABLE] Server Unavailable. 15",
    )
    [summary] = run_to_completion(m, "--connections", "1", reruns=0)
    assert summary["failures"] == []
    assert src_proxy.total_connections == 2  # the first login was refused, the second one worked
    exactly_once(m, ["INBOX"])
