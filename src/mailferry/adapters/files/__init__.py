"""Mail in files: Maildir, mbox, EML trees and PST as MailAccounts (sources; Maildir and mbox
targets).

``open_files`` is the one entry point bootstrap uses; ``account.py`` explains the UIDs and the
reports shared by all of them.
"""

from __future__ import annotations

from pathlib import Path

from mailferry.adapters.files.account import FileAccount
from mailferry.adapters.files.eml import EmlAccount
from mailferry.adapters.files.maildir import MaildirAccount
from mailferry.adapters.files.mbox import MboxAccount
from mailferry.adapters.files.pst import PstAccount
from mailferry.domain.errors import ConfigError

WRITABLE = frozenset({"maildir", "mbox"})


def open_files(kind: str, path: Path, *, writable: bool) -> FileAccount:
    """The account for ``kind`` (maildir, mbox, eml) at ``path``; a target is created if missing."""
    if writable and kind not in WRITABLE:
        raise ConfigError(f"{kind}:// is a source only; a target can be maildir:// or mbox://")
    if kind == "maildir":
        return MaildirAccount(path, writable=writable)
    if kind == "mbox":
        return MboxAccount(path, writable=writable)
    if kind == "eml":
        return EmlAccount(path)
    if kind == "pst":
        return PstAccount(path)
    raise ConfigError(f"{kind}://: not a file format mailferry reads")


__all__ = ["EmlAccount", "FileAccount", "MaildirAccount", "MboxAccount", "PstAccount", "open_files"]
