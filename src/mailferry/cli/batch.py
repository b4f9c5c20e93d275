"""``mailferry endpoint ...``, ``mailferry batch ...`` and ``mailferry serve``: thin click
commands over ``service.batches`` (the API the web layer calls too). This module has the batch
commands and registers every service command (endpoint.py, serve.py) with ``mailferry``.

Exit codes as for ``sync``: 0 done; 1 some mailboxes failed or had message errors; 2 usage or
configuration error; 3 an endpoint cannot be reached or its login fails (``endpoint test``).
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import click
from rich.live import Live
from rich.table import Table

from mailferry import bootstrap
from mailferry.adapters.store.records import MailboxRecord, Outcome
from mailferry.cli.batchstatus import print_status, print_workers, status_table
from mailferry.cli.common import (
    F,
    open_batch_service,
    parse_duration,
    signals,
    state_option,
)
from mailferry.cli.console import err, out
from mailferry.cli.exits import (
    EXIT_FAILED,
    EXIT_OK,
    handle_errors,
)
from mailferry.config import Storage, parse_date
from mailferry.domain.errors import ConfigError
from mailferry.domain.labels import LabelMode
from mailferry.domain.model import MailboxState
from mailferry.domain.workloads import ALL, MailVia, parse_workloads
from mailferry.service.batches import (
    BatchOptions,
    BatchService,
)
from mailferry.service.batchpages import MailboxQuery
from mailferry.service.graphjobs import batch_note


def register(main: click.Group) -> None:
    """Add the service commands to the ``mailferry`` group."""
    from mailferry.cli.db import db  # noqa: PLC0415 - one import site for all
    from mailferry.cli.endpoint import endpoint  # noqa: PLC0415 - one import site for all
    from mailferry.cli.serve import admin, serve, token  # noqa: PLC0415 - one import site for all
    from mailferry.cli.worker import worker  # noqa: PLC0415 - one import site for all

    main.add_command(endpoint)
    main.add_command(batch)
    main.add_command(serve)
    main.add_command(admin)
    main.add_command(token)
    main.add_command(db)
    main.add_command(worker)


# -- batches -----------------------------------------------------------------------------------------
@click.group()
def batch() -> None:
    """Many mailboxes from a CSV, with a lifecycle, status and reports."""


@batch.command("create")
@click.argument("name")
@click.option("--source", required=True, help="Source endpoint.")
@click.option("--target", required=True, help="Target endpoint.")
@click.option("--csv", "csv_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--since", metavar="YYYY-MM-DD")
@click.option("--before", metavar="YYYY-MM-DD")
@click.option("--include-deleted", is_flag=True)
@click.option(
    "--neutralise-read-receipts",
    is_flag=True,
    help="Rename read-receipt request headers (same length) so the target sends no old receipts.",
)
@click.option(
    "--labels",
    type=click.Choice([m.value for m in LabelMode]),
    default=LabelMode.ONCE.value,
    show_default=True,
    help="Gmail sources: a message in several labels is copied once, or once per label folder.",
)
@click.option(
    "--workloads",
    metavar="LIST",
    help=f"What moves, comma-separated: {', '.join(ALL)} (default: all that both endpoints "
    "and the apps' permissions allow). One named that cannot move fails its mailboxes.",
)
@click.option(
    "--mail-via",
    type=click.Choice([m.value for m in MailVia]),
    default=None,
    help="Both endpoints Microsoft 365: mail through Graph's mailbox import/export (the "
    "default when the apps may) or IMAP.",
)
@state_option
@handle_errors
def batch_create(name: str, csv_path: Path, **kw: Any) -> None:
    """Create a batch from an Exchange-style CSV (EmailAddress,UserName,Password,...)."""
    problems: list[str] = []
    try:
        workloads = parse_workloads(kw["workloads"])
    except ConfigError as exc:
        problems.extend(exc.problems)
        workloads = None
    options = BatchOptions(
        since=parse_date(kw["since"], "--since", problems),
        before=parse_date(kw["before"], "--before", problems),
        include_deleted=kw["include_deleted"],
        neutralise_read_receipts=kw["neutralise_read_receipts"],
        labels=LabelMode(kw["labels"]),
        workloads=workloads,
        mail_via=MailVia(kw["mail_via"]) if kw["mail_via"] else None,
    )
    try:
        data = csv_path.read_bytes()
    except OSError as exc:
        problems.append(f"cannot read {csv_path}: {exc.strerror}")
        data = b""
    if problems:
        raise ConfigError(problems)
    with open_batch_service(kw["state"]) as service:
        status = service.create_batch(name, kw["source"], kw["target"], data, options)
        note = batch_note(service, kw["source"], kw["target"], options)
    click.echo(f"batch {name}: {len(status.mailboxes)} mailboxes created")
    if note:
        click.echo(f"batch {name}: {note}", err=True)


@batch.command("list")
@state_option
@handle_errors
def batch_list(state: Storage) -> None:
    """Every batch with its state and mailbox counts."""
    with open_batch_service(state) as service:
        statuses = service.batches()
    table = Table()
    for column in ("batch", "source", "target", "state", "mailboxes"):
        table.add_column(column)
    for status in statuses:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(status.counts().items()))
        b = status.batch
        table.add_row(b.name, b.source, b.target, status.state, counts)
    out.print(table)


def _run_options(func: F) -> F:
    for option in (
        click.option("--detach", is_flag=True, help="Only queue it for `mailferry serve`."),
        click.option("--workers", type=click.IntRange(1, 512), default=32, show_default=True),
        state_option,
    ):
        func = option(func)
    return func


@batch.command("start")
@click.argument("name")
@_run_options
@handle_errors
def batch_start(name: str, **kw: Any) -> None:
    """Run the initial pass (foreground, unless `mailferry serve` runs or --detach)."""
    _lifecycle(name, kw, lambda service: service.start(name), "start")


@batch.command("resume")
@click.argument("name")
@_run_options
@handle_errors
def batch_resume(name: str, **kw: Any) -> None:
    """Run stopped and failed mailboxes again."""
    _lifecycle(name, kw, lambda service: service.resume(name), "resume")


@batch.command("sync")
@click.argument("name")
@click.option("--every", metavar="DURATION", help="Keep synced mailboxes current (e.g. 24h).")
@_run_options
@handle_errors
def batch_sync(name: str, every: str | None, **kw: Any) -> None:
    """Run an incremental pass over every mailbox not completed."""
    seconds = parse_duration(every) if every else None
    _lifecycle(name, kw, lambda service: service.sync(name, seconds), "sync")


@batch.command("complete")
@click.argument("name")
@_run_options
@handle_errors
def batch_complete(name: str, **kw: Any) -> None:
    """Run the final incremental pass and mark the mailboxes Completed."""
    _lifecycle(name, kw, lambda service: service.complete(name), "complete")


def _lifecycle(
    name: str, kw: dict[str, Any], request: Callable[[BatchService], int], verb: str
) -> None:
    with open_batch_service(kw["state"]) as service:
        queued = request(service)
        running = service.service_running()
        if kw["detach"] or running:
            who = "the running `mailferry serve`" if running else "`mailferry serve`"
            click.echo(f"batch {name}: {queued} mailboxes queued to {verb}; {who} will run them")
            return
        click.echo(f"batch {name}: {queued} mailboxes to {verb}", err=True)
        _foreground(service, name, kw["workers"])
        status = service.status(name)
    print_status(status)
    bad = any(m.state == MailboxState.FAILED or m.record.errors for m in status.mailboxes)
    sys.exit(EXIT_FAILED if bad else EXIT_OK)


def _foreground(service: BatchService, name: str, workers: int) -> None:
    stop = threading.Event()

    def finished(mailbox: MailboxRecord, outcome: Outcome) -> None:
        if not err.is_terminal:
            reason = f": {outcome.reason}" if outcome.reason else ""
            err.print(f"{mailbox.email}: {outcome.state}{reason}", markup=False)

    scheduler = bootstrap.scheduler(service, batch=name, workers=workers, on_finish=finished)
    with signals(stop):
        if err.is_terminal:
            with Live(
                status_table(service.status(name)), console=err.console, transient=True
            ) as live:
                scheduler.run(
                    stop,
                    until_idle=True,
                    on_tick=lambda: live.update(status_table(service.status(name))),
                )
        else:
            scheduler.run(stop, until_idle=True)
    if stop.is_set():
        click.echo("mailferry: interrupted; `mailferry batch start` resumes", err=True)


@batch.command("stop")
@click.argument("name")
@state_option
@handle_errors
def batch_stop(name: str, state: Storage) -> None:
    """Stop queued mailboxes now and running ones after their burst in flight."""
    with open_batch_service(state) as service:
        stopped = service.stop(name)
    click.echo(f"batch {name}: stop requested ({stopped} queued mailboxes stopped)")


@batch.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask.")
@state_option
@handle_errors
def batch_delete(name: str, yes: bool, state: Storage) -> None:
    """Forget a batch, its stored passwords and reports (mail already copied stays)."""
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete batch {name} and its stored passwords?", abort=True)
    with open_batch_service(state) as service:
        service.delete(name)
    click.echo(f"batch {name} deleted")


QUERY_OPTIONS = {"state": "--only", "page": "--page", "per_page": "--per-page"}


@batch.command("status")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.option("--only", "only", metavar="STATE", help="Only mailboxes in this state.")
@click.option(
    "--errors/--no-errors", default=None, help="Only mailboxes with (without) failed messages."
)
@click.option("--search", default="", metavar="TEXT", help="Only addresses containing TEXT.")
@click.option("--page", default=1, show_default=True, help="Which page of mailboxes.")
@click.option("--per-page", default=100, show_default=True, help="Mailboxes per page (1-1000).")
@state_option
@handle_errors
def batch_status(
    name: str,
    as_json: bool,
    only: str | None,
    errors: bool | None,
    search: str,
    page: int,
    per_page: int,
    state: Storage,
) -> None:
    """Per mailbox: state, folders, messages, bytes, calendar and contact items, errors, ETA;
    a page at a time (the batch's totals always), filtered by state, errors or address."""
    query = MailboxQuery(only, errors, search.strip(), page, per_page).check(QUERY_OPTIONS)
    with open_batch_service(state) as service:
        if as_json:
            report = service.report_json(name, query)
            click.echo(json.dumps(report, indent=2, ensure_ascii=False))
            return
        status = service.status_page(name, query)
        workers = service.workers()
    print_status(status)
    print_workers(workers)


@batch.command("report")
@click.argument("name")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="JSON (with per-message failures).")
@click.option("--failures", is_flag=True, help="The per-message failure list (CSV).")
@state_option
@handle_errors
def batch_report(
    name: str, output: Path | None, as_json: bool, failures: bool, state: Storage
) -> None:
    """Per-mailbox report as CSV (default) or JSON; --failures lists failed messages."""
    kind = "json" if as_json else "failures" if failures else "csv"
    with open_batch_service(state) as service:
        service.batch(name)  # an unknown batch is refused before the file is made
        if output is None:
            _write_report(service, name, sys.stdout, kind)
            return
        try:
            with output.open("w", encoding="utf-8", newline="") as out:
                _write_report(service, name, out, kind)  # streamed: memory stays flat
        except OSError as exc:
            raise ConfigError(f"cannot write {output}: {exc.strerror}") from None
    click.echo(f"report written to {output}", err=True)


def _write_report(service: BatchService, name: str, out: TextIO, kind: str) -> None:
    service.write_report(name, out, kind)
    if kind == "json":
        out.write("\n")
