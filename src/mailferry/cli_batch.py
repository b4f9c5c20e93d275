"""``mailferry endpoint ...``, ``mailferry batch ...`` and ``mailferry serve``: thin click
commands over ``service.batches`` (the API the web layer will call too).

Exit codes as for ``sync``: 0 done; 1 some mailboxes failed or had message errors; 2 usage or
configuration error; 3 an endpoint cannot be reached or its login fails (``endpoint test``).
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
from rich.console import Console
from rich.live import Live
from rich.table import Table

from mailferry.adapters.batch_store import MailboxRecord, Outcome
from mailferry.adapters.imap.session import AuthMethod
from mailferry.adapters.oauth import M365_AUTHORITY_HOST
from mailferry.adapters.secrets import Secret
from mailferry.bootstrap import load_token_source
from mailferry.config import STATE_ENV, default_state_path, parse_date
from mailferry.domain.errors import AccountError, ConfigError
from mailferry.domain.labels import LabelMode
from mailferry.domain.model import Security
from mailferry.domain.profiles import PROFILE_NAMES
from mailferry.exits import (
    EXIT_FAILED,
    EXIT_OK,
    handle_errors,
)
from mailferry.service.batches import (
    BatchOptions,
    BatchService,
    BatchStatus,
    EndpointSpec,
    MailboxState,
    open_service,
)
from mailferry.service.endpoints import login_kind
from mailferry.service.probe import probe
from mailferry.service.scheduler import Scheduler

F = TypeVar("F", bound=Callable[..., Any])
ENDPOINT_PASSWORD_ENV = "MAILFERRY_ENDPOINT_PASSWORD"  # noqa: S105 - a variable's name
TEST_PASSWORD_ENV = "MAILFERRY_PASSWORD"  # noqa: S105 - a variable's name
ADMIN_PASSWORD_ENV = "MAILFERRY_ADMIN_PASSWORD"  # noqa: S105 - a variable's name
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _state_option(func: F) -> F:
    option = click.option(
        "--state",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=STATE_ENV,
        help="State database (default ~/.local/share/mailferry/state.sqlite3; $MAILFERRY_STATE).",
    )
    return option(func)


@contextlib.contextmanager
def _service(state: Path | None) -> Iterator[BatchService]:
    service = open_service(state or default_state_path())
    try:
        yield service
    finally:
        service.close()


def _read_secret(path: Path | None, env: str, label: str, *, required: bool) -> Secret | None:
    if path is not None:
        try:
            return Secret(path.read_text(encoding="utf-8").rstrip("\r\n"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if env in os.environ:
        return Secret(os.environ[env])
    if required and sys.stdin.isatty():
        return Secret(str(click.prompt(label, hide_input=True)))
    return None


def parse_duration(text: str) -> float:
    match = DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"--every {text!r}: expected a duration such as 90m, 24h or 7d")
    return float(match.group(1)) * UNITS[match.group(2)]


def register(main: click.Group) -> None:
    """Add the service commands to the ``mailferry`` group."""
    main.add_command(endpoint)
    main.add_command(batch)
    main.add_command(serve)
    main.add_command(admin)
    main.add_command(token)


def _token_options(func: F) -> F:
    file = click.Path(exists=True, dir_okay=False, path_type=Path)
    for option in reversed(
        (
            click.option(
                "--auth",
                type=click.Choice([m.value for m in AuthMethod]),
                default=AuthMethod.AUTO.value,
                show_default=True,
                help="How mailboxes log in: auto takes a token login (SASL XOAUTH2, else "
                "OAUTHBEARER) when a token source is given, else the password.",
            ),
            click.option(
                "--oauth-token-command",
                metavar="CMD",
                help="Run CMD for an OAuth2 access token (its stdout: the token, or JSON with "
                "access_token and expires_in); run again to refresh. One token for every mailbox.",
            ),
            click.option("--m365-tenant", metavar="ID", help="Microsoft 365 app-only: tenant id."),
            click.option("--m365-client-id", metavar="ID", help="Microsoft 365: application id."),
            click.option(
                "--m365-delegated",
                is_flag=True,
                help="Microsoft 365 delegated: each mailbox user signs in beforehand with "
                "`mailferry login` (device code; a public client app, no secret).",
            ),
            click.option(
                "--m365-client-secret-file",
                type=file,
                help="Microsoft 365 app-only: a file holding the client secret (stored encrypted).",
            ),
            click.option(
                "--m365-certificate-file",
                type=file,
                help="Microsoft 365 app-only: a PEM file with the certificate and its private key "
                "(stored encrypted).",
            ),
            click.option(
                "--m365-authority",
                metavar="URL",
                default=M365_AUTHORITY_HOST,
                show_default=True,
                help="Microsoft identity platform host (national clouds differ).",
            ),
            click.option(
                "--google-service-account-file",
                type=file,
                help="Google Workspace: a service account key (JSON) with domain-wide "
                "delegation (stored encrypted); each token acts as the mailbox.",
            ),
            click.option(
                "--profile",
                type=click.Choice(PROFILE_NAMES),
                default="auto",
                show_default=True,
                help="Provider profile (system folders, reserved names, size limit); auto: by host.",
            ),
        )
    ):
        func = option(func)
    return func


# -- endpoints ---------------------------------------------------------------------------------------
@click.group()
def endpoint() -> None:
    """Servers that batches migrate from and to."""


@endpoint.command("add")
@click.argument("name")
@click.option("--host", required=True)
@click.option("--port", type=int, help="Default 993 (ssl) or 143.")
@click.option(
    "--security",
    type=click.Choice([s.value for s in Security]),
    default="ssl",
    show_default=True,
)
@click.option("--auth-user", metavar="ADMIN", help="Admin login used for every mailbox.")
@click.option(
    "--auth-password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"The admin's password (else ${ENDPOINT_PASSWORD_ENV}, else a prompt).",
)
@click.option("--max-connections", type=click.IntRange(1, 10_000), default=10, show_default=True)
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--insecure", is_flag=True, help="Do not verify the TLS certificate (unsafe).")
@click.option("--allow-plaintext", is_flag=True, help="Allow --security none beyond loopback.")
@click.option("--replace", is_flag=True, help="Change an existing endpoint.")
@_token_options
@_state_option
@handle_errors
def endpoint_add(name: str, **kw: Any) -> None:
    """Add (or with --replace change) an endpoint.

    With a token source (--oauth-token-command, --m365-tenant/--m365-client-id with a client
    secret or certificate, --m365-delegated with --m365-client-id, --google-service-account-file)
    every mailbox logs in with a token (SASL XOAUTH2/OAUTHBEARER) as the mailbox of its CSV row,
    and the CSV needs no password for this side. The source's secrets are stored encrypted, like
    passwords. Delegated: each mailbox user signs in first (`mailferry login URL --m365-client-id
    ID`, with the same --state).
    """
    tokens = load_token_source(
        "endpoint",
        command=kw["oauth_token_command"],
        m365_tenant=kw["m365_tenant"],
        m365_client_id=kw["m365_client_id"],
        m365_client_secret_file=kw["m365_client_secret_file"],
        m365_certificate_file=kw["m365_certificate_file"],
        m365_authority=kw["m365_authority"],
        google_service_account_file=kw["google_service_account_file"],
        m365_delegated=kw["m365_delegated"],
    )
    password = None
    if kw["auth_user"]:
        password = _read_secret(
            kw["auth_password_file"], ENDPOINT_PASSWORD_ENV, "Admin password", required=True
        )
    spec = EndpointSpec(
        name=name,
        host=kw["host"],
        port=kw["port"],
        security=Security(kw["security"]),
        max_connections=kw["max_connections"],
        auth_user=kw["auth_user"],
        auth_password=password,
        ca_file=kw["ca_file"],
        insecure=kw["insecure"],
        allow_plaintext=kw["allow_plaintext"],
        auth=kw["auth"],
        tokens=tokens,
        profile=kw["profile"],
    )
    with _service(kw["state"]) as service:
        record = service.add_endpoint(spec, replace=kw["replace"])
    login = f", {login_kind(record)} login" if spec.token_source else ""
    click.echo(f"endpoint {record.name}: {record.security}://{record.host}:{record.port}{login}")


@endpoint.command("list")
@click.option("--json", "as_json", is_flag=True)
@_state_option
@handle_errors
def endpoint_list(as_json: bool, state: Path | None) -> None:
    """Every endpoint (never its password or token secrets)."""
    with _service(state) as service:
        records = service.endpoints()
    rows = [
        {
            "name": r.name,
            "host": r.host,
            "port": r.port,
            "security": r.security,
            "auth_user": r.auth_user,
            "max_connections": r.max_connections,
            "auth": r.auth,
            "login": login_kind(r),
            "profile": r.profile,
            "insecure": r.insecure,
        }
        for r in records
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table()
    for column in (
        "name", "host", "port", "security", "auth_user", "max_connections", "auth", "login",
        "profile",
    ):  # fmt: skip
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c] or "") for c in row if c != "insecure"))
    out.print(table)


@endpoint.command("remove")
@click.argument("name")
@_state_option
@handle_errors
def endpoint_remove(name: str, state: Path | None) -> None:
    """Remove an endpoint no batch uses."""
    with _service(state) as service:
        service.remove_endpoint(name)
    click.echo(f"endpoint {name} removed")


@endpoint.command("test")
@click.argument("name")
@click.option("--user", help="Log in as USER (password: --password-file or $MAILFERRY_PASSWORD).")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--timeout", type=float, default=30.0, show_default=True)
@_state_option
@handle_errors
def endpoint_test(name: str, user: str | None, password_file: Path | None, **kw: Any) -> None:
    """Connect and log in (as the admin, as --user, or with the endpoint's token as the mailbox
    --user); print the login methods offered, the one used, the profile and the capabilities."""

    def password_of(login: str) -> Secret:
        found = _read_secret(password_file, TEST_PASSWORD_ENV, "Password", required=True)
        if found is None:
            raise ConfigError(f"no password for {login}: set ${TEST_PASSWORD_ENV}")
        return found

    with _service(kw["state"]) as service:
        record = service.endpoint(name)
        result = probe(service, record, user, password_of, timeout=kw["timeout"])
    if result.error is not None:
        raise AccountError(result.error)
    how = "by host" if result.profile_by_host else "chosen"
    click.echo(f"{result.address}: reachable, login ok, delimiter {result.delimiter!r}")
    click.echo("login methods offered: " + (" ".join(result.offered) or "none"))
    click.echo(f"login used: {result.method}" + (" (token)" if result.token else ""))
    click.echo(f"profile: {result.profile} ({how})")
    click.echo("capabilities: " + " ".join(result.capabilities))


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
@_state_option
@handle_errors
def batch_create(name: str, csv_path: Path, **kw: Any) -> None:
    """Create a batch from an Exchange-style CSV (EmailAddress,UserName,Password,...)."""
    problems: list[str] = []
    options = BatchOptions(
        since=parse_date(kw["since"], "--since", problems),
        before=parse_date(kw["before"], "--before", problems),
        include_deleted=kw["include_deleted"],
        neutralise_read_receipts=kw["neutralise_read_receipts"],
        labels=LabelMode(kw["labels"]),
    )
    try:
        data = csv_path.read_bytes()
    except OSError as exc:
        problems.append(f"cannot read {csv_path}: {exc.strerror}")
        data = b""
    if problems:
        raise ConfigError(problems)
    with _service(kw["state"]) as service:
        status = service.create_batch(name, kw["source"], kw["target"], data, options)
    click.echo(f"batch {name}: {len(status.mailboxes)} mailboxes created")


@batch.command("list")
@_state_option
@handle_errors
def batch_list(state: Path | None) -> None:
    """Every batch with its state and mailbox counts."""
    with _service(state) as service:
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
        _state_option,
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
    with _service(kw["state"]) as service:
        queued = request(service)
        running = service.service_running()
        if kw["detach"] or running:
            who = "the running `mailferry serve`" if running else "`mailferry serve`"
            click.echo(f"batch {name}: {queued} mailboxes queued to {verb}; {who} will run them")
            return
        click.echo(f"batch {name}: {queued} mailboxes to {verb}", err=True)
        _foreground(service, name, kw["workers"])
        status = service.status(name)
    _print_status(status)
    bad = any(m.state == MailboxState.FAILED or m.record.errors for m in status.mailboxes)
    sys.exit(EXIT_FAILED if bad else EXIT_OK)


@contextlib.contextmanager
def _signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM end the run cleanly: bursts in flight finish, the rest stays queued."""

    def handler(signum: int, _frame: object) -> None:
        del signum
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _foreground(service: BatchService, name: str, workers: int) -> None:
    stop = threading.Event()

    def finished(mailbox: MailboxRecord, outcome: Outcome) -> None:
        if not err.is_terminal:
            reason = f": {outcome.reason}" if outcome.reason else ""
            err.print(f"{mailbox.email}: {outcome.state}{reason}", markup=False)

    scheduler = Scheduler(service, batch=name, workers=workers, on_finish=finished)
    with _signals(stop):
        if err.is_terminal:
            with Live(_status_table(service.status(name)), console=err, transient=True) as live:
                scheduler.run(
                    stop,
                    until_idle=True,
                    on_tick=lambda: live.update(_status_table(service.status(name))),
                )
        else:
            scheduler.run(stop, until_idle=True)
    if stop.is_set():
        click.echo("mailferry: interrupted; `mailferry batch start` resumes", err=True)


