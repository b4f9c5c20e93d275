"""What a file target makes of a write that fails.

A full disk (or a spent disk quota) is no fault of the message being written: every message
after it would fail the same way. It stops the run as a full IMAP mailbox does
(``TargetFullError``): what was copied stays, what is left is counted as remaining, and the run
after more space copies the rest, nothing twice. The burst being written is taken back first
(Maildir: its files in ``tmp/``; mbox: the file cut back to where the burst began), so no reader
ever sees part of a message. Any other failure to write is the folder's (``FolderError``).
"""

from __future__ import annotations

import errno
from pathlib import Path

from mailferry.domain.errors import FolderError, TargetFullError

DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: OSError) -> bool:
    return exc.errno in DISK_FULL


def disk_full(where: Path, exc: OSError) -> TargetFullError:
    return TargetFullError(
        f"the target disk is full ({where}: {exc.strerror}); free some space (or raise the "
        "quota) and run again: what was copied stays, nothing is copied twice"
    )


def write_failed(folder: str, where: Path, exc: OSError) -> TargetFullError | FolderError:
    """The error for a burst that could not be written to ``where``."""
    if is_disk_full(exc):
        return disk_full(where, exc)
    return FolderError(folder, f"{where}: {exc.strerror or exc}")
