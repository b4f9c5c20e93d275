"""The options that several commands share: one factory for the token options (a side of ``sync``
and ``verify``, or an endpoint), the options of each side, and those of ``sync``/``verify``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mailferry.adapters.oauth.app_only import M365_AUTHORITY_HOST
from mailferry.config import password_env
from mailferry.domain.labels import LabelMode
from mailferry.domain.model import AuthMethod
from mailferry.domain.profiles import PROFILE_NAMES

F = TypeVar("F", bound=Callable[..., Any])


def apply(func: F, options: list[Callable[[F], F]]) -> F:
    """``options`` as decorators, in the order given (the first one listed first in --help)."""
    for option in reversed(options):
        func = option(func)
    return func


def token_options(side: str | None) -> list[Callable[[F], F]]:
    """The token options of one side of ``sync``/``verify`` (``--source-m365-tenant``, …), or with
    ``side`` None those of an endpoint (``--m365-tenant``, …), whose secrets are stored encrypted
    and whose tokens serve every mailbox of the endpoint."""
    p = f"--{side}-" if side else "--"
    who = f"the {side}" if side else "mailboxes"
    kept = "" if side else " (stored encrypted)"
    file = click.Path(exists=True, dir_okay=False, path_type=Path)
    return [
        click.option(
            f"{p}auth",
            type=click.Choice([m.value for m in AuthMethod]),
            default=AuthMethod.AUTO.value,
            show_default=True,
            help=f"How {who} log{'s' if side else ''} in: auto takes a token login (SASL XOAUTH2, else OAUTHBEARER) "
            "when a token source is given, else the password.",
        ),
        click.option(
            f"{p}oauth-token-command",
            metavar="CMD",
            help="Run CMD for an OAuth2 access token (its stdout: the token, or JSON with "
            "access_token and expires_in); run again to refresh."
            + ("" if side else " One token for every mailbox."),
        ),
        click.option(
            f"{p}m365-tenant",
            metavar="ID",
            help="Microsoft 365: the tenant (directory) id (app-only: required; delegated: "
            "default organizations).",
        ),
        click.option(f"{p}m365-client-id", metavar="ID", help="Microsoft 365: the application id."),
        click.option(
            f"{p}m365-delegated",
            is_flag=True,
            help="Microsoft 365 delegated: "
            + (
                "the URL's user signs in with their own account (`mailferry login` beforehand, "
                "or inline when run in a terminal)."
                if side
                else "each mailbox user signs in beforehand with `mailferry login`."
            )
            + f" Device code; needs {p}m365-client-id of a public client app, no secret.",
        ),
        click.option(
            f"{p}m365-client-secret-file",
            type=file,
            help=f"Microsoft 365 app-only: a file holding the client secret{kept}.",
        ),
        click.option(
            f"{p}m365-certificate-file",
            type=file,
            help=f"Microsoft 365 app-only: a PEM file with the certificate and its private key{kept}.",
        ),
        click.option(
            f"{p}m365-authority",
            metavar="URL",
            default=M365_AUTHORITY_HOST,
            show_default=True,
            help="Microsoft identity platform host (national clouds differ).",
        ),
        click.option(
            f"{p}m365-graph-url",
            metavar="URL",
            help="Microsoft Graph's base URL (default https://graph.microsoft.com; national "
            "clouds: see docs/microsoft365.md). Given, "
            + (f"the {side}" if side else "the endpoint")
            + " is Microsoft 365 through Graph for calendars, contacts, tasks and notes.",
        ),
        click.option(
            f"{p}google-service-account-file",
            type=file,
            help=f"Google Workspace: a service account key (JSON) with domain-wide delegation{kept}; "
            "each token acts as the mailbox.",
        ),
    ]


def side_options(side: str) -> Callable[[F], F]:
    def decorate(func: F) -> F:
        for option in reversed(
            [
                click.option(
                    f"--{side}-password-file",
                    type=click.Path(dir_okay=False, path_type=Path),
                    help=f"Read the {side} password from this file (else ${password_env(side)}).",
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
                *token_options(side),
                click.option(
                    f"--{side}-profile",
                    type=click.Choice(PROFILE_NAMES),
                    default=None,
                    help=f"Provider profile of the {side} (default: --profile).",
                ),
            ]
        ):
            func = option(func)
        return func

    return decorate


def common_options(func: F) -> F:
    options = [
        click.argument("source_url", metavar="SOURCE"),
        click.argument("target_url", metavar="TARGET"),
        side_options("source"),
        side_options("target"),
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
        click.option(
            "--database",
            metavar="URL",
            help="A shared state database in place of --state: postgresql://USER@HOST/DB "
            "(password from $PGPASSWORD or ~/.pgpass).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func
