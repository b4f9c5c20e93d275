"""What the service commands (``endpoint``, ``batch``, ``serve``, ``admin``, ``token``) share: the
``--state`` option, the service they open, secrets read from files or the environment, durations,
and stopping on SIGINT/SIGTERM."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from mailferry import bootstrap
from mailferry.adapters.secrets import Secret
from mailferry.config import DATABASE_ENV, STATE_ENV, Storage, parse_database_url
from mailferry.domain.errors import ConfigError
from mailferry.service.batches import (
    BatchService,
)

F = TypeVar("F", bound=Callable[..., Any])
ENDPOINT_PASSWORD_ENV = "MAILFERRY_ENDPOINT_PASSWORD"  # noqa: S105 - a variable's name
TEST_PASSWORD_ENV = "MAILFERRY_PASSWORD"  # noqa: S105 - a variable's name
ADMIN_PASSWORD_ENV = "MAILFERRY_ADMIN_PASSWORD"  # noqa: S105 - a variable's name
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def state_option(func: F) -> F:
    """``--state FILE`` and ``--database URL``, given to the command as one ``state: Storage``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        database = kwargs.pop("database")
        kwargs["state"] = Storage(kwargs.get("state"), database)
        return func(*args, **kwargs)

    options = [
        click.option(
            "--state",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar=STATE_ENV,
            help=f"State database file (default ~/.local/share/mailferry/state.sqlite3; "
            f"${STATE_ENV}); its directory holds the key ring.",
        ),
        click.option(
            "--database",
            metavar="URL",
            envvar=DATABASE_ENV,
            callback=_database_url,
            help=f"A shared state database in place of the file: postgresql://USER@HOST/DB "
            f"(${DATABASE_ENV}; password from $PGPASSWORD or ~/.pgpass). Create or upgrade its "
            "schema with `mailferry db upgrade`.",
        ),
    ]
    decorated: Any = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


def _database_url(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if not value:
        return None
    try:
        return parse_database_url(value)
    except ConfigError as exc:
        raise click.BadParameter(exc.problems[0].removeprefix("--database").strip(" :")) from None


@contextlib.contextmanager
def open_batch_service(state: Storage) -> Iterator[BatchService]:
    service = bootstrap.open_service(state.state_path, state.database)
    try:
        yield service
    finally:
        service.close()


def read_secret(path: Path | None, env: str, label: str, *, required: bool) -> Secret | None:
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


def parse_duration(text: str, option: str = "--every") -> float:
    match = DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"{option} {text!r}: expected a duration such as 90m, 24h or 7d")
    return float(match.group(1)) * UNITS[match.group(2)]


@contextlib.contextmanager
def signals(stop: threading.Event) -> Iterator[None]:
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