@batch.command("stop")
@click.argument("name")
@_state_option
@handle_errors
def batch_stop(name: str, state: Path | None) -> None:
    """Stop queued mailboxes now and running ones after their burst in flight."""
    with _service(state) as service:
        stopped = service.stop(name)
    click.echo(f"batch {name}: stop requested ({stopped} queued mailboxes stopped)")


@batch.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask.")
@_state_option
@handle_errors
def batch_delete(name: str, yes: bool, state: Path | None) -> None:
    """Forget a batch, its stored passwords and reports (mail already copied stays)."""
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete batch {name} and its stored passwords?", abort=True)
    with _service(state) as service:
        service.delete(name)
    click.echo(f"batch {name} deleted")


@batch.command("status")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@_state_option
@handle_errors
def batch_status(name: str, as_json: bool, state: Path | None) -> None:
    """Per mailbox: state, folders, messages, bytes, errors, ETA."""
    with _service(state) as service:
        if as_json:
            click.echo(json.dumps(service.report_json(name), indent=2, ensure_ascii=False))
            return
        status = service.status(name)
    _print_status(status)


@batch.command("report")
@click.argument("name")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="JSON (with per-message failures).")
@click.option("--failures", is_flag=True, help="The per-message failure list (CSV).")
@_state_option
@handle_errors
def batch_report(
    name: str, output: Path | None, as_json: bool, failures: bool, state: Path | None
) -> None:
    """Per-mailbox report as CSV (default) or JSON; --failures lists failed messages."""
    with _service(state) as service:
        if as_json:
            text = json.dumps(service.report_json(name), indent=2, ensure_ascii=False) + "\n"
        elif failures:
            text = service.failures_csv(name)
        else:
            text = service.report_csv(name)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc.strerror}") from None
    click.echo(f"report written to {output}", err=True)


