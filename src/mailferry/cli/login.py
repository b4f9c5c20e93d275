"""``mailferry login``: a Microsoft 365 user signs in (device code flow) ahead of a migration.

The sign-in (msal's token cache with the refresh token) is stored encrypted beside the state
database, where ``mailferry sync --source-m365-delegated`` (or ``--target-…``), ``verify`` and the
batch service's delegated endpoints look for it: see ``adapters/oauth/delegated.py``. Loaded only
when asked for (``cli._Commands``); msal itself is imported only when the sign-in starts.
"""

from __future__ import annotations

from pathlib import Path

import click

from mailferry.adapters.oauth.app_only import M365_AUTHORITY_HOST
from mailferry.adapters.oauth.delegated import DEFAULT_TENANT
from mailferry.adapters.oauth.signin import SignInOptions
from mailferry.adapters.oauth.sources import TokenSource, delegated_grant
from mailferry.cli.exits import handle_errors
from mailferry.config import STATE_ENV, parse_endpoint


@click.command()
@click.argument("url", metavar="URL")
@click.option(
    "--m365-client-id",
    required=True,
    metavar="ID",
    help="The application (client) id of the public client app registration.",
)
@click.option(
    "--m365-tenant",
    default=DEFAULT_TENANT,
    show_default=True,
    metavar="ID",
    help="The tenant (directory) id or domain; organizations: any work or school account.",
)
@click.option(
    "--m365-authority",
    default=M365_AUTHORITY_HOST,
    show_default=True,
    metavar="URL",
    help="Microsoft identity platform host (national clouds differ).",
)
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=STATE_ENV,
    help="The state database whose directory keeps the sign-in (default "
    f"~/.local/share/mailferry/state.sqlite3; ${STATE_ENV}): the one sync or the service uses.",
)
@click.option(
    "--forget",
    is_flag=True,
    help="Remove the stored sign-in instead (revoke the user's sessions in Entra ID as well).",
)
@handle_errors
def login(
    url: str,
    m365_client_id: str,
    m365_tenant: str,
    m365_authority: str,
    state: Path | None,
    forget: bool,
) -> None:
    """Sign in to Microsoft 365 as URL's user (device code); store the sign-in encrypted.

    URL is imaps://USER@HOST, as sync takes it; the sign-in serves later runs of sync, verify and
    batches with --m365-delegated. The verification URL and the code are shown on stderr: open the
    URL anywhere, sign in as USER and enter the code. Nothing is sent to HOST.
    """
    user = parse_endpoint(
        url,
        allow_plaintext=True,
        side="URL",
        hint="login signs in with a device code and takes no password",
    ).user
    source = TokenSource(
        m365_tenant=m365_tenant,
        m365_client_id=m365_client_id,
        m365_authority=m365_authority,
        m365_delegated=True,
    )
    source.check()
    grant = delegated_grant(source, user, SignInOptions(state, url))
    if forget:
        if grant.forget():
            click.echo(f"the sign-in of {user} was removed ({grant.path})")
        else:
            click.echo(f"no sign-in of {user} is stored ({grant.path})")
        return
    path = grant.sign_in(_show)
    click.echo(f"signed in as {user}; the sign-in is stored encrypted in {path}")


def _show(message: str) -> None:
    """msal's device-flow message: the verification URL and the user code, never a token."""
    click.echo(f"mailferry: {message}", err=True)
