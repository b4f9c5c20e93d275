"""kill -9 at many moments of a real `mailferry sync` process; the next run completes without duplicates."""

from __future__ import annotations

import json
import random
import signal
import time
from collections import Counter

import pytest

from mailferry.sandbox.corpus import connect
from tests.integration.conftest_helpers import Account, Migration
from tests.integration.mailcheck import snapshot

pytestmark = pytest.mark.integration

FOLDERS = ["INBOX", "Archive", "Archive/2019", "Lists"]


def bulk_load(account: Account, per_folder: int) -> None:
    client = connect(account.server, account.user, account.password)
    try:
        for name in FOLDERS[1:]:
            client.create_folder(name)
        rng = random.Random(7)
        for f, name in enumerate(FOLDERS):
            for i in range(per_folder):
                has_id = i % 5 != 0
                head = f"Message-ID: <k{f}.{i}@kill.test>\r\n" if has_id else ""
                text = "x" * rng.randint(200, 20_000)
                body = f"{head}Subject: kill {f}.{i}\r\nFrom: a@b\r\n\r\n{text}\r\n".encode()
                client.append(name, body, [b"\\Seen"] if i % 2 else [], None)
            # byte-identical twins must stay twins
            client.append(name, b"Subject: twin\r\n\r\ntwin\r\n", [], None)
            client.append(name, b"Subject: twin\r\n\r\ntwin\r\n", [], None)
    finally:
        client.logout()


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
    bulk_load(m.source, per_folder=300)
    rng = random.Random(2026)
    kills = 0
    for _attempt in range(10):
        proc = m.process("--batch-size", "25", "--connections", connections)
        time.sleep(rng.uniform(0.15, 0.9))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=60)
        no_duplicates(m)
    assert kills >= 3, "the migration finished too fast to be interrupted; raise per_folder"
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
