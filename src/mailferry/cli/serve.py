"""``mailferry serve`` (the scheduler and the web app), ``mailferry admin init`` and ``mailferry
token create|revoke`` (the web app's logins)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mailferry import bootstrap
from mailferry.bootstrap.workers import check_worker, run_worker
from mailferry.cli.common import (
    ADMIN_PASSWORD_ENV,
    open_batch_service,
    parse_duration,
    read_secret,
    signals,
    state_option,
)
from mailferry.cli.exits import (
    handle_errors,
)
from mailferry.config import Storage
from mailferry.domain.errors import ConfigError
from mailferry.service.batches import (
    BatchService,
)
from mailferry.service.scheduler import Scheduler

if TYPE_CHECKING:  # imported when serving only (see _serve_web)
    from mailferry.adapters.metrics import PrometheusTelemetry


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
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="A host name browsers use for the web app, beyond localhost and the TLS certificate's "
    "names (repeatable); any other Host header is refused (DNS rebinding).",
)
@click.option(
    "--idle-timeout",
    metavar="DURATION",
    default="30m",
    show_default=True,
    help="A browser session unused this long ends (sessions end after 12h in any case).",
)
@click.option(
    "--files-root",
    "files_roots",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, resolve_path=True, path_type=Path),
    help="A directory under which the web app may set endpoints of mail in files (repeatable); "
    "without it, file endpoints are set only with `mailferry endpoint add --files`.",
)
@click.option("--no-web", is_flag=True, help="Run the scheduler only, without the web app.")
@click.option(
    "--no-worker",
    is_flag=True,
    help="Run no mailbox here: `mailferry worker` processes do (shared --database only).",
)
@state_option
@handle_errors
def serve(
    poll: float, workers: int, until_idle: bool, every: str | None, state: Storage, **web: Any
) -> None:
    """Run queued batches and scheduled passes, and the web app, until SIGTERM/SIGINT."""
    stop = threading.Event()
    seconds = parse_duration(every) if every else None
    idle = parse_duration(web["idle_timeout"], "--idle-timeout")
    dispatching = not web.pop("no_worker")
    if not dispatching and not state.database:
        raise ConfigError("--no-worker needs a shared state database (--database) for workers")
    with open_batch_service(state) as service, _queue_worker(service, state, dispatching, workers):
        if web["no_web"]:
            scheduler = bootstrap.scheduler(
                service, workers=workers, poll=poll, is_service=True, every=seconds,
                dispatching=dispatching,
            )  # fmt: skip
            with signals(stop):
                click.echo(f"mailferry serve: running (pid {os.getpid()})", err=True)
                scheduler.run(stop, until_idle=until_idle)
        else:
            from mailferry.adapters.metrics import PrometheusTelemetry  # noqa: PLC0415 - see below

            metrics = PrometheusTelemetry()
            scheduler = bootstrap.scheduler(
                service, workers=workers, poll=poll, is_service=True, every=seconds,
                telemetry=metrics, dispatching=dispatching,
            )  # fmt: skip
            with signals(stop):
                _serve_web(service, scheduler, stop, until_idle, {**web, "idle": idle}, metrics)
    click.echo("mailferry serve: stopped; queued mailboxes resume on the next start", err=True)


@contextlib.contextmanager
def _queue_worker(
    service: BatchService, state: Storage, dispatching: bool, concurrency: int
) -> Iterator[None]:
    """On a shared database the scheduler only queues jobs: unless --no-worker, a worker in this
    process runs them too (as `mailferry worker` does), until the service stops."""
    if not state.database or not dispatching:
        yield
        return
    check_worker(service)  # here, not as a traceback in the worker's thread
    stop = threading.Event()
    thread = threading.Thread(
        target=run_worker,
        args=(service, stop),
        kwargs={"concurrency": concurrency},
        name="mailferry-worker",
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _serve_web(
    service: BatchService,
    scheduler: Scheduler,
    stop: threading.Event,
    until_idle: bool,
    web: dict[str, Any],
    metrics: PrometheusTelemetry,
) -> None:
    # Imported here: the web stack costs a few hundred ms that no other command should pay.
    from mailferry.web import server  # noqa: PLC0415
    from mailferry.web.settings import WebSettings  # noqa: PLC0415

    listen = server.Listen(
        web["host"], web["port"], web["allow_remote"], web["tls_cert"], web["tls_key"],
        tuple(web["allowed_hosts"]),
    )  # fmt: skip
    problems = listen.check()
    if problems:
        raise ConfigError(problems)
    warning = listen.warning()
    if warning:
        click.echo(f"mailferry serve: {warning}", err=True)

    def ready(url: str) -> None:
        click.echo(f"mailferry serve: running (pid {os.getpid()}), web app on {url}", err=True)

    settings = WebSettings(idle_minutes=web["idle"] / 60, files_roots=tuple(web["files_roots"]))
    server.run(
        service, scheduler, stop, listen, until_idle=until_idle, on_ready=ready,
        settings=settings, metrics=metrics,
    )  # fmt: skip


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
@state_option
@handle_errors
def admin_init(password_file: Path | None, state: Storage) -> None:
    """Set (or change) the admin password of `mailferry serve`; ends every browser session."""
    from mailferry.web.credentials import AuthStore  # noqa: PLC0415 - see _serve_web

    password = read_secret(password_file, ADMIN_PASSWORD_ENV, "Admin password", required=True)
    if password is None:
        raise ConfigError(f"no password: give --password-file or set ${ADMIN_PASSWORD_ENV}")
    auth = AuthStore.open(state)
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
@click.option(
    "--expires",
    metavar="DURATION",
    help="Refuse the token after this long (e.g. 30d, 12h); without it, valid until revoked.",
)
@state_option
@handle_errors
def token_create(name: str, expires: str | None, state: Storage) -> None:
    """Create a token and print it, once: it is stored only as a hash."""
    from mailferry.web.credentials import AuthStore  # noqa: PLC0415 - see _serve_web

    lifetime = parse_duration(expires, "--expires") if expires else None
    auth = AuthStore.open(state)
    try:
        value = auth.create_token(name, lifetime)
    finally:
        auth.close()
    click.echo(value)


@token.command("list")
@state_option
@handle_errors
def token_list(state: Storage) -> None:
    """List the tokens: name, created, last used, expiry (never the token itself)."""
    from mailferry.web.credentials import AuthStore  # noqa: PLC0415 - see _serve_web

    auth = AuthStore.open(state)
    try:
        tokens = auth.tokens()
    finally:
        auth.close()
    if not tokens:
        click.echo("no tokens")
    now = time.time()
    for info in tokens:
        if info.expires is None:
            expiry = "never expires"
        else:
            expiry = f"{'expired' if info.expires <= now else 'expires'} {_when(info.expires)}"
        used = _when(info.last_used) if info.last_used else "never"
        click.echo(f"{info.name}\tcreated {_when(info.created)}\tlast used {used}\t{expiry}")


def _when(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(moment))


@token.command("revoke")
@click.argument("name")
@state_option
@handle_errors
def token_revoke(name: str, state: Storage) -> None:
    """Revoke a token by name."""
    from mailferry.web.credentials import AuthStore  # noqa: PLC0415 - see _serve_web

    auth = AuthStore.open(state)
    try:
        if not auth.revoke_token(name):
            raise ConfigError(f"no token {name!r}")
    finally:
        auth.close()
    click.echo(f"token {name} revoked")
