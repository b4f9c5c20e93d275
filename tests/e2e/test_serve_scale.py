"""The scale-out suite (``scaleout``: 30 mailboxes, caps 2 and 3) on the embedded mode: one
`mailferry serve` on the SQLite file, its in-process scheduler the only runner. It is killed with
SIGKILL mid-copy and started again, then frozen with SIGSTOP mid-copy and woken.

The SIGSTOP means something else here than among workers: no other process takes a frozen serve's
mailboxes over (on one host a claim lives as long as its pid), so nothing runs them twice and
nothing must notice a replacement. What it must show is that a process woken after longer than
its own heartbeat period (and the worker suite's stall timeout) goes on with the mailboxes it
holds: no claim lost to itself, no pass run twice, its open sessions still counted and still
within the caps while it sleeps."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from tests.e2e.scaleout import (
    COUNT,
    assert_caps_held,
    assert_copied_once,
    start_wave,
    watched,
)
from tests.e2e.test_batch_cli import mailferry, serve
from tests.e2e.test_database_cli import environment

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

FROZEN = 6.0  # seconds: past the scheduler's heartbeat (5 s) and the worker suite's stall (4 s)


def test_serve_killed_and_frozen_thirty_mailboxes(dovecot_slash, dovecot_dot, make_user, tmp_path):
    """`serve` killed mid-copy: its mailboxes show queued, the next `serve` resumes them from
    the per-folder state; that one frozen mid-copy for FROZEN seconds and woken finishes what it
    held in the same pass. Every mailbox synced with exactly one recorded run, `verify` clean, no
    duplicate, `doveadm who` never above the caps (the restart waits until the server has seen
    the killed process's sockets close: the caps are counted in-process on SQLite)."""
    env = environment(tmp_path, None)
    state = Path(env["MAILFERRY_STATE"])
    wave = start_wave(dovecot_slash, dovecot_dot, make_user, tmp_path, env)
    with watched(wave) as (at_source, at_target):
        first = serve(env)
        try:
            wait_for_copying(state, first.pid)
        finally:
            first.send_signal(signal.SIGKILL)
            first.communicate(timeout=30)
        killed = claimed(state, first.pid)  # left behind by the dead process
        after_kill = {m["mailbox"]: m["state"] for m in status(env)["mailboxes"]}
        at_source.wait_idle()
        at_target.wait_idle()
        second = serve(env, "--until-idle")
        try:
            wait_for_copying(state, second.pid)
            second.send_signal(signal.SIGSTOP)
            held = claimed(state, second.pid)
            time.sleep(FROZEN)
            while_frozen = status(env)
            second.send_signal(signal.SIGCONT)
            _out, err = second.communicate(timeout=240)
        finally:
            if second.poll() is None:
                second.send_signal(signal.SIGCONT)
                second.send_signal(signal.SIGTERM)
                second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert all(after_kill[email] == "queued" for email in killed), after_kill
    me = f"{socket.gethostname()}:{second.pid}"
    asleep = {m["mailbox"]: (m["state"], m["worker"]) for m in while_frozen["mailboxes"]}
    assert all(asleep[email] == ("syncing", me) for email in held), asleep
    report = json.loads(mailferry("batch", "report", "wave", "--json", env=env).stdout)
    assert report["counts"] == {"synced": COUNT}, report["counts"]
    resumed = [m for m in report["mailboxes"] if m["mailbox"] in killed]
    assert any(m["messages_existing"] > 0 for m in resumed), resumed  # copied before the kill
    assert runs_per_mailbox(state) == {m["mailbox"]: 1 for m in report["mailboxes"]}
    assert_caps_held(at_source, at_target)
    assert_copied_once(wave)


def wait_for_copying(state: Path, pid: int, timeout: float = 120) -> None:
    """Return once the serve ``pid`` is caught mid-folder: some messages of a mailbox it holds
    copied, not all (a killed serve's rows look the same until they are claimed again)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=10)) as db:
            (caught,) = db.execute(
                "SELECT count(*) FROM batch_mailboxes WHERE state = 'syncing'"
                " AND owner LIKE ? AND done > 0 AND done < planned",
                (f"%:{pid}:%",),
            ).fetchone()
        if caught:
            return
        time.sleep(0.02)
    raise AssertionError("no mailbox caught mid-copy; raise the corpus scale")


def claimed(state: Path, pid: int) -> list[str]:
    """The mailboxes the serve ``pid`` holds (read while it is frozen or dead: nothing changes
    them); its owner token is ``host:pid:started``."""
    with closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=10)) as db:
        rows = db.execute(
            "SELECT email FROM batch_mailboxes WHERE owner LIKE ?", (f"%:{pid}:%",)
        ).fetchall()
    assert rows, f"serve {pid} holds no mailbox"
    return [email for (email,) in rows]


def status(env: dict[str, str]) -> dict:
    """`batch status wave --json`, read by another process."""
    result = mailferry("batch", "status", "wave", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def runs_per_mailbox(state: Path) -> dict[str, int]:
    """How many passes each mailbox recorded (a pass killed mid-copy records none)."""
    with closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT email, count(*) FROM batch_runs WHERE outcome = 'synced' GROUP BY email"
        ).fetchall()
        (others,) = db.execute(
            "SELECT count(*) FROM batch_runs WHERE outcome != 'synced'"
        ).fetchone()
    assert others == 0
    return dict(rows)
