"""What a first pass costs in commands per folder, counted by the sandbox proxy (issue 17 rule 6:
over a WAN every round trip a folder waits for is time the copy does not overlap).

A folder's STATUS is the SELECT (EXAMINE on the source) its pass needs anyway: no STATUS command
is sent for a folder the run copies, and each folder is selected once on each side, however many
of its messages are listed and copied.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from mailferry.sandbox.proxy import Proxy
from tests.integration.conftest_helpers import Account, Migration, bulk_load

TAGGED = rb"^\S+ (OK|NO|BAD) "
FOLDERS = ["INBOX", "Alpha", "Beta", "Gamma", "Delta"]


def _commands(proxy: Proxy) -> Counter[str]:
    """Tagged answers by what Dovecot says completed (``Select``, ``Examine``, ``Status``...)."""
    kinds: Counter[str] = Counter()
    for line in proxy.seen(TAGGED):
        found = re.search(rb"(?:OK|NO|BAD) (?:\[[^\]]*\] )?(\w+)", line)
        kinds[found.group(1).decode() if found else "?"] += 1
    return kinds


@pytest.mark.parametrize("connections", ["1", "3"])
def test_a_first_pass_selects_each_folder_once_and_sends_no_status(
    dovecot_slash, dovecot_dot, make_user, tmp_path, connections
):
    source = Account(dovecot_slash, *make_user(dovecot_slash))
    target = Account(dovecot_dot, *make_user(dovecot_dot))
    bulk_load(source, FOLDERS, per_folder=6)
    with (
        Proxy("127.0.0.1", dovecot_slash.port) as src_proxy,
        Proxy("127.0.0.1", dovecot_dot.port) as dst_proxy,
    ):
        src_proxy.watch(TAGGED)
        dst_proxy.watch(TAGGED)
        source.via_port, target.via_port = src_proxy.port, dst_proxy.port
        m = Migration(source, target, tmp_path / "state.sqlite3")
        code, summary = m.sync_json("--connections", connections)
        assert code == 0, summary
        assert summary["messages_copied"] == len(FOLDERS) * 8
        src, dst = _commands(src_proxy), _commands(dst_proxy)
        code, again = m.sync_json("--connections", connections)
        assert code == 0 and again["messages_copied"] == 0, again
        src_again = _commands(src_proxy) - src
        dst_again = _commands(dst_proxy) - dst
    assert src["Status"] == 0 and dst["Status"] == 0, (src, dst)
    # The listing reuses the EXAMINE's counts; one more EXAMINE INBOX, read-only, opens INBOX
    # around the LIST asking STATUS (statuses.py), in its round trip.
    assert src["Examine"] == len(FOLDERS) + 1, src
    assert dst["Select"] == len(FOLDERS), dst
    # The run's start reads every source folder's status with its listing, one LIST returning
    # STATUS too, and the target's, once its folders exist, in a LIST-STATUS after the CREATEs:
    # a first pass takes the target folder's status from it, and selects the folder only for
    # its APPENDs.
    assert src["List"] == 1, src
    assert dst["List"] == 2, dst
    # A pass with nothing to do: one LIST a side (folders, subscriptions and statuses at once),
    # between an EXAMINE of INBOX and its UNSELECT, written together; no other folder opened,
    # no STATUS, no SUBSCRIBE.
    for again in (src_again, dst_again):
        assert (again["List"], again["Examine"], again["Unselect"]) == (1, 1, 1), again
        assert not {"Status", "Select", "Subscribe"} & set(again), again
