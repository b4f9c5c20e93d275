"""rich's two consoles, standard output's and standard error's, made when first printed to.

A run whose output is JSON, or that prints nothing, never loads rich's console, colour tables and
styles (issue #17 rule 2: every start of the command paid for them; benchmarks/README.md, "Many
folders"). ``mailferry.logs`` keeps structlog from loading rich too.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


class LazyConsole:
    """What the commands use of a rich ``Console``; ``console`` is the console itself."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr

    @functools.cached_property
    def console(self) -> Console:
        from rich.console import Console  # noqa: PLC0415 - loaded when first printed to

        return Console(stderr=self._stderr, highlight=False)

    @property
    def is_terminal(self) -> bool:
        return self.console.is_terminal

    def print(self, *objects: Any, **kwargs: Any) -> None:
        self.console.print(*objects, **kwargs)


out = LazyConsole(stderr=False)
err = LazyConsole(stderr=True)
