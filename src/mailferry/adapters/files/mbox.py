"""mbox files as a MailAccount: one file (one folder, INBOX), or a directory of them (folders).

In a directory, ``NAME.mbox`` is the folder NAME and the directory ``NAME/`` (or Thunderbird's
``NAME.sbd/``) holds its subfolders; Thunderbird's files without a suffix are read too (any file
that starts with ``From ``), ``INBOX.mbox`` or ``Inbox`` is INBOX. The delimiter is ``/``. A file
target writes ``NAME.mbox`` and ``NAME/`` for children: names Thunderbird's import, mutt and
Python's ``mailbox`` read as they are.

A single file whose messages carry Gmail's ``X-Gmail-Labels`` (a Google Takeout export) is shown
as Gmail's IMAP shows the account: one folder per label, ``[Gmail]/All Mail`` with every message
but Spam and Trash, stars as ``\\Flagged`` and "Unread" as the absence of ``\\Seen``. Its folders
are labels (``folders_are_labels``): the run copies each message once, or once per label, as the
``--labels`` option says for Gmail itself (``domain/labels.py``).
"""

from __future__ import annotations

import contextlib
import io
import os
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mailferry.adapters.files import rfc822
from mailferry.adapters.files.account import (
    Entry,
    FileAccount,
    Listing,
    digest_validity,
    folder_tree,
)
from mailferry.adapters.files.mboxfile import (
    COUNTED,
    PLAIN,
    UNDATED_BIT,
    Scanned,
    read_head,
    read_message,
    scan,
)
from mailferry.adapters.files.mboxwrite import mbox_entry, rewrite_flags
from mailferry.adapters.files.writefail import write_failed
from mailferry.domain.errors import AccountError, FolderError
from mailferry.domain.model import AppendRequest, AppendResult, FolderInfo
from mailferry.logs import get_logger

log = get_logger(__name__)

ALL_MAIL = "[Gmail]/All Mail"
UNDATED = "dated from its Date: field or the file time (no date on its From line)"
# Takeout's system labels -> (folder, special use); None: a state, not a folder.
_SYSTEM_LABELS: dict[str, tuple[str, str | None] | None] = {
    "inbox": ("INBOX", None),
    "sent": ("[Gmail]/Sent Mail", "\\Sent"),
    "drafts": ("[Gmail]/Drafts", "\\Drafts"),
    "spam": ("[Gmail]/Spam", "\\Junk"),
    "trash": ("[Gmail]/Trash", "\\Trash"),
    "starred": None,
    "important": None,
    "opened": None,
    "unread": None,
    "archived": None,
}


@dataclass
class MboxListing:
    path: Path
    scanned: Scanned
    view: array[int] | None = None  # a label folder: the indexes of its messages
    label_flags: bool = False  # Takeout: stars and "Unread" labels are flags
    validity: int = 0

    @property
    def uidvalidity(self) -> int:
        return self.validity or self.scanned.validity

    def __len__(self) -> int:
        return len(self.view) if self.view is not None else len(self.scanned.starts)

    def _at(self, index: int) -> int:
        return self.view[index] if self.view is not None else index

    def entry(self, index: int) -> Entry:
        at = self._at(index)
        flags = self.scanned.flags(at)
        if self.label_flags:
            labels = {label.lower() for label in self.scanned.labels.get(at, ())}
            flags = flags - {"\\Seen", "\\Flagged"}
            flags |= {"\\Flagged"} if "starred" in labels else set()
            flags |= set() if "unread" in labels else {"\\Seen"}
        when = rfc822.from_epoch(self.scanned.dates[at])
        return Entry(frozenset(flags), when, self.scanned.sizes[at])

    def read(self, index: int) -> bytes:
        at = self._at(index)
        if self.scanned.truncated and at == len(self.scanned.starts) - 1:
            msg = "the file ends inside this message (truncated mbox)"
            raise ValueError(msg)
        scanned = self.scanned
        where = (scanned.starts[at], scanned.ends[at], scanned.heads[at])
        with self.path.open("rb") as source:
            bits = scanned.flag_bits[at]
            return read_message(source, where, unquote=not bits & COUNTED, plain=bool(bits & PLAIN))

    def head(self, index: int) -> bytes:
        at = self._at(index)
        with self.path.open("rb") as source:
            return read_head(source, self.scanned.starts[at], self.scanned.heads[at])

    def where(self, index: int) -> str:
        return f"{self.path} at byte {self.scanned.starts[self._at(index)]}"

    def note(self, index: int) -> str | None:
        return UNDATED if self.scanned.flag_bits[self._at(index)] & UNDATED_BIT else None