def _print_status(status: BatchStatus) -> None:
    if out.is_terminal:
        out.print(_status_table(status))
        return
    for line in _status_lines(status):
        out.print(line, markup=False, soft_wrap=True)


def _status_table(status: BatchStatus) -> Table:
    b = status.batch
    table = Table(title=f"batch {b.name} ({b.source} → {b.target}): {status.state}")
    for column in ("mailbox", "state", "folders", "messages", "bytes", "errors", "ETA", "reason"):
        right = column in ("folders", "messages", "bytes", "errors", "ETA")
        table.add_column(column, justify="right" if right else "left", overflow="fold")
    for row in _rows(status):
        table.add_row(*row)
    return table


def _status_lines(status: BatchStatus) -> list[str]:
    b = status.batch
    lines = [f"batch {b.name} ({b.source} -> {b.target}): {status.state}"]
    lines += ["  ".join(row) for row in _rows(status)]
    return lines


def _rows(status: BatchStatus) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for view in status.mailboxes:
        m = view.record
        if view.running:
            messages = f"{m.done}/{m.planned}"
            nbytes = f"{m.done_bytes}/{m.planned_bytes}"
        else:
            messages = f"{m.copied} copied, {m.existing} there"
            nbytes = str(m.bytes)
        eta = f"{view.eta:.0f}s" if view.eta is not None else "-"
        rows.append(
            (
                m.email,
                view.state,
                str(m.folders),
                messages,
                nbytes,
                str(m.errors),
                eta,
                m.reason or "",
            )
        )
    return rows


