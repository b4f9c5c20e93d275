"""Where a delegated sign-in is kept and how it is shown (see delegated.py, which uses them). Apart
from delegated.py so that every run can name them without loading msal's or the key ring's code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Show = Callable[[str], None]


@dataclass(frozen=True)
class SignInOptions:
    """What a caller adds to a delegated source's settings (delegated.py's docstring): the state
    database beside which sign-ins are kept (None: the default one), the mailbox URL the sign-in
    instruction names, and, in interactive runs only, where to show a device-flow message."""

    state_path: Path | None = None
    url: str | None = None  # imaps://USER@HOST, for the instruction (default: Exchange Online's)
    show: Show | None = field(default=None, compare=False)  # interactive: sign in inline
