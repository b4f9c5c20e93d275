"""``mailferry endpoint add|list|remove|test``: the servers mailboxes are migrated from and to, and
how their mailboxes log in (passwords, an admin login, or a token source)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from mailferry.adapters.secrets import Secret
from mailferry.adapters.store.records import EndpointRecord
from mailferry.bootstrap import load_token_source
from mailferry.cli.common import (
    ENDPOINT_PASSWORD_ENV,
    TEST_PASSWORD_ENV,
    F,
    open_batch_service,
    read_secret,
    state_option,
)
from mailferry.cli.console import out
from mailferry.cli.exits import (
    handle_errors,
)
from mailferry.cli.options import apply, token_options
from mailferry.config import Storage
from mailferry.domain.errors import AccountError, ConfigError
from mailferry.domain.model import Security
from mailferry.domain.profiles import PROFILE_NAMES
from mailferry.service.batches import (
    EndpointSpec,
)
from mailferry.service.endpoints import login_kind
from mailferry.service.fileroutes import probe_files
from mailferry.service.graphprobe import probe_record, report_lines
from mailferry.service.probe import probe


def _token_options(func: F) -> F:
    profile = click.option(
        "--profile",
        type=click.Choice(PROFILE_NAMES),
        default="auto",
        show_default=True,
        help="Provider profile (system folders, reserved names, size limit); auto: by host.",
    )
    return apply(func, [*token_options(None), profile])


# -- endpoints ---------------------------------------------------------------------------------------
@click.group()
def endpoint() -> None:
    """Servers that batches migrate from and to."""


@endpoint.command("add")
@click.argument("name")
@click.option("--host", default="", help="The IMAP server (else --files).")
@click.option(
    "--files",
    metavar="TEMPLATE",
    help="Mail in files instead of a server: a file URL with {user} for the mailbox's user of "
    "the CSV (maildir:///var/vmail/old.example/{user}, pst:///shares/{user}/archive.pst, "
    "mbox:///backup/{user}.mbox). Sources: maildir, mbox, eml, pst; targets: maildir, mbox.",
)
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
@click.option(
    "--dav",
    metavar="TEMPLATE",
    help="Calendars and contacts too: the mailboxes' CalDAV/CardDAV URL, with {user} for the "
    "mailbox's user (https://dav.example.com/{user}/), or 'auto' (https://HOST/, discovered). "
    "A batch moves them when both its endpoints have one; same logins as IMAP.",
)
@click.option(
    "--dav-ca-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The DAV server's CA (default: --ca-file).",
)
@click.option(
    "--dav-insecure", is_flag=True, help="Do not verify the DAV server's certificate (unsafe)."
)
@click.option("--replace", is_flag=True, help="Change an existing endpoint.")
@_token_options
@state_option
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
        m365_graph_url=kw["m365_graph_url"],
    )
    password = None
    if kw["auth_user"]:
        password = read_secret(
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
        dav=kw["dav"],
        dav_ca_file=kw["dav_ca_file"],
        dav_insecure=True if kw["dav_insecure"] else None,  # not given: as --insecure
        files=kw["files"],
    )
    with open_batch_service(kw["state"]) as service:
        record = service.add_endpoint(spec, replace=kw["replace"])
    if record.files:
        click.echo(f"endpoint {record.name}: files at {record.files}")
        return
    login = f", {login_kind(record)} login" if spec.token_source else ""
    dav = f", calendars and contacts at {record.dav}" if record.dav else ""
    click.echo(
        f"endpoint {record.name}: {record.security}://{record.host}:{record.port}{login}{dav}"
    )


@endpoint.command("list")
@click.option("--json", "as_json", is_flag=True)
@state_option
@handle_errors
def endpoint_list(as_json: bool, state: Storage) -> None:
    """Every endpoint (never its password or token secrets)."""
    with open_batch_service(state) as service:
        records = service.endpoints()
    rows = [_row(r) for r in records]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table()
    for column in (
        "name", "host", "port", "security", "auth_user", "max_connections", "auth", "login",
        "profile", "dav", "files",
    ):  # fmt: skip
        table.add_column(column)
    hidden = {"insecure", "dav_ca_file", "dav_insecure"}
    for row in rows:
        table.add_row(*(str(row[c] or "") for c in row if c not in hidden))
    out.print(table)


@endpoint.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@state_option
@handle_errors
def endpoint_show(name: str, as_json: bool, state: Storage) -> None:
    """One endpoint's settings (never its password or token secrets)."""
    with open_batch_service(state) as service:
        row = _row(service.endpoint(name))
    if as_json:
        click.echo(json.dumps(row, indent=2))
        return
    for key, value in row.items():
        click.echo(f"{key}: {'' if value is None else value}")


def _row(r: EndpointRecord) -> dict[str, Any]:
    return {
        "name": r.name,
        "host": r.host,
        "port": r.port,
        "security": r.security,
        "auth_user": r.auth_user,
        "max_connections": r.max_connections,
        "auth": r.auth,
        "login": login_kind(r),
        "profile": r.profile,
        "dav": r.dav,
        "insecure": r.insecure,
        "dav_ca_file": r.dav_ca_file,
        "dav_insecure": r.dav_insecure,
        "files": r.files,
    }


@endpoint.command("remove")
@click.argument("name")
@state_option
@handle_errors
def endpoint_remove(name: str, state: Storage) -> None:
    """Remove an endpoint no batch uses."""
    with open_batch_service(state) as service:
        service.remove_endpoint(name)
    click.echo(f"endpoint {name} removed")


@endpoint.command("test")
@click.argument("name")
@click.option("--user", help="Log in as USER (password: --password-file or $MAILFERRY_PASSWORD).")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--timeout", type=float, default=30.0, show_default=True)
@state_option
@handle_errors
def endpoint_test(name: str, user: str | None, password_file: Path | None, **kw: Any) -> None:
    """Connect and log in (as the admin, as --user, or with the endpoint's token as the mailbox
    --user); print the login methods offered, the one used, the profile and the capabilities.

    Without a login to test with (no --user, no admin login) it checks the connection, TLS, the
    login methods offered and the capabilities, and says it did not log in."""

    def password_of(login: str) -> Secret:
        found = read_secret(password_file, TEST_PASSWORD_ENV, "Password", required=True)
        if found is None:
            raise ConfigError(f"no password for {login}: set ${TEST_PASSWORD_ENV}")
        return found

    with open_batch_service(kw["state"]) as service:
        record = service.endpoint(name)
        if record.files:
            click.echo(probe_files(record.files, user))
            return
        result = probe(service, record, user, password_of, timeout=kw["timeout"])
        graph = probe_record(service, record, user, kw["timeout"])
    if result.error is not None:
        raise AccountError(result.error)
    how = "by host" if result.profile_by_host else "chosen"
    if result.logged_in:
        click.echo(f"{result.address}: reachable, login ok, delimiter {result.delimiter!r}")
    else:
        click.echo(f"{result.address}: reachable; {result.note}")
    click.echo(f"TLS: {result.tls}")
    click.echo("login methods offered: " + (" ".join(result.offered) or "none"))
    if result.logged_in:
        click.echo(f"login used: {result.method}" + (" (token)" if result.token else ""))
    click.echo(f"profile: {result.profile} ({how})")
    click.echo("capabilities: " + " ".join(result.capabilities))
    if graph is not None:
        for line in report_lines(graph):
            click.echo(line)
        if graph.error is not None:
            raise AccountError(graph.error)