# -- the service -------------------------------------------------------------------------------------
@click.command()
@click.option("--poll", type=float, default=2.0, show_default=True, help="Seconds between looks.")
@click.option("--workers", type=click.IntRange(1, 512), default=64, show_default=True)
@click.option("--until-idle", is_flag=True, help="Exit when nothing is queued (cron, tests).")
@click.option(
    "--every",
    metavar="DURATION",
    help="Incremental passes for Synced mailboxes (e.g. 24h) where the batch sets none.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Web app address.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Listen beyond loopback without TLS (behind a TLS reverse proxy only).",
)
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--no-web", is_flag=True, help="Run the scheduler only, without the web app.")
@_state_option
@handle_errors
def serve(
    poll: float, workers: int, until_idle: bool, every: str | None, state: Path | None, **web: Any
) -> None:
    """Run queued batches and scheduled passes, and the web app, until SIGTERM/SIGINT."""
    stop = threading.Event()
    seconds = parse_duration(every) if every else None
    with _service(state) as service:
        scheduler = Scheduler(service, workers=workers, poll=poll, is_service=True, every=seconds)
        with _signals(stop):
            if web["no_web"]:
                click.echo(f"mailferry serve: running (pid {os.getpid()})", err=True)
                scheduler.run(stop, until_idle=until_idle)
            else:
                _serve_web(service, scheduler, stop, until_idle, web)
    click.echo("mailferry serve: stopped; queued mailboxes resume on the next start", err=True)


