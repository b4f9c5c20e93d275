"""A batch of 8 mailboxes through the real commands: `endpoint add`, `batch create`, `batch start
--detach`, `mailferry serve` killed with SIGKILL mid-batch and started again.

Watched from the source server itself (`doveadm who`): never more than --max-connections 3.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Self

import pytest
from click.testing import CliRunner

from mailferry.cli.app import main
from mailferry.sandbox.corpus import build_corpus, connect, load_corpus
from mailferry.sandbox.dovecot import DovecotServer

pytestmark = pytest.mark.e2e

SOURCE_CAP = 3


def mailferry(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailferry.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def serve(env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mailferry.cli", "serve", "--no-web", "--poll", "0.2", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def batch_status(env: dict[str, str]) -> dict[str, Any]:
    """`mailferry batch status wave1 --json`, run in this process (reads the state file in WAL)."""
    result = CliRunner().invoke(
        main, ["batch", "status", "wave1", "--json"], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.output)
    return report


class ConnectionWatch:
    """Polls `doveadm who` on a server; remembers the most connections ever seen for some users."""

    def __init__(self, server: DovecotServer, users: set[str]) -> None:
        self.server = server
        self.users = users
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def count(self) -> int:
        total = 0
        for line in self.server.doveadm("who").splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 2 and fields[0] in self.users and fields[1].isdigit():
                total += int(fields[1])
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.count())
            self.samples += 1
            self._stop.wait(0.02)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def wait_idle(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while self.count() and time.monotonic() < deadline:
            time.sleep(0.05)


def digests(server: DovecotServer, user: str, password: str) -> Counter[str]:
    """The content of a whole account as a multiset of SHA-256 (folder names aside)."""
    client = connect(server, user, password)
    found: Counter[str] = Counter()
    try:
        for flags, _delim, name in client.list_folders():
            if any(f.lower() == b"\\noselect" for f in flags):
                continue
            client.select_folder(name, readonly=True)
            uids = client.search("ALL")
            for start in range(0, len(uids), 200):
                rows = client.fetch(uids[start : start + 200], ["BODY.PEEK[]"])
                found.update(hashlib.sha256(r[b"BODY[]"]).hexdigest() for r in rows.values())
    finally:
        client.logout()
    return found


@pytest.fixture(scope="module")
def quota_target(tmp_path_factory):
    with DovecotServer(
        tmp_path_factory.mktemp("batch_target"), delimiter=".", quota_bytes=10**9
    ) as server:
        yield server


def test_batch_of_8_capped_killed_and_resumed(dovecot_slash, quota_target, make_user, tmp_path):
    sources, targets = [], []
    for i in range(8):
        user, password = make_user(dovecot_slash)
        client = connect(dovecot_slash, user, password)
        try:
            load_corpus(client, build_corpus(100 + i, scale=3), dovecot_slash.delimiter)
        finally:
            client.logout()
        sources.append((user, password))
        targets.append(make_user(quota_target))
    wrong, full = 6, 7
    quota_target.set_quota(targets[full][0], 40_000)
    lines = ["EmailAddress,UserName,Password,TargetUserName,TargetPassword"]
    for i, ((su, sp), (tu, tp)) in enumerate(zip(sources, targets, strict=True)):
        password = "not-the-password" if i == wrong else sp
        lines.append(f"{tu}@new.example,{su},{password},{tu},{tp}")
    csv_path = tmp_path / "wave1.csv"
    csv_path.write_text("\r\n".join(lines) + "\r\n")
    state = tmp_path / "data" / "state.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILFERRY_")}
    env["MAILFERRY_STATE"] = str(state)

    for args in (
        ["endpoint", "add", "old", "--host", "127.0.0.1", "--port", str(dovecot_slash.port),
         "--security", "none", "--max-connections", str(SOURCE_CAP)],
        ["endpoint", "add", "new", "--host", "127.0.0.1", "--port", str(quota_target.port),
         "--security", "none"],
        ["batch", "create", "wave1", "--source", "old", "--target", "new", "--csv", str(csv_path)],
        ["batch", "start", "wave1", "--detach"],
    ):  # fmt: skip
        result = mailferry(*args, env=env)
        assert result.returncode == 0, (args, result.stderr)
    assert oct((state.parent / "secret.key").stat().st_mode & 0o777) == "0o600"
    assert all(sp.encode() not in state.read_bytes() for _su, sp in sources)

    source_users = {su for su, _sp in sources}
    with ConnectionWatch(dovecot_slash, source_users) as watch:
        first = serve(env)
        killed_mid_batch = False
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            report = batch_status(env)  # in-process: a poll takes milliseconds, not a start-up
            running = [m for m in report["mailboxes"] if m["state"] == "syncing"]
            done = [m for m in report["mailboxes"] if m["state"] in ("synced", "failed")]
            if running and done:
                killed_mid_batch = True
                break
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
        assert killed_mid_batch, "the batch ended before it could be killed; raise scale"
        watch.wait_idle()  # the server has seen the killed process's sockets close

        second = serve(env, "--until-idle")
        _out, err = second.communicate(timeout=300)
        assert second.returncode == 0, err
    assert watch.samples > 20
    assert 2 <= watch.peak <= SOURCE_CAP, f"saw {watch.peak} source connections at once"

    report = json.loads(mailferry("batch", "status", "wave1", "--json", env=env).stdout)
    states = {m["source_user"]: m for m in report["mailboxes"]}
    good = [i for i in range(8) if i not in (wrong, full)]
    for i in good:
        row = states[sources[i][0]]
        assert row["state"] == "synced", row
        assert row["messages_failed"] == 0, row
    assert states[sources[wrong][0]]["state"] == "failed"
    assert "login refused" in states[sources[wrong][0]]["reason"]
    assert states[sources[full][0]]["state"] == "failed"
    assert "full" in states[sources[full][0]]["reason"]
    assert report["counts"] == {"synced": 6, "failed": 2}

    for i in good:
        (su, sp), (tu, tp) = sources[i], targets[i]
        over = digests(quota_target, tu, tp) - digests(dovecot_slash, su, sp)
        assert not over, f"{tu}: {sum(over.values())} duplicated messages"
        verify = CliRunner().invoke(
            main,
            [
                "verify",
                f"imap://{su}@127.0.0.1:{dovecot_slash.port}",
                f"imap://{tu}@127.0.0.1:{quota_target.port}",
                "--state",
                str(state),
            ],
            env={"MAILFERRY_SOURCE_PASSWORD": sp, "MAILFERRY_TARGET_PASSWORD": tp},
            catch_exceptions=False,
        )
        assert verify.exit_code == 0, verify.output

    report_csv = tmp_path / "wave1-report.csv"
    result = mailferry("batch", "report", "wave1", "-o", str(report_csv), env=env)
    assert result.returncode == 0, result.stderr
    text = report_csv.read_text()
    assert text.startswith("mailbox,source_user,target_user,state,reason")
    assert "login refused" in text
    for _su, sp in sources:
        assert sp not in text
    status = mailferry("batch", "status", "wave1", env=env)
    assert status.returncode == 0
    assert "synced" in status.stdout


def test_batch_commands_report_problems_in_one_line_each(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILFERRY_")}
    env["MAILFERRY_STATE"] = str(tmp_path / "state.sqlite3")
    bad = mailferry("batch", "status", "nope", env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "mailferry: no batch 'nope' (see `mailferry batch list`)"
    result = mailferry(
        "endpoint", "add", "x", "--host", "mail.example", "--security", "none", env=env
    )
    assert result.returncode == 2
    assert "unencrypted" in result.stderr
    assert "Traceback" not in result.stderr
    ok = mailferry("endpoint", "add", "x", "--host", "127.0.0.1", "--security", "none", env=env)
    assert ok.returncode == 0, ok.stderr
    csv_path = Path(tmp_path / "b.csv")
    csv_path.write_text("EmailAddress,UserName,Password\nnot-an-address,u,p\n=cmd@x.example,u,\n")
    result = mailferry(
        "batch", "create", "b", "--source", "x", "--target", "x", "--csv", str(csv_path), env=env
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "mailferry: line 2: EmailAddress 'not-an-address' is not a valid address",
        "mailferry: line 2: TargetPassword is empty (and the target endpoint has no admin login)",
        "mailferry: line 3: Password is empty (and the source endpoint has no admin login)",
        "mailferry: line 3: TargetPassword is empty (and the target endpoint has no admin login)",
    ]


def test_endpoint_test_sigterm_and_foreground_runs(dovecot_slash, dovecot_dot, make_user, tmp_path):
    made = []
    for i in range(2):
        su, sp = make_user(dovecot_slash)
        client = connect(dovecot_slash, su, sp)
        try:
            load_corpus(client, build_corpus(300 + i, scale=6), dovecot_slash.delimiter)
        finally:
            client.logout()
        made.append((su, sp, *make_user(dovecot_dot)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILFERRY_")}
    env["MAILFERRY_STATE"] = str(tmp_path / "state.sqlite3")
    for name, server in (("old", dovecot_slash), ("new", dovecot_dot)):
        args = ["endpoint", "add", name, "--host", "127.0.0.1", "--port", str(server.port)]
        assert mailferry(*args, "--security", "none", env=env).returncode == 0

    su, sp = made[0][:2]
    probe = mailferry(
        "endpoint", "test", "old", "--user", su, env={**env, "MAILFERRY_PASSWORD": sp}
    )
    assert probe.returncode == 0, probe.stderr
    assert "login ok" in probe.stdout
    assert "IMAP4REV1" in probe.stdout
    bad_env = {**env, "MAILFERRY_PASSWORD": "wr0ng-pw-zz"}
    wrong = mailferry("endpoint", "test", "old", "--user", su, env=bad_env)
    assert wrong.returncode == 3
    assert "login refused" in wrong.stderr
    assert "wr0ng-pw-zz" not in wrong.stderr + wrong.stdout

    rows = ["EmailAddress,UserName,Password,TargetUserName,TargetPassword"]
    rows += [f"{tu}@new.example,{su},{sp},{tu},{tp}" for su, sp, tu, tp in made]
    csv_path = tmp_path / "b.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    create = ["batch", "create", "b", "--source", "old", "--target", "new", "--csv", str(csv_path)]
    assert mailferry(*create, env=env).returncode == 0
    assert mailferry("batch", "start", "b", "--detach", env=env).returncode == 0

    service = serve(env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        report = json.loads(mailferry("batch", "status", "b", "--json", env=env).stdout)
        if any(m["state"] == "syncing" for m in report["mailboxes"]):
            break
        time.sleep(0.05)
    service.send_signal(signal.SIGTERM)
    _out, err = service.communicate(timeout=60)
    assert service.returncode == 0, err
    assert "stopped; queued mailboxes resume" in err
    report = json.loads(mailferry("batch", "status", "b", "--json", env=env).stdout)
    assert {m["state"] for m in report["mailboxes"]} <= {"queued", "synced"}, report

    start = mailferry("batch", "start", "b", env=env)  # no service now: runs in the foreground
    assert start.returncode == 0, start.stderr
    assert "batch b (old -> new): synced" in start.stdout
    complete = mailferry("batch", "complete", "b", env=env)
    assert complete.returncode == 0, complete.stderr
    report = json.loads(mailferry("batch", "report", "b", "--json", env=env).stdout)
    assert report["counts"] == {"completed": 2}
    for su, sp, tu, tp in made:
        over = digests(dovecot_dot, tu, tp) - digests(dovecot_slash, su, sp)
        assert not over
