"""Workers on a shared PostgreSQL database: `mailferry worker` processes run one batch's jobs
from the queue (procrastinate) under caps that hold across all of them (counted at the servers,
`doveadm who`); one is killed with SIGKILL mid-copy and one frozen with SIGSTOP, their jobs are
found stalled and run by the others: every mailbox completes, none has a duplicate or a missing
message. Stop, resume and delete reach the jobs of a worker from another process."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import pytest

from mailferry.logs import LEVEL_ENV
from mailferry.sandbox.proxy import Proxy
from tests.e2e.scaleout import (
    COUNT,
    assert_caps_held,
    assert_copied_once,
    start_wave,
    wait_until_all_synced,
    watched,
)
from tests.e2e.test_batch_cli import digests
from tests.e2e.test_database_cli import environment, mailferry
from tests.e2e.test_database_cli import load_mailboxes as load_many

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

MAILBOXES = 8
STALL = 4  # seconds without a worker's heartbeat before its jobs run elsewhere


def worker(env: dict[str, str], concurrency: int = 4) -> subprocess.Popen[str]:
    """A worker process; its stderr in a temporary file (a pipe nobody reads could fill up)."""
    argv = ["worker", "--concurrency", str(concurrency), "--poll", "0.2"]
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - read back and closed by stderr_of
    process = subprocess.Popen(
        [sys.executable, "-m", "mailferry.cli", *argv, "--stall-timeout", str(STALL)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    LOGS[process.pid] = log
    return process


LOGS: dict[int, Any] = {}


def stderr_of(process: subprocess.Popen[str]) -> str:
    """Wait for the worker to end; what it wrote on stderr."""
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    with LOGS.pop(process.pid) as log:
        log.seek(0)
        return str(log.read())


def owners(postgres_server, name: str) -> dict[str, str | None]:
    """mailbox -> the owner running it now (``host:pid:started``)."""
    with postgres_server.admin(name) as conn:
        rows = conn.execute("SELECT email, owner FROM batch_mailboxes WHERE state = 'syncing'")
        return dict(rows.fetchall())


def load_mailboxes(dovecot_slash, dovecot_dot, make_user, tmp_path):
    return load_many(dovecot_slash, dovecot_dot, make_user, tmp_path, MAILBOXES, seed=300, scale=3)


def test_three_workers_one_killed_one_frozen_thirty_mailboxes(
    dovecot_slash, dovecot_dot, make_user, postgres_server, postgres_database, tmp_path
):
    """The issue's suite (``scaleout``): 3 workers, 30 mailboxes, caps 2 (source) and 3
    (target). One worker is killed with SIGKILL mid-copy, another frozen with SIGSTOP past the
    stall timeout and then woken: every mailbox completes, `verify` is clean, `doveadm who` never
    sees more connections than the caps (the frozen worker's sessions stay open and count), the
    woken worker records nothing for the mailbox it lost, and the status lists the killed worker
    as lost. test_serve_scale runs the same suite on SQLite."""
    env = environment(tmp_path, postgres_database)
    name = postgres_database.rsplit("/", 1)[1]
    assert mailferry("db", "upgrade", env=env).returncode == 0
    wave = start_wave(dovecot_slash, dovecot_dot, make_user, tmp_path, env)
    with watched(wave) as (at_source, at_target):
        doomed, frozen, survivor = worker(env), worker(env), worker(env)
        try:
            killed = kill_mid_copy(doomed, postgres_server, name)
            lost_mailbox = wait_for_a_mailbox_of(frozen, postgres_server, name)
            frozen.send_signal(signal.SIGSTOP)
            replaced_by = wait_for_new_owner(
                postgres_server, name, lost_mailbox, frozen.pid, timeout=120
            )
            frozen.send_signal(signal.SIGCONT)
            report = wait_until_all_synced(env, timeout=300, count=COUNT)
        finally:
            for process in (doomed, frozen, survivor):
                if process.poll() is None:
                    process.send_signal(signal.SIGCONT)
                    process.send_signal(signal.SIGTERM)
            stderr_of(doomed)
            woken, err = stderr_of(frozen), stderr_of(survivor)
        assert survivor.returncode == 0, err
        assert frozen.returncode == 0, woken
    assert killed, "the killed worker ran no mailbox; raise the corpus scale"
    assert f":{frozen.pid}:" not in replaced_by
    assert report["counts"] == {"synced": COUNT}, report["counts"]
    host = socket.gethostname()
    assert {w["worker"]: w["lost"] for w in report["workers"]}[f"{host}:{doomed.pid}"] is True
    assert_caps_held(at_source, at_target)
    with postgres_server.admin(name) as conn:
        runs = conn.execute(
            "SELECT count(*) FROM batch_runs WHERE email = %s", (lost_mailbox,)
        ).fetchone()
    assert runs == (1,), woken  # the woken worker recorded nothing for the mailbox it lost
    assert_copied_once(wave)


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
    process.wait(timeout=30)
    return mine


def test_a_frozen_worker_is_replaced_and_stops_when_it_wakes(
    dovecot_slash, dovecot_dot, make_user, postgres_server, postgres_database, tmp_path
):
    """SIGSTOP past the stall timeout: the other worker runs the frozen one's mailbox; SIGCONT:
    the woken worker learns at its next progress write that it was replaced, and stops."""
    env = environment(tmp_path, postgres_database)
    name = postgres_database.rsplit("/", 1)[1]
    sources, targets, csv_path = load_mailboxes(dovecot_slash, dovecot_dot, make_user, tmp_path)
    for args in (
        ["db", "upgrade"],
        ["endpoint", "add", "old", "--host", "127.0.0.1", "--port", str(dovecot_slash.port),
         "--security", "none", "--max-connections", "4"],
        ["endpoint", "add", "new", "--host", "127.0.0.1", "--port", str(dovecot_dot.port),
         "--security", "none", "--max-connections", "4"],
        ["batch", "create", "wave", "--source", "old", "--target", "new", "--csv", str(csv_path)],
        ["batch", "start", "wave", "--detach"],
    ):  # fmt: skip
        assert mailferry(*args, env=env).returncode == 0, args
    # The frozen worker's connections stay open at the servers, so its slots stay taken: the
    # caps leave room for the other worker beside them.
    frozen, other = worker(env, concurrency=2), worker(env, concurrency=2)
    try:
        email = wait_for_a_mailbox_of(frozen, postgres_server, name)
        frozen.send_signal(signal.SIGSTOP)
        new_owner = wait_for_new_owner(postgres_server, name, email, frozen.pid, timeout=120)
        assert f":{other.pid}:" in new_owner
        frozen.send_signal(signal.SIGCONT)
        report = wait_until_all_synced(env, timeout=240, count=MAILBOXES)
    finally:
        for process in (frozen, other):
            process.send_signal(signal.SIGCONT)
            process.send_signal(signal.SIGTERM)
        woken = stderr_of(frozen)  # waits for both: no process outlives the test
        print("frozen worker:", woken, "other worker:", stderr_of(other), sep="\n")  # noqa: T201
    assert report["counts"] == {"synced": MAILBOXES}
    with postgres_server.admin(name) as conn:
        runs = conn.execute("SELECT email FROM batch_runs WHERE email = %s", (email,)).fetchall()
    assert len(runs) == 1, woken  # the woken worker recorded no run of the mailbox it lost
    for (su, sp), (tu, tp) in zip(sources, targets, strict=True):
        over = digests(dovecot_dot, tu, tp) - digests(dovecot_slash, su, sp)
        assert not over, f"{tu}: {sum(over.values())} duplicated messages"


def wait_for_a_mailbox_of(process: subprocess.Popen[str], postgres_server, name: str) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for email, owner in owners(postgres_server, name).items():
            if f":{process.pid}:" in (owner or ""):
                return email
        time.sleep(0.05)
    raise AssertionError("the worker ran no mailbox; raise the corpus scale")


def wait_for_new_owner(postgres_server, name: str, email: str, old_pid: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with postgres_server.admin(name) as conn:
            row = conn.execute(
                "SELECT owner FROM batch_mailboxes WHERE email = %s", (email,)
            ).fetchone()
        owner = row[0] if row else None
        if owner and f":{old_pid}:" not in owner:
            return str(owner)
        time.sleep(0.2)
    raise AssertionError(f"{email} was not taken over from the frozen worker")


def test_stop_and_resume_reach_the_jobs_of_a_worker(
    dovecot_slash, dovecot_dot, make_user, postgres_server, postgres_database, tmp_path
):
    """`batch stop` from another process stops the jobs running on a worker after their burst
    in flight (the queued ones never start); `batch resume` runs them to the end."""
    env = environment(tmp_path, postgres_database)
    name = postgres_database.rsplit("/", 1)[1]
    sources, targets, csv_path = load_mailboxes(dovecot_slash, dovecot_dot, make_user, tmp_path)
    for args in (
        ["db", "upgrade"],
        ["endpoint", "add", "old", "--host", "127.0.0.1", "--port", str(dovecot_slash.port),
         "--security", "none"],
        ["endpoint", "add", "new", "--host", "127.0.0.1", "--port", str(dovecot_dot.port),
         "--security", "none"],
        ["batch", "create", "wave", "--source", "old", "--target", "new", "--csv", str(csv_path)],
        ["batch", "start", "wave", "--detach"],
    ):  # fmt: skip
        assert mailferry(*args, env=env).returncode == 0, args
    process = worker(env, concurrency=2)
    try:
        wait_for_a_mailbox_of(process, postgres_server, name)
        assert mailferry("batch", "stop", "wave", env=env).returncode == 0
        stopped = wait_until_none_running(env, timeout=60)
        assert process.poll() is None  # the worker goes on, with nothing to run
        assert mailferry("batch", "resume", "wave", env=env).returncode == 0
        report = wait_until_all_synced(env, timeout=240, count=MAILBOXES)
    finally:
        process.send_signal(signal.SIGTERM)
        err = stderr_of(process)
    assert process.returncode == 0, err
    assert "stopped" in stopped["counts"], stopped
    assert stopped["counts"].get("synced", 0) < MAILBOXES
    assert report["counts"] == {"synced": MAILBOXES}
    for (su, sp), (tu, tp) in zip(sources, targets, strict=True):
        over = digests(dovecot_dot, tu, tp) - digests(dovecot_slash, su, sp)
        assert not over, f"{tu}: {sum(over.values())} duplicated messages"


def wait_until_none_running(env: dict[str, str], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = json.loads(mailferry("batch", "status", "wave", "--json", env=env).stdout)
        if not {"syncing", "queued"} & set(report["counts"]):
            return report
        time.sleep(0.3)
    raise AssertionError(f"still running after the stop: {report['counts']}")


def test_delete_aborts_the_running_jobs_of_a_worker_and_a_rerun_duplicates_nothing(
    dovecot_slash, dovecot_dot, make_user, postgres_server, postgres_database, tmp_path, request
):
    """`batch delete` of a running batch reaches the worker's jobs through procrastinate's
    abort: they stop after their burst in flight, well before their mailbox is copied, and free
    their slots; the batch made again from the same CSV completes without a duplicate. The
    worker is listed (`batch status --json`) with the mailboxes it runs while it runs them."""
    env = {**environment(tmp_path, postgres_database), LEVEL_ENV: "info"}
    # 100 ms each way to the target: a mailbox takes seconds, long enough to be caught mid-copy.
    slow_target = Proxy("127.0.0.1", dovecot_dot.port, latency=0.1)
    slow_target.start()
    request.addfinalizer(slow_target.stop)
    name = postgres_database.rsplit("/", 1)[1]
    sources, targets, csv_path = load_mailboxes(dovecot_slash, dovecot_dot, make_user, tmp_path)
    create = [
        "batch",
        "create",
        "wave",
        "--source",
        "old",
        "--target",
        "new",
        "--csv",
        str(csv_path),
    ]
    for args in (
        ["db", "upgrade"],
        ["endpoint", "add", "old", "--host", "127.0.0.1", "--port", str(dovecot_slash.port),
         "--security", "none"],
        ["endpoint", "add", "new", "--host", "127.0.0.1", "--port", str(slow_target.port),
         "--security", "none"],
        create,
        ["batch", "start", "wave", "--detach"],
    ):  # fmt: skip
        assert mailferry(*args, env=env).returncode == 0, args
    process = worker(env, concurrency=2)
    try:
        wait_for_a_mailbox_of(process, postgres_server, name)
        listed_with_its_mailboxes(env, f"{socket.gethostname()}:{process.pid}")
        email = a_mailbox_half_copied(postgres_server, name, process.pid)
        asked = time.monotonic()
        deleted = mailferry("batch", "delete", "wave", "--yes", env=env)
        assert deleted.returncode == 0, deleted.stderr
        wait_until_no_job_runs(postgres_server, name, timeout=60)
        stopped_after = time.monotonic() - asked
        with postgres_server.admin(name) as conn:
            (running,) = conn.execute("SELECT running FROM batch_workers").fetchone()
        assert running == 0
        partial = {
            tu: sum(digests(dovecot_dot, tu, tp).values())
            for (su, _), (tu, tp) in zip(sources, targets, strict=True)
            if f"{tu}@new.example" == email
        }
        assert mailferry(*create, env=env).returncode == 0
        assert mailferry("batch", "start", "wave", "--detach", env=env).returncode == 0
        report = wait_until_all_synced(env, timeout=240, count=MAILBOXES)
    finally:
        process.send_signal(signal.SIGTERM)
        err = stderr_of(process)
    assert process.returncode == 0, err
    assert "job.aborted" in err, err  # procrastinate's abort reached the job body
    assert stopped_after < 10, f"the aborted job ran {stopped_after:.1f} s after the delete"
    assert report["counts"] == {"synced": MAILBOXES}
    (copied,) = partial.values()
    whole = next(m for m in report["mailboxes"] if m["mailbox"] == email)
    total = whole["messages_copied"] + whole["messages_existing"]
    assert 0 < copied < total * 0.8, (copied, total)  # stopped well before its end
    for (su, sp), (tu, tp) in zip(sources, targets, strict=True):
        over = digests(dovecot_dot, tu, tp) - digests(dovecot_slash, su, sp)
        assert not over, f"{tu}: {sum(over.values())} duplicated messages"


def listed_with_its_mailboxes(env: dict[str, str], me: str) -> dict:
    """`batch status --json` lists the worker alive, running jobs (its row beats every few
    seconds), and names it on the mailboxes it runs."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        report = json.loads(mailferry("batch", "status", "wave", "--json", env=env).stdout)
        alive = [w for w in report["workers"] if w["worker"] == me and not w["lost"]]
        runs = [m for m in report["mailboxes"] if m["worker"] == me]
        if alive and alive[0]["jobs_running"] > 0 and runs:
            return report
    raise AssertionError(f"{me} not listed with its mailboxes: {report['workers']}")


def a_mailbox_half_copied(postgres_server, name: str, pid: int) -> str:
    """A mailbox the worker ``pid`` copies, caught in the first half of its messages."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with postgres_server.admin(name) as conn:
            row = conn.execute(
                "SELECT email FROM batch_mailboxes WHERE owner LIKE %s AND done > 0"
                " AND done * 2 < planned LIMIT 1",
                (f"%:{pid}:%",),
            ).fetchone()
        if row:
            return str(row[0])
        time.sleep(0.02)
    raise AssertionError("no mailbox caught half copied; raise the corpus scale")


def wait_until_no_job_runs(postgres_server, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with postgres_server.admin(name) as conn:
            (doing,) = conn.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'"
            ).fetchone()
            (running,) = conn.execute(
                "SELECT coalesce(sum(running), 0) FROM batch_workers"
            ).fetchone()
        if doing == 0 and running == 0:
            return
        time.sleep(0.1)
    raise AssertionError("the jobs still run after the delete")
