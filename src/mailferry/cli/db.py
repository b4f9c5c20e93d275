"""``mailferry db``: the state database's schema. ``db upgrade`` creates or upgrades every
component's tables (sync state, batches, web logins) in one place: a shared PostgreSQL database is
never upgraded by whichever worker opens it first, only here (a SQLite file upgrades itself on
open, and may be upgraded here too)."""

from __future__ import annotations

import click

from mailferry import bootstrap
from mailferry.cli.common import state_option
from mailferry.cli.exits import handle_errors
from mailferry.config import Storage


@click.group()
def db() -> None:
    """The state database: create or upgrade its schema."""


@db.command("upgrade")
@state_option
@handle_errors
def db_upgrade(state: Storage) -> None:
    """Create the state database's tables, or bring them up to this mailferry's schema."""
    where, steps = bootstrap.upgrade_database(state.state_path, state.database)
    for application, found, now in steps:
        if application == "procrastinate":  # the job queue has no version of ours
            click.echo(f"{application}: {'created' if found is None else 'present'}")
        elif found is None:
            click.echo(f"{application}: created at schema {now}")
        elif found < now:
            click.echo(f"{application}: upgraded from schema {found} to {now}")
        else:
            click.echo(f"{application}: schema {now}, up to date")
    click.echo(f"mailferry db upgrade: {where} is ready", err=True)