@dataclass
class _Labels:
    """A Takeout file's folders: label folder -> message indexes, and their special use."""

    members: dict[str, array[int]] = field(default_factory=dict)
    special: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, scanned: Scanned) -> _Labels:
        found = cls()
        found.special[ALL_MAIL] = "\\All"
        for index in range(len(scanned.starts)):
            labels = scanned.labels.get(index, ())
            folders = [_label_folder(label) for label in labels]
            names = {f[0]: f[1] for f in folders if f is not None}
            if not ({"[Gmail]/Spam", "[Gmail]/Trash"} & names.keys()):
                names[ALL_MAIL] = "\\All"
            for name, special in names.items():
                found.members.setdefault(name, array("q")).append(index)
                if special:
                    found.special[name] = special
        found.members.setdefault(ALL_MAIL, array("q"))
        return found


def _label_folder(label: str) -> tuple[str, str | None] | None:
    if label.lower() in _SYSTEM_LABELS:
        return _SYSTEM_LABELS[label.lower()]
    if label.lower().startswith("category "):
        return None
    return (label, None)


class MboxAccount(FileAccount):
    delimiter_char = "/"

    def __init__(self, path: Path, *, writable: bool = False) -> None:
        super().__init__()
        self.path = path
        self.writable = writable
        self.single = path.is_file() or (not path.exists() and path.suffix == ".mbox")
        if writable and self.single:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        elif writable:
            path.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            raise AccountError(f"{path}: no such file or directory")
        self._scans: dict[Path, tuple[tuple[int, int], Scanned]] = {}
        self._labels: _Labels | None = None

    @property
    def folders_are_labels(self) -> bool:
        """A Takeout export: the folders are Gmail labels (see the module docstring)."""
        return self._takeout() is not None

    def _takeout(self) -> _Labels | None:
        if not self.single or not self.path.exists():
            return None
        scanned = self._scan(self.path)
        if not scanned.labels:
            return None
        if self._labels is None:
            self._labels = _Labels.of(scanned)
        return self._labels

    def _scan(self, path: Path) -> Scanned:
        try:
            stat = path.stat()
        except OSError as exc:
            raise FolderError(str(path), exc.strerror or str(exc)) from None
        stamp = (stat.st_size, stat.st_mtime_ns)
        cached = self._scans.get(path)
        if cached is None or cached[0] != stamp:
            try:
                cached = (stamp, scan(path))
            except OSError as exc:
                raise FolderError(str(path), exc.strerror or str(exc)) from None
            self._scans[path] = cached
            self._labels = None
            if cached[1].undated:  # dated from Date: (or the file time) instead
                log.warning("mbox.undated", file=str(path), messages=cached[1].undated)
        return cached[1]

    # -- folders ------------------------------------------------------------------------------------
    def _file(self, folder: str) -> Path:
        if self.single:
            if folder.upper() != "INBOX":
                raise FolderError(folder, f"{self.path} is one mbox file: it holds INBOX only")
            return self.path
        files = self._folder_files()
        key = "INBOX" if folder.upper() == "INBOX" else folder
        if key in files:
            return files[key]
        parts = key.split("/")
        if any(not p or p in {".", ".."} for p in parts):
            raise FolderError(folder, "invalid folder name")
        return self.path.joinpath(*parts[:-1], parts[-1] + ".mbox")

    def _folder_files(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for dirpath, dirs, files in os.walk(self.path):
            dirs[:] = [d for d in dirs if not d.startswith(".")]  # Dovecot's .imap indexes
            base = Path(dirpath)
            levels = [p.removesuffix(".sbd") for p in base.relative_to(self.path).parts]
            for name in sorted(files):
                path = base / name
                folder = _folder_name(levels, name, path)
                if folder is not None:
                    found.setdefault(folder, path)
        return found

    def list_folders(self) -> list[FolderInfo]:
        labels = self._takeout()
        if labels is not None:
            return sorted(
                (
                    FolderInfo(n, "/", _special(labels.special.get(n)), subscribed=True)
                    for n in labels.members
                ),
                key=lambda f: f.name,
            )
        names = {"INBOX"} if self.single else set(self._folder_files()) | {"INBOX"}
        return folder_tree(names, "/")

    def _stamp(self, folder: str) -> object:
        labels = self._takeout()
        path = self.path if labels is not None else self._file(folder)
        if not path.exists() and folder.upper() == "INBOX":
            return None
        stat = path.stat() if path.exists() else None
        if stat is None:
            raise FolderError(folder, f"{path}: no such folder")
        return (stat.st_size, stat.st_mtime_ns)

    def _load(self, folder: str) -> Listing:
        labels = self._takeout()
        if labels is not None:
            if folder not in labels.members:
                raise FolderError(folder, "no such label")
            scanned = self._scan(self.path)
            validity = digest_validity([scanned.validity.to_bytes(4, "big"), folder.encode()])
            return MboxListing(
                self.path, scanned, labels.members[folder], label_flags=True, validity=validity
            )
        path = self._file(folder)
        if not path.exists():
            return MboxListing(path, Scanned())
        return MboxListing(path, self._scan(path))

    # -- writing ------------------------------------------------------------------------------------
    def create_folder(self, name: str) -> None:
        if not self.writable:
            super().create_folder(name)
        path = self._file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()

    def append_batch(self, folder: str, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        if not self.writable:
            return super().append_batch(folder, requests)
        path = self._file(folder)
        listing = self.listing(folder)
        assert isinstance(listing, MboxListing)  # noqa: S101 - this class loads only these
        before = len(listing)
        accepted: list[int] = []
        refused: dict[int, str] = {}
        # Unbuffered: what a failed write leaves is on the disk, to be cut off, not in a buffer.
        with path.open("ab", buffering=0) as out:
            start = out.tell()
            try:
                for request in requests:
                    data = request.body.read(request.size)
                    if not data:
                        refused[request.key] = "refused: a zero-byte message"
                        continue
                    _write_all(out, mbox_entry(data, request.flags, request.internaldate))
                    accepted.append(request.key)
                os.fsync(out.fileno())
            except OSError as exc:  # the burst is taken back: no message cut off (writefail.py)
                with contextlib.suppress(OSError):
                    os.ftruncate(out.fileno(), start)
                    os.fsync(out.fileno())
                raise write_failed(folder, path, exc) from None
        self._scanned_after_append(path, listing.scanned)
        after = self.listing(folder)
        uids = {key: before + n + 1 for n, key in enumerate(accepted)}
        return [
            AppendResult(r.key, ok=False, reason=refused[r.key])
            if r.key in refused
            else AppendResult(
                r.key, ok=True, target_uid=uids[r.key], target_uidvalidity=after.uidvalidity
            )
            for r in requests
        ]

    def _scanned_after_append(self, path: Path, before: Scanned) -> None:
        """Index only what we appended (whole messages, each ending in an empty line), so that
        a long backup does not read its growing file again after every burst. A file someone
        else touched meanwhile is scanned whole."""
        cached = self._scans.get(path)
        stat = path.stat()
        if before.truncated or cached is None or cached[1] is not before:
            return
        try:
            self._scans[path] = ((stat.st_size, stat.st_mtime_ns), scan(path, resume=before))
        except OSError as exc:
            raise FolderError(str(path), exc.strerror or str(exc)) from None

    def store_flags(self, folder: str, updates: Sequence[tuple[int, frozenset[str]]]) -> None:
        if not self.writable:
            super().store_flags(folder, updates)
        if not updates:
            return
        listing = self.listing(folder)
        assert isinstance(listing, MboxListing)  # noqa: S101 - this class loads only these
        wanted = {uid - 1: flags for uid, flags in updates}
        try:
            rewrite_flags(
                listing.path, listing.scanned, lambda i: wanted.get(i, listing.scanned.flags(i))
            )
        except OSError as exc:
            raise FolderError(folder, f"{listing.path}: {exc.strerror}") from None


def _write_all(out: io.FileIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = out.write(view)
        view = view[written:]


def _special(flag: str | None) -> frozenset[str]:
    return frozenset({flag}) if flag else frozenset()


def _folder_name(levels: list[str], name: str, path: Path) -> str | None:
    """The folder an mbox file in a directory stands for, or None when it is not an mbox."""
    if name.endswith(".mbox"):
        stem = name.removesuffix(".mbox")
    elif "." not in name and _starts_like_mbox(path):
        stem = name
    else:
        return None
    folder = "/".join([*levels, stem])
    return "INBOX" if folder.upper() == "INBOX" else folder


def _starts_like_mbox(path: Path) -> bool:
    try:
        with path.open("rb") as source:
            return source.read(5) == b"From "
    except OSError:
        return False
