"""The ``mailferry`` command. Maps every MailferryError to an exit code and one clear line.

Exit codes: 0 all copied (or identical); 1 some messages failed (or verify found differences);
2 usage or configuration error; 3 a server cannot be reached or a login fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from mailferry import __version__
from mailferry.adapters.oauth.app_only import M365_AUTHORITY_HOST
from mailferry.bootstrap import Side, SyncRequest, endpoints, open_pair, run_sync, run_verify
from mailferry.config import parse_date, password_env
from mailferry.domain.errors import ConfigError
from mailferry.domain.folders import MappingOptions, parse_map
from mailferry.domain.labels import LabelMode
from mailferry.domain.model import AuthMethod
from mailferry.domain.plan import Selection
from mailferry.domain.profiles import PROFILE_NAMES
from mailferry.exits import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STOPPED,
    handle_errors,
)
from mailferry.logs import FORMATS, LEVEL_ENV, LEVELS, configure
from mailferry.service.resilience import RetryPolicy
from mailferry.terminal import print_plan, print_summary, print_verify, progress_display

F = TypeVar("F", bound=Callable[..., Any])


def _side_options(side: str) -> Callable[[F], F]:
    def decorate(func: F) -> F:
        for option in reversed(
            [
                click.option(
                    f"--{side}-password-file",
                    type=click.Path(dir_okay=False, path_type=Path),
                    help=f"Read the {side} password from this file (else ${_env(side)}).",
                ),
                click.option(
                    f"--{side}-authuser",
                    metavar="ADMIN",
                    help=f"Log in to the {side} as ADMIN acting for the URL's user (SASL PLAIN).",
                ),
                click.option(
                    f"--{side}-ca-file",
                    type=click.Path(exists=True, dir_okay=False, path_type=Path),
                    help=f"Trust this CA for the {side}'s TLS certificate.",
                ),
                click.option(
                    f"--{side}-insecure",
                    is_flag=True,
                    help=f"Do not verify the {side}'s TLS certificate (unsafe).",
                ),
                *_oauth_options(side),
            ]
        ):
            func = option(func)
        return func

    return decorate


def _oauth_options(side: str) -> list[Callable[[F], F]]:
    file = click.Path(exists=True, dir_okay=False, path_type=Path)
    return [
        click.option(
            f"--{side}-auth",
            type=click.Choice([m.value for m in AuthMethod]),
            default=AuthMethod.AUTO.value,
            show_default=True,
            help=f"How to log in to the {side}: auto takes a token login (SASL XOAUTH2, else "
            "OAUTHBEARER) when a token source is given, else the password.",
        ),
        click.option(
            f"--{side}-oauth-token-command",
            metavar="CMD",
            help="Run CMD for an OAuth2 access token (its stdout: the token, or JSON with "
            "access_token and expires_in); run again to refresh.",
        ),
        click.option(
            f"--{side}-m365-tenant",
            metavar="ID",
            help=f"Microsoft 365 login to the {side}: the tenant (directory) id (app-only: "
            "required; delegated: default organizations).",
        ),
        click.option(
            f"--{side}-m365-client-id",
            metavar="ID",
            help="Microsoft 365: the application (client) id.",
        ),
        click.option(
            f"--{side}-m365-delegated",
            is_flag=True,
            help="Microsoft 365 delegated: the URL's user signs in with their own account "
            "(device code; `mailferry login` beforehand, or inline when run in a terminal). "
            f"Needs --{side}-m365-client-id of a public client app; no secret.",
        ),
        click.option(
            f"--{side}-m365-client-secret-file",
            type=file,
            help="Microsoft 365 app-only: a file holding the client secret.",
        ),
        click.option(
            f"--{side}-m365-certificate-file",
            type=file,
            help="Microsoft 365 app-only: a PEM file with the certificate and its private key.",
        ),
        click.option(
            f"--{side}-m365-authority",
            metavar="URL",
            default=M365_AUTHORITY_HOST,
            show_default=True,
            help="Microsoft identity platform host (national clouds differ).",
        ),
        click.option(
            f"--{side}-google-service-account-file",
            type=file,
            help="Google Workspace: a service account key (JSON) with domain-wide delegation; "
            "the token acts as the URL's user.",
        ),
        click.option(
            f"--{side}-profile",
            type=click.Choice(PROFILE_NAMES),
            default=None,
            help=f"Provider profile of the {side} (default: --profile).",
        ),
    ]


def _env(side: str) -> str:
    return password_env(side)


def _common_options(func: F) -> F:
    options = [
        click.argument("source_url", metavar="SOURCE"),
        click.argument("target_url", metavar="TARGET"),
        _side_options("source"),
        _side_options("target"),
        click.option("--allow-plaintext", is_flag=True, help="Allow imap:// beyond loopback."),
        click.option(
            "--profile",
            type=click.Choice(PROFILE_NAMES),
            default="auto",
            show_default=True,
            help="Provider profile (system folders, reserved names, size limit) for both sides; "
            "auto: by host.",
        ),
        click.option(
            "--insecure", is_flag=True, help="Do not verify TLS certificates (both sides)."
        ),
        click.option(
            "--ca-file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Trust this CA for both sides' TLS certificates (--source-ca-file and "
            "--target-ca-file win over it).",
        ),
        click.option(
            "--map",
            "maps",
            multiple=True,
            metavar="SRC=DST",
            help="Map a source folder to a target folder.",
        ),
        click.option(
            "--include", multiple=True, metavar="REGEX", help="Only folders matching REGEX."
        ),
        click.option(
            "--exclude", multiple=True, metavar="REGEX", help="Skip folders matching REGEX."
        ),
        click.option("--since", metavar="YYYY-MM-DD", help="Only messages received on or after."),
        click.option("--before", metavar="YYYY-MM-DD", help="Only messages received before."),
        click.option(
            "--include-deleted", is_flag=True, help="Also copy messages flagged \\Deleted."
        ),
        click.option(
            "--labels",
            type=click.Choice([m.value for m in LabelMode]),
            default=LabelMode.ONCE.value,
            show_default=True,
            help="A source whose folders are labels (Gmail): copy a message found in several "
            "label folders once, into the first (INBOX, Sent, Drafts, then the labels by name), "
            "or once per label folder ('folders'). All Mail adds only what no other folder holds.",
        ),
        click.option(
            "--neutralise-read-receipts",
            is_flag=True,
            help="Rename Disposition-Notification-To (and Return-Receipt-To, X-Confirm-Reading-To) "
            "to X-Orig-… headers of the same length, so the target never sends old read receipts.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=1),
            default=120.0,
            show_default=True,
            help="Seconds without a byte from a server before the connection counts as dropped.",
        ),
        click.option(
            "--retries",
            type=click.IntRange(0, 1000),
            default=6,
            show_default=True,
            help="Reconnects per folder after drops or throttling before the folder is reported failed.",
        ),
        click.option(
            "--retry-wait",
            type=click.FloatRange(min=0),
            default=1.0,
            show_default=True,
            help="First backoff in seconds; doubled per attempt without progress (with jitter).",
        ),
        click.option(
            "--retry-max-wait",
            type=click.FloatRange(min=0),
            default=60.0,
            show_default=True,
            help="Longest backoff in seconds (a server's own suggested wait is always honoured).",
        ),
        click.option(
            "--cap-pause",
            type=click.FloatRange(min=0),
            default=1800.0,
            show_default=True,
            help="Seconds to pause when a provider's daily cap is reached (Gmail's bandwidth "
            "limit); such pauses never spend the retry budget.",
        ),
        click.option(
            "--cap-max-pause",
            type=click.FloatRange(min=0),
            default=26 * 3600.0,
            show_default=True,
            help="Longest time in all to wait for a daily cap to lift before the folder is "
            "reported failed.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON summary at the end."),
        click.option(
            "--state",
            type=click.Path(dir_okay=False, path_type=Path),
            help="State database (default: ~/.local/share/mailferry/state.sqlite3).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


class _Commands(click.Group):
    """``sync`` and ``verify`` here; the service commands (endpoint, batch, serve, admin, token) are
    loaded from cli_batch, and ``login`` from cli_login, only when asked for, so that
    ``mailferry sync`` starts without them."""

    SERVICE = ("admin", "batch", "endpoint", "serve", "token")

    def _load_service(self) -> None:
        if "batch" not in self.commands:
            from mailferry.cli_batch import register  # noqa: PLC0415 - see the class docstring

            register(self)

    def _load_login(self) -> None:
        if "login" not in self.commands:
            from mailferry.cli_login import login  # noqa: PLC0415 - see the class docstring

            self.add_command(login)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_service()
        self._load_login()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.SERVICE:
            self._load_service()
        if cmd_name == "login":
            self._load_login()
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mailferry")
@click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    default="warning",
    show_default=True,
    envvar=LEVEL_ENV,
    help=f"Log events from this level up, on stderr (${LEVEL_ENV}).",
)
@click.option(
    "--log-format",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="Log lines as text, or as one JSON object each.",
)
def main(log_level: str, log_format: str) -> None:
    """Move whole mailboxes between mail systems, faithfully and without duplicates."""
    configure(log_level.lower(), log_format)


@main.command()
@_common_options
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
    "--batch-size",
    type=click.IntRange(1, 5000),
    default=200,
    show_default=True,
    help="Messages per pipelined APPEND burst (each burst is one state transaction).",
)
@handle_errors
def sync(**kwargs: Any) -> None:
    """Copy every folder and message of SOURCE to TARGET; re-run any time for an incremental pass."""
    request = _request(kwargs)
    with open_pair(request, read_only=request.dry_run) as pair:
        if request.dry_run:
            print_plan(pair.plan())
            return
        stop = threading.Event()
        with (
            progress_display(enabled=not kwargs["as_json"]) as progress,
            _stop_on_signals(stop) as signalled,
        ):
            summary = run_sync(pair, progress, stop)
    if kwargs["as_json"]:
        click.echo(json.dumps(summary.as_json(), indent=2, ensure_ascii=False))
    else:
        print_summary(summary)
    if signalled.is_set():
        click.echo("mailferry: stopped on request; run the same command again to resume", err=True)
        sys.exit(EXIT_STOPPED)
    sys.exit(EXIT_FAILED if summary.failures else EXIT_OK)


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


@main.command()
@_common_options
@handle_errors
def verify(**kwargs: Any) -> None:
    """Compare SOURCE and TARGET after folder mapping; exit 1 on any difference."""
    request = _request(kwargs)
    with open_pair(request, read_only=True) as pair:
        report = run_verify(pair)
    if kwargs["as_json"]:
        data = [
            {
                "source": f.source,
                "target": f.target,
                "source_count": f.source_count,
                "target_count": f.target_count,
                "problems": f.problems,
            }
            for f in report.folders
        ]
        click.echo(json.dumps({"identical": report.identical, "folders": data}, indent=2))
    else:
        print_verify(report)
    sys.exit(EXIT_OK if report.identical else EXIT_FAILED)


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
            password_env=_env(side),
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
        dry_run=bool(kw.get("dry_run")),
        batch_size=kw.get("batch_size") or 200,
        connections=kw.get("connections") or 3,
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
        endpoints(request)
    except ConfigError as exc:
        problems[:0] = exc.problems
    if problems:
        raise ConfigError(problems)
    return request


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


if __name__ == "__main__":  # pragma: no cover
    main()
