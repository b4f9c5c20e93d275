"""Workers on a shared PostgreSQL database: two `mailferry worker` processes run one batch's jobs
from the queue (procrastinate) under caps that hold across both (counted at the servers, `doveadm
who`); one is killed with SIGKILL mid-copy, its jobs are found stalled and run by the other:
every mailbox completes, none has a duplicate or a missing message."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from mailferry.sandbox.corpus import build_corpus, connect, load_corpus
from tests.e2e.test_batch_cli import ConnectionWatch, digests
from tests.e2e.test_database_cli import environment, mailferry

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

MAILBOXES = 8
SOURCE_CAP, TARGET_CAP = 2, 3
STALL = 4  # seconds without a worker's heartbeat before its jobs run elsewhere


def worker(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailferry.cli",
            "worker",
            "--concurrency",
            "4",
            "--poll",
            "0.2",
            "--stall-timeout",
            str(STALL),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def owners(postgres_server, name: str) -> dict[str, str | None]:
    """mailbox -> the owner running it now (``host:pid:started``)."""
    with postgres_server.admin(name) as conn:
        rows = conn.execute("SELECT email, owner FROM batch_mailboxes WHERE state = 'syncing'")
        return dict(rows.fetchall())


def load_mailboxes(dovecot_slash, dovecot_dot, make_user, tmp_path):
    sources, targets = [], []
    for i in range(MAILBOXES):
        user, password = make_user(dovecot_slash)
        client = connect(dovecot_slash, user, password)
        try:
            load_corpus(client, build_corpus(300 + i, scale=3), dovecot_slash.delimiter)
        finally:
            client.logout()
        sources.append((user, password))
        targets.append(make_user(dovecot_dot))
    lines = ["EmailAddress,UserName,Password,TargetUserName,TargetPassword"]
    lines += [
        f"{tu}@new.example,{su},{sp},{tu},{tp}"
        for (su, sp), (tu, tp) in zip(sources, targets, strict=True)
    ]
    csv_path = tmp_path / "wave.csv"
    csv_path.write_text("\r\n".join(lines) + "\r\n")
    return sources, targets, csv_path


def test_two_workers_one_killed_mid_copy(
    dovecot_slash, dovecot_dot, make_user, postgres_server, postgres_database, tmp_path
):
    env = environment(tmp_path, postgres_database)
    name = postgres_database.rsplit("/", 1)[1]
    sources, targets, csv_path = load_mailboxes(dovecot_slash, dovecot_dot, make_user, tmp_path)
    for args in (
        ["db", "upgrade"],
        ["endpoint", "add", "old", "--host", "127.0.0.1", "--port", str(dovecot_slash.port),
         "--security", "none", "--max-connections", str(SOURCE_CAP)],
        ["endpoint", "add", "new", "--host", "127.0.0.1", "--port", str(dovecot_dot.port),
         "--security", "none", "--max-connections", str(TARGET_CAP)],
        ["batch", "create", "wave", "--source", "old", "--target", "new", "--csv", str(csv_path)],
        ["batch", "start", "wave", "--detach"],
    ):  # fmt: skip
        result = mailferry(*args, env=env)
        assert result.returncode == 0, (args, result.stderr)

    source_users = {su for su, _ in sources}
    target_users = {tu for tu, _ in targets}
    with (
        ConnectionWatch(dovecot_slash, source_users) as at_source,
        ConnectionWatch(dovecot_dot, target_users) as at_target,
    ):
        doomed, survivor = worker(env), worker(env)
        killed = kill_mid_copy(doomed, postgres_server, name)
        taken_over = wait_until_all_synced(env, timeout=240)
        survivor.send_signal(signal.SIGTERM)
        _out, err = survivor.communicate(timeout=60)
        assert survivor.returncode == 0, err
    assert "job.stalled" in err, err  # the queue found the killed worker's job and ran it again
    assert killed, "the killed worker ran no mailbox; raise the corpus scale"
    assert taken_over["counts"] == {"synced": MAILBOXES}
    assert at_source.samples > 20
    assert 2 <= at_source.peak <= SOURCE_CAP, f"saw {at_source.peak} source connections"
    assert at_target.peak <= TARGET_CAP, f"saw {at_target.peak} target connections"
    for (su, sp), (tu, tp) in zip(sources, targets, strict=True):
        over = digests(dovecot_dot, tu, tp) - digests(dovecot_slash, su, sp)
        assert not over, f"{tu}: {sum(over.values())} duplicated messages"
        verify = mailferry(  # nothing missing, flags and dates kept
            "verify",
            f"imap://{su}@127.0.0.1:{dovecot_slash.port}",
            f"imap://{tu}@127.0.0.1:{dovecot_dot.port}",
            "--database",
            postgres_database,
            env={**env, "MAILFERRY_SOURCE_PASSWORD": sp, "MAILFERRY_TARGET_PASSWORD": tp},
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr


def kill_mid_copy(process: subprocess.Popen[str], postgres_server, name: str) -> list[str]:
    """SIGKILL the worker while it copies a mailbox (and another one is done); what it ran."""
    deadline = time.monotonic() + 120
    mine: list[str] = []
    while time.monotonic() < deadline and not mine:
        running = owners(postgres_server, name)
        mine = [email for email, owner in running.items() if f":{process.pid}:" in (owner or "")]
        if not mine:
            time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    return mine


def wait_until_all_synced(env: dict[str, str], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    report: dict = {}
    while time.monotonic() < deadline:
        report = json.loads(mailferry("batch", "status", "wave", "--json", env=env).stdout)
        if report["counts"] == {"synced": MAILBOXES}:
            break
        time.sleep(0.5)
    return report
