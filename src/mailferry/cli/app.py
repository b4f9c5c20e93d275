"""The ``mailferry`` command: one module a command group (sync.py: sync and verify; batch.py,
endpoint.py, serve.py: the migration service; login.py), options they share in options.py. Maps every MailferryError to an exit code and one clear line.

Exit codes: 0 all copied (or identical); 1 some messages failed (or verify found differences);
2 usage or configuration error; 3 a server cannot be reached or a login fails.
"""

from __future__ import annotations

import click

from mailferry import __version__
from mailferry.cli.sync import sync, verify
from mailferry.logs import FORMATS, LEVEL_ENV, LEVELS, configure


class _Commands(click.Group):
    """``sync`` and ``verify`` here; the service commands (endpoint, batch, serve, admin, token) are
    loaded from cli/batch.py, and ``login`` from cli/login.py, only when asked for, so that
    ``mailferry sync`` starts without them."""

    SERVICE = ("admin", "batch", "db", "endpoint", "serve", "token", "worker")

    def _load_service(self) -> None:
        if "batch" not in self.commands:
            from mailferry.cli.batch import register  # noqa: PLC0415 - see the class docstring

            register(self)

    def _load_login(self) -> None:
        if "login" not in self.commands:
            from mailferry.cli.login import login  # noqa: PLC0415 - see the class docstring

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


main.add_command(sync)
main.add_command(verify)
