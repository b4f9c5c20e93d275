"""Exit codes of the ``mailferry`` commands, and the one place a MailferryError becomes one.

0 all copied (or identical); 1 some messages failed (or verify found differences); 2 usage or configuration
error (a state database of an older schema too); 3 a server (the state database's too) cannot be
reached or a login fails; 130 stopped on request (SIGINT/SIGTERM).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from mailferry.domain.errors import (
    AccountError,
    ConfigError,
    MailferryError,
    StateError,
    StateUnreachableError,
)

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_CONNECT, EXIT_STOPPED = 0, 1, 2, 3, 130


def handle_errors(func: F) -> F:
    """Every MailferryError becomes an exit code and one line on stderr; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(f"mailferry: {problem}", err=True)
            sys.exit(EXIT_CONFIG)
        except StateUnreachableError as exc:
            click.echo(f"mailferry: state database: {exc}", err=True)
            sys.exit(EXIT_CONNECT)
        except StateError as exc:
            click.echo(f"mailferry: state database: {exc}", err=True)
            sys.exit(EXIT_CONFIG)
        except AccountError as exc:
            click.echo(f"mailferry: {exc}", err=True)
            sys.exit(EXIT_CONNECT)
        except MailferryError as exc:
            click.echo(f"mailferry: {exc}", err=True)
            sys.exit(EXIT_FAILED)
        except KeyboardInterrupt:
            click.echo("mailferry: interrupted; run again to resume", err=True)
            sys.exit(EXIT_STOPPED)

    return wrapper  # type: ignore[return-value]
