"""``mailferry worker``: runs queued mailboxes from a shared PostgreSQL state database, on as
many machines as wanted, next to one ``mailferry serve --no-worker`` (web, API, scheduled passes).

Each worker claims pending mailboxes one at a time (a claim is one row update: never two workers
on one mailbox), holds connection slots shared by every worker (advisory locks, see
adapters/store/slots.py), and beats its heart into the mailboxes it runs. A worker that dies is
found out by the others (at once on the same host, by a stale heartbeat elsewhere) and its
mailboxes are taken over; the per-folder state makes the re-run resume without a duplicate.
"""

from __future__ import annotations

import os
import threading

import click

from mailferry.bootstrap.workers import run_worker
from mailferry.cli.common import open_batch_service, signals, state_option
from mailferry.cli.exits import handle_errors
from mailferry.config import Storage
from mailferry.domain.errors import ConfigError


@click.command()
@click.option(
    "--concurrency",
    type=click.IntRange(1, 512),
    default=8,
    show_default=True,
    help="Mailboxes this worker runs at once (each holds one source and one target connection).",
)
@click.option("--poll", type=float, default=2.0, show_default=True, help="Seconds between looks.")
@click.option("--until-idle", is_flag=True, help="Exit when nothing is queued (cron, tests).")
@click.option(
    "--stall-timeout",
    "stall",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Seconds without a worker's heartbeat after which its jobs run on another worker.",
)
@state_option
@handle_errors
def worker(concurrency: int, poll: float, until_idle: bool, stall: float, state: Storage) -> None:
    """Run queued mailboxes from a shared state database until SIGTERM/SIGINT."""
    if not state.database or not state.database.startswith("postgresql"):
        raise ConfigError(
            "mailferry worker needs a shared state database: --database postgresql://... "
            "(or $MAILFERRY_DATABASE)"
        )
    stop = threading.Event()

    def ready() -> None:
        pid = os.getpid()
        click.echo(f"mailferry worker: running (pid {pid}, concurrency {concurrency})", err=True)

    with open_batch_service(state) as service, signals(stop):
        run_worker(
            service, stop, concurrency=concurrency, poll=poll, stall=stall,
            until_idle=until_idle, on_ready=ready,
        )  # fmt: skip
    click.echo("mailferry worker: stopped; its mailboxes resume on another worker", err=True)
