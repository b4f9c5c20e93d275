"""The scale-out suite of issue #15, on either state database: 30 mailboxes on two Dovecot
endpoints capped at 2 (source) and 3 (target) connections, run by `mailferry worker` processes on
PostgreSQL (test_workers) or by one `mailferry serve` on SQLite (test_serve_scale). What both set
up, and what both must find at the end, lives here once so that the two suites cannot drift apart:
every mailbox synced, `verify` clean, no duplicate, the servers never saw more than the caps."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from click.testing import CliRunner

from mailferry.cli.app import main
from mailferry.sandbox.dovecot import DovecotServer
from tests.e2e.test_batch_cli import ConnectionWatch, digests, mailferry
from tests.e2e.test_database_cli import load_mailboxes

COUNT = 30
SOURCE_CAP, TARGET_CAP = 2, 3


@dataclass(frozen=True)
class Wave:
    """The batch "wave" (old -> new), started detached: its logins and the commands' environment."""

    source: DovecotServer
    target: DovecotServer
    sources: list[tuple[str, str]]
    targets: list[tuple[str, str]]
    env: dict[str, str]


def start_wave(dovecot_slash, dovecot_dot, make_user, tmp_path, env: dict[str, str]) -> Wave:
    """Fill 30 source mailboxes, add the two capped endpoints, create and start the batch
    (queued: whatever runs jobs in ``env``'s database picks it up)."""
    sources, targets, csv_path = load_mailboxes(
        dovecot_slash, dovecot_dot, make_user, tmp_path, COUNT, seed=400, scale=1
    )
    for args in (
        ["endpoint", "add", "old", "--host", "127.0.0.1", "--port", str(dovecot_slash.port),
         "--security", "none", "--max-connections", str(SOURCE_CAP)],
        ["endpoint", "add", "new", "--host", "127.0.0.1", "--port", str(dovecot_dot.port),
         "--security", "none", "--max-connections", str(TARGET_CAP)],
        ["batch", "create", "wave", "--source", "old", "--target", "new", "--csv", str(csv_path)],
        ["batch", "start", "wave", "--detach"],
    ):  # fmt: skip
        result = mailferry(*args, env=env)
        assert result.returncode == 0, (args, result.stderr)
    return Wave(dovecot_slash, dovecot_dot, sources, targets, env)


@contextmanager
def watched(wave: Wave) -> Iterator[tuple[ConnectionWatch, ConnectionWatch]]:
    """Count the wave's connections at both servers (`doveadm who`) while the block runs."""
    with (
        ConnectionWatch(wave.source, {su for su, _ in wave.sources}) as at_source,
        ConnectionWatch(wave.target, {tu for tu, _ in wave.targets}) as at_target,
    ):
        yield at_source, at_target


def assert_caps_held(at_source: ConnectionWatch, at_target: ConnectionWatch) -> None:
    """Never more than the caps at either server, and the source cap reached (the watch did see
    the batch run, and the cap is what paced it)."""
    assert at_source.samples > 20
    assert 2 <= at_source.peak <= SOURCE_CAP, f"saw {at_source.peak} source connections"
    assert at_target.peak <= TARGET_CAP, f"saw {at_target.peak} target connections"


def assert_copied_once(wave: Wave) -> None:
    """Every target holds its source: no message twice, and `verify` finds nothing missing and
    the flags and dates kept (it reads the state from ``wave.env``'s database)."""
    for (su, sp), (tu, tp) in zip(wave.sources, wave.targets, strict=True):
        over = digests(wave.target, tu, tp) - digests(wave.source, su, sp)
        assert not over, f"{tu}: {sum(over.values())} duplicated messages"
        verify = CliRunner().invoke(  # in this process: 30 interpreter starts cost half a minute
            main,
            [
                "verify",
                f"imap://{su}@127.0.0.1:{wave.source.port}",
                f"imap://{tu}@127.0.0.1:{wave.target.port}",
            ],
            env={**wave.env, "MAILFERRY_SOURCE_PASSWORD": sp, "MAILFERRY_TARGET_PASSWORD": tp},
            catch_exceptions=False,
        )
        assert verify.exit_code == 0, verify.output


def wait_until_all_synced(env: dict[str, str], timeout: float, count: int) -> dict:
    """`batch status wave --json` once all ``count`` mailboxes are synced (or at the timeout)."""
    deadline = time.monotonic() + timeout
    report: dict = {}
    while time.monotonic() < deadline:
        report = json.loads(mailferry("batch", "status", "wave", "--json", env=env).stdout)
        if report["counts"] == {"synced": count}:
            break
        time.sleep(0.5)
    return report
