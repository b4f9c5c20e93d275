"""A directory tree of ``.eml`` files as a read-only MailAccount.

The root directory is INBOX, each subdirectory a folder (delimiter ``/``), each ``*.eml`` file
(any case) a message, in name order. An EML file carries no flags, so messages are copied as
read (``\\Seen``: an archive is mail already dealt with). The date is the ``Date:`` field; a
message without a usable one is dated by its file time, and noted in the run's summary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mailferry.adapters.files import rfc822
from mailferry.adapters.files.account import Entry, FileAccount, Listing, digest_validity
from mailferry.domain.errors import AccountError, FolderError
from mailferry.domain.model import FolderInfo

SEEN = frozenset({"\\Seen"})
UNDATED = "dated by its file time (no usable Date: field)"


@dataclass
class EmlListing:
    directory: Path
    names: list[str]
    uidvalidity: int
    undated: set[int] = field(default_factory=set)  # no usable Date: (seen by ``entry``)

    def __len__(self) -> int:
        return len(self.names)

    def entry(self, index: int) -> Entry:
        path = self.directory / self.names[index]
        try:
            with path.open("rb") as source:
                head = rfc822.header_block(source.read(rfc822.HEAD_LIMIT))
            when = rfc822.header_date(head)
            if when is None:
                self.undated.add(index)
                when = rfc822.from_epoch(path.stat().st_mtime)
        except OSError:
            when = rfc822.from_epoch(0)  # unreadable: fetching it reports why
        return Entry(SEEN, when, None)

    def read(self, index: int) -> bytes:
        return rfc822.crlf((self.directory / self.names[index]).read_bytes())

    def head(self, index: int) -> bytes:
        with (self.directory / self.names[index]).open("rb") as source:
            return source.read(rfc822.HEAD_LIMIT)

    def where(self, index: int) -> str:
        return str(self.directory / self.names[index])

    def note(self, index: int) -> str | None:
        return UNDATED if index in self.undated else None


class EmlAccount(FileAccount):
    delimiter_char = "/"

    def __init__(self, root: Path) -> None:
        super().__init__()
        if not root.is_dir():
            raise AccountError(f"{root}: not a directory")
        self.root = root

    def _directory(self, folder: str) -> Path:
        if folder.upper() == "INBOX":
            return self.root
        parts = folder.split("/")
        if any(not p or p in {".", ".."} for p in parts):
            raise FolderError(folder, "invalid folder name")
        return self.root.joinpath(*parts)

    def list_folders(self) -> list[FolderInfo]:
        folders = [FolderInfo("INBOX", "/", frozenset(), subscribed=True)]
        for dirpath, dirs, _files in os.walk(self.root):
            dirs.sort()
            for name in dirs:
                relative = (Path(dirpath) / name).relative_to(self.root)
                folders.append(
                    FolderInfo("/".join(relative.parts), "/", frozenset(), subscribed=True)
                )
        return sorted(folders, key=lambda f: f.name)

    def _stamp(self, folder: str) -> object:
        directory = self._directory(folder)
        try:
            return directory.stat().st_mtime_ns
        except OSError as exc:
            raise FolderError(folder, f"{directory}: {exc.strerror}") from None

    def _load(self, folder: str) -> Listing:
        directory = self._directory(folder)
        try:
            names = sorted(
                p.name
                for p in directory.iterdir()
                if p.name.lower().endswith(".eml") and p.is_file()
            )
        except OSError as exc:
            raise FolderError(folder, f"{directory}: {exc.strerror}") from None
        sizes = []  # with the time: an edited file is another message
        for name in names:
            try:
                stat = (directory / name).stat()
                sizes.append(f"{stat.st_size}\0{stat.st_mtime_ns}")
            except OSError:
                sizes.append("?")
        validity = digest_validity(f"{n}\0{s}".encode() for n, s in zip(names, sizes, strict=True))
        return EmlListing(directory, names, validity)
