"""``mailferry sync`` and ``mailferry verify``: one pair of accounts, from the command line."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from mailferry.bootstrap import (
    BATCH_COUNT,
    Side,
    SyncRequest,
    endpoints,
    open_pair,
    run_sync,
    run_verify,
)
from mailferry.bootstrap.dav import is_dav_url
from mailferry.bootstrap.graph import Routes, is_m365_url
from mailferry.cli.dav import (
    dav_options,
    merged_json,
    print_dav_summary,
    print_dav_verify,
    run_dav_sync,
    run_dav_verify,
)
from mailferry.cli.exits import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STOPPED,
    handle_errors,
)
from mailferry.cli.graph import (
    forget_delivered,
    graph_options,
    print_mailbox_summary,
    print_mailbox_verify,
    print_skipped,
    request_routes,
    run_mailbox_sync,
    run_mailbox_verify,
)
from mailferry.cli.options import common_options
from mailferry.cli.terminal import print_plan, print_summary, print_verify, progress_display
from mailferry.config import parse_database_url, parse_date, password_env
from mailferry.domain.errors import ConfigError
from mailferry.domain.folders import MappingOptions, parse_map
from mailferry.domain.labels import LabelMode
from mailferry.domain.model import Summary
from mailferry.domain.plan import Selection
from mailferry.domain.workloadreport import merged_sections
from mailferry.domain.workloads import MailVia
from mailferry.service.resilience import RetryPolicy

if TYPE_CHECKING:  # the summaries of calendars and of Graph mailboxes, made where they run
    from mailferry.domain.davreport import DavSummary
    from mailferry.domain.mailboxreport import MailboxSummary


@click.command()
@common_options
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing.")
@click.option(
    "--connections",
    type=click.IntRange(1, 32),
    default=3,
    show_default=True,
    help="Sessions per account for a first pass; folders are shared out over them "
    "(incremental passes use one). Mind the servers' per-account limits.",
)
@click.option(
    "--share-big-folders",
    is_flag=True,
    help="Lanes with no folder left copy windows of a big folder's first pass too. Slower on "
    "Dovecot (each session re-reads the folder's index for the others' appends); for servers "
    "that store one folder's messages in parallel.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 5000),
    default=BATCH_COUNT,
    show_default=True,
    help="Messages per pipelined APPEND burst at most (each burst is one state transaction; "
    "a burst also stays under a third of 16 MB).",
)
@dav_options
@graph_options
@handle_errors
def sync(**kwargs: Any) -> None:
    """Copy every folder and message of SOURCE to TARGET; re-run any time for an incremental pass.

    SOURCE and TARGET may be CalDAV/CardDAV accounts (https://USER@HOST/): their calendars, task
    lists and address books are copied. --source-dav/--target-dav add those to a mail pair.
    Microsoft 365 on both ends (app-only logins with Graph permissions) moves every workload
    through Graph's mailbox import/export; see --workloads and --mail-via.
    """
    request = _request(kwargs)
    routes = request_routes(request, kwargs)
    stop = threading.Event()
    passes = Passes(routes)
    with _stop_on_signals(stop) as signalled:
        if routes.plan.mail is MailVia.IMAP:
            passes.mail = _sync_mail(request, kwargs, stop)
            if passes.mail is None:  # a dry run: the plan was printed
                print_skipped(routes)
                return
        if routes.plan.mailbox and not signalled.is_set():
            if request.dry_run:
                click.echo("through Graph: " + ", ".join(sorted(routes.plan.mailbox)))
            else:
                passes.mailbox = run_mailbox_sync(request, routes, stop)
        if routes.plan.collections and not signalled.is_set():
            passes.collections = run_dav_sync(request, kwargs, stop, routes)
    _finish(request, kwargs, passes, signalled)


@dataclass
class Passes:
    """What one ``mailferry sync`` ran, by route."""

    routes: Routes
    mail: Summary | None = None
    collections: DavSummary | None = None
    mailbox: MailboxSummary | None = None

    @property
    def failed(self) -> bool:
        return (
            (self.mail is not None and bool(self.mail.failures))
            or (self.collections is not None and self.collections.failed)
            or (self.mailbox is not None and self.mailbox.failed)
        )

    def as_json(self) -> dict[str, object]:
        """The mail keys and the calendar/contact keys as before, then one section per
        workload (``workloads``) and the Graph pass (``graph``)."""
        doc: dict[str, object] = dict(self.mail.as_json()) if self.mail else {}
        if self.collections is not None:
            doc = merged_json(doc, self.collections)
        sections = (
            {str(w): r.as_json() for w, r in self.mailbox.workloads.items()} if self.mailbox else {}
        )
        doc["workloads"] = merged_sections(self.routes.plan, self.mail, self.collections, sections)
        if self.mailbox is not None:
            doc["graph"] = self.mailbox.as_json()
        return doc


def _finish(
    request: SyncRequest, kwargs: dict[str, Any], passes: Passes, signalled: threading.Event
) -> None:
    """The summaries written and flushed, and only then the Graph pass's doubts forgotten: a
    crash or a failed write before that leaves them for the next run to report."""
    if kwargs["as_json"]:
        click.echo(json.dumps(passes.as_json(), indent=2, ensure_ascii=False))
    else:
        if passes.mail is not None:
            print_summary(passes.mail)
        if passes.mailbox is not None:
            print_mailbox_summary(passes.mailbox)
        if passes.collections is not None:
            print_dav_summary(passes.collections)
        print_skipped(passes.routes)
    sys.stdout.flush()
    sys.stderr.flush()
    if passes.mailbox is not None:
        forget_delivered(request, passes.routes, passes.mailbox)
    if signalled.is_set():
        click.echo("mailferry: stopped on request; run the same command again to resume", err=True)
        sys.exit(EXIT_STOPPED)
    sys.exit(EXIT_FAILED if passes.failed else EXIT_OK)


def _sync_mail(
    request: SyncRequest, kwargs: dict[str, Any], stop: threading.Event
) -> Summary | None:
    with open_pair(request, read_only=request.dry_run) as pair:
        if request.dry_run:
            print_plan(pair.plan())
            return None
        with progress_display(enabled=not kwargs["as_json"]) as progress:
            return run_sync(pair, progress, stop)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """SIGINT/SIGTERM finish the burst in flight and save the state; a second SIGINT interrupts.

    Yields an event that tells whether a signal (rather than the run itself) asked for the stop.
    """
    signalled = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        if signalled.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        signalled.set()
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield signalled
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@click.command()
@common_options
@dav_options
@graph_options
@handle_errors
def verify(**kwargs: Any) -> None:
    """Compare SOURCE and TARGET after folder mapping; exit 1 on any difference."""
    request = _request(kwargs)
    routes = request_routes(request, kwargs)
    identical = True
    doc: dict[str, object] = {}
    if routes.plan.mail is MailVia.IMAP:
        with open_pair(request, read_only=True) as pair:
            report = run_verify(pair)
        identical = report.identical
        doc.update(identical=report.identical, folders=[_folder_json(f) for f in report.folders])
        if not kwargs["as_json"]:
            print_verify(report)
    if routes.plan.mailbox:
        checked = run_mailbox_verify(request, routes)
        identical = identical and checked.ok
        doc["graph"] = checked.as_json()
        if not kwargs["as_json"]:
            print_mailbox_verify(checked)
    if routes.plan.collections:
        dav = run_dav_verify(request, kwargs, routes)
        identical = identical and dav.identical
        doc["collections"] = [c.as_json() for c in dav.collections]
        if not kwargs["as_json"]:
            print_dav_verify(dav)
    if kwargs["as_json"]:
        doc["identical"] = identical
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        print_skipped(routes)
    sys.exit(EXIT_OK if identical else EXIT_FAILED)


def _folder_json(f: Any) -> dict[str, object]:
    return {
        "source": f.source,
        "target": f.target,
        "source_count": f.source_count,
        "target_count": f.target_count,
        "problems": f.problems,
    }


def _request(kw: dict[str, Any]) -> SyncRequest:
    problems: list[str] = []
    maps = []
    for spec in kw["maps"]:
        try:
            maps.append(parse_map(spec))
        except ConfigError as exc:
            problems.extend(exc.problems)
    include = _patterns(kw["include"], "--include", problems)
    exclude = _patterns(kw["exclude"], "--exclude", problems)
    since = parse_date(kw["since"], "--since", problems)
    before = parse_date(kw["before"], "--before", problems)
    interactive = sys.stdin.isatty() and not os.environ.get("CI")
    sides = [
        Side(
            url=kw[f"{side}_url"],
            authuser=kw[f"{side}_authuser"],
            password_env=password_env(side),
            password_file=kw[f"{side}_password_file"],
            ca_file=kw[f"{side}_ca_file"] or kw["ca_file"],
            insecure=kw[f"{side}_insecure"] or kw["insecure"],
            name=side,
            auth=kw[f"{side}_auth"],
            oauth_token_command=kw[f"{side}_oauth_token_command"],
            m365_tenant=kw[f"{side}_m365_tenant"],
            m365_client_id=kw[f"{side}_m365_client_id"],
            m365_client_secret_file=kw[f"{side}_m365_client_secret_file"],
            m365_certificate_file=kw[f"{side}_m365_certificate_file"],
            m365_authority=kw[f"{side}_m365_authority"],
            m365_graph_url=kw[f"{side}_m365_graph_url"],
            google_service_account_file=kw[f"{side}_google_service_account_file"],
            m365_delegated=kw[f"{side}_m365_delegated"],
            profile=kw[f"{side}_profile"] or kw["profile"],
        )
        for side in ("source", "target")
    ]
    request = SyncRequest(
        source=sides[0],
        target=sides[1],
        allow_plaintext=kw["allow_plaintext"],
        mapping=MappingOptions(maps=tuple(maps), include=include, exclude=exclude),
        selection=Selection(since=since, before=before, include_deleted=kw["include_deleted"]),
        state_path=kw.get("state"),
        database=_database(kw.get("database"), problems),
        dry_run=bool(kw.get("dry_run")),
        batch_size=kw.get("batch_size") or BATCH_COUNT,
        connections=kw.get("connections") or 3,
        share_big_folders=bool(kw.get("share_big_folders")),
        retry=RetryPolicy(
            attempts=kw["retries"],
            base_wait=kw["retry_wait"],
            max_wait=kw["retry_max_wait"],
            cap_pause=kw["cap_pause"],
            cap_max_pause=kw["cap_max_pause"],
        ),
        timeout=kw["timeout"],
        neutralise_read_receipts=kw["neutralise_read_receipts"],
        labels=LabelMode(kw["labels"]),
        prompt=_prompt if interactive else None,
        show_sign_in=_show_sign_in if interactive else None,
    )
    try:
        if not any(_not_imap(side.url) for side in (request.source, request.target)):
            endpoints(request)
    except ConfigError as exc:
        problems[:0] = exc.problems
    if problems:
        raise ConfigError(problems)
    return request


def _database(url: str | None, problems: list[str]) -> str | None:
    if not url:
        return None
    try:
        return parse_database_url(url)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None


def _not_imap(url: str) -> bool:
    """A DAV or ``m365://`` URL: the side has no IMAP (its URL is checked where it is used)."""
    return is_dav_url(url) or is_m365_url(url)


def _prompt(label: str) -> str:
    return str(click.prompt(label, hide_input=True))


def _show_sign_in(message: str) -> None:
    """A device-flow message (the verification URL and the user's code): never a token."""
    click.echo(f"mailferry: {message}", err=True)


def _patterns(
    values: tuple[str, ...], option: str, problems: list[str]
) -> tuple[re.Pattern[str], ...]:
    out = []
    for value in values:
        try:
            out.append(re.compile(value))
        except re.error as exc:
            problems.append(f"{option} {value!r}: not a valid regular expression ({exc})")
    return tuple(out)