def _serve_web(
    service: BatchService,
    scheduler: Scheduler,
    stop: threading.Event,
    until_idle: bool,
    web: dict[str, Any],
) -> None:
    # Imported here: the web stack costs a few hundred ms that no other command should pay.
    from mailferry.web import server  # noqa: PLC0415

    listen = server.Listen(
        web["host"], web["port"], web["allow_remote"], web["tls_cert"], web["tls_key"]
    )
    problems = listen.check()
    if problems:
        raise ConfigError(problems)
    warning = listen.warning()
    if warning:
        click.echo(f"mailferry serve: {warning}", err=True)

    def ready(url: str) -> None:
        click.echo(f"mailferry serve: running (pid {os.getpid()}), web app on {url}", err=True)

    server.run(service, scheduler, stop, listen, until_idle=until_idle, on_ready=ready)


# -- web administration ------------------------------------------------------------------------------
@click.group()
def admin() -> None:
    """The web app's admin login."""


@admin.command("init")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Read the password from this file (else ${ADMIN_PASSWORD_ENV}, else a prompt).",
)
@_state_option
@handle_errors
def admin_init(password_file: Path | None, state: Path | None) -> None:
    """Set (or change) the admin password of `mailferry serve`; ends every browser session."""
    from mailferry.web.credentials import AuthStore  # noqa: PLC0415 - see _serve_web

    password = _read_secret(password_file, ADMIN_PASSWORD_ENV, "Admin password", required=True)
    if password is None:
        raise ConfigError(f"no password: give --password-file or set ${ADMIN_PASSWORD_ENV}")
    auth = AuthStore.open_sqlite(state or default_state_path())
    try:
        auth.set_admin_password(password.reveal())
    finally:
        auth.close()
    click.echo("admin password set")


@click.group()
def token() -> None:
    """API tokens (`Authorization: Bearer ...`)."""


@token.command("create")
@click.argument("name")
@_state_option
@handle_errors
def token_create(name: str, state: Path | None) -> None:
    """Create a token and print it, once: it is stored only as a hash."""
    from mailferry.web.credentials import AuthStore  # noqa: PLC0415 - see _serve_web

    auth = AuthStore.open_sqlite(state or default_state_path())
    try:
        value = auth.create_token(name)
    finally:
        auth.close()
    click.echo(value)


@token.command("revoke")
@click.argument("name")
@_state_option
@handle_errors
def token_revoke(name: str, state: Path | None) -> None:
    """Revoke a token by name."""
    from mailferry.web.credentials import AuthStore  # noqa: PLC0415 - see _serve_web

    auth = AuthStore.open_sqlite(state or default_state_path())
    try:
        if not auth.revoke_token(name):
            raise ConfigError(f"no token {name!r}")
    finally:
        auth.close()
    click.echo(f"token {name} revoked")
