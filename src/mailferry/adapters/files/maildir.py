"""Maildir (Maildir++ folders, as Dovecot, Courier and most servers keep them), source and target.

The root directory is INBOX; a folder ``A.B`` is the directory ``.A.B`` beside ``cur``/``new``/
``tmp`` (each level in modified UTF-7, as Dovecot writes it), so the delimiter is ``.``. A source
kept in Dovecot's ``LAYOUT=fs`` (folders as nested directories, ``A/B/cur``, no dot folders) is
recognised as such and read with the delimiter ``/``; a target is always written as Maildir++. Flags
are the letters after ``:2,``; lowercase letters are keywords, numbered in the folder's
``dovecot-keywords`` file. A message's date (INTERNALDATE) is its file's modification time.

As a target: each message is written under ``tmp/``, flushed, given its date as mtime and
renamed into ``cur/`` (the Maildir delivery rule: a reader never sees half a file); the name
carries ``S=`` (bytes on disk) and ``W=`` (CRLF size), which Dovecot reads. Bytes are stored as
they came. New names sort after every name already there, so the UIDs of earlier messages keep
their order (see ``account.py`` for how UIDs are made).

Why one module of 400+ lines: the source and the target share the format's naming rules (the
order that makes UIDs, the flag letters, ``S=``/``W=``), which must agree to the byte; split,
a change to one side could silently renumber the other's messages.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import socket
import time
from array import array
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from imapclient import imap_utf7

from mailferry.adapters.files import rfc822
from mailferry.adapters.files.account import (
    Entry,
    FileAccount,
    Listing,
    ListingDigest,
    folder_tree,
)
from mailferry.adapters.files.names import Names
from mailferry.adapters.files.writefail import disk_full, is_disk_full
from mailferry.domain.errors import AccountError, FolderError
from mailferry.domain.model import AppendRequest, AppendResult, FolderInfo

KEYWORDS_FILE = "dovecot-keywords"
INFO = ":2,"
FSYNC_WORKERS = 8
_sequence = itertools.count(1)


def base_name(name: str) -> str:
    """A Maildir file name without its ``:2,`` info (what stays when flags change)."""
    return name.split(INFO, 1)[0]


def sort_key(name: str) -> tuple[int, str]:
    """Order of messages in a folder: the delivery time at the start of the name, then the name."""
    head = name.split(".", 1)[0]
    return (int(head) if head.isdigit() else 0, base_name(name))


def read_keywords(directory: Path) -> dict[str, str]:
    """Keyword letters (``a``..``z``) -> keywords, from ``dovecot-keywords``."""
    try:
        text = (directory / KEYWORDS_FILE).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return {}
    found = {}
    for line in text.splitlines():
        number, _, keyword = line.partition(" ")
        if number.isdigit() and int(number) < 26 and keyword:
            found[chr(ord("a") + int(number))] = keyword
    return found


@dataclass
class MaildirListing:
    directory: Path
    names: Names  # "cur/NAME" or "new/NAME", in UID order
    keywords: dict[str, str]
    digest: ListingDigest
    _flags: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def uidvalidity(self) -> int:
        return self.digest.validity

    def __len__(self) -> int:
        return len(self.names)

    def entry(self, index: int) -> Entry:
        name = self.names[index]
        letters = name.split(INFO, 1)[1] if INFO in name else ""
        flags = self._flags.get(letters)
        if flags is None:  # one set per combination of letters, shared (see mboxfile.Scanned)
            flags = self._flags[letters] = rfc822.maildir_flags(letters, self.keywords)
        try:
            mtime = (self.directory / name).stat().st_mtime
        except OSError:
            mtime = 0  # gone or unreadable: fetching it reports why
        return Entry(flags, rfc822.from_epoch(mtime), _vsize(name))

    def read(self, index: int) -> bytes:
        name = self.names[index]
        data = (self.directory / name).read_bytes()
        if _vsize(name) == len(data):
            # ``W=`` (the CRLF size, which the listing already gives as the size) equal to the
            # file's: no bare LF to turn, as a Maildir written by mailferry keeps its messages.
            return data
        return rfc822.crlf(data)

    def head(self, index: int) -> bytes:
        with (self.directory / self.names[index]).open("rb") as source:
            return source.read(rfc822.HEAD_LIMIT)

    def where(self, index: int) -> str:
        return str(self.directory / self.names[index])

    def note(self, index: int) -> str | None:
        del index  # dated by its file time, as Maildir dates every message
        return None


_MAILDIR_PARTS = frozenset({"cur", "new", "tmp"})


def is_fs_layout(root: Path) -> bool:
    """Dovecot's ``LAYOUT=fs``: no Maildir++ dot folder, and a plain subdirectory holding mail
    (``cur/``) at some depth. A Maildir with no folders at all reads the same either way."""
    children = [c for c in root.iterdir() if c.is_dir() and c.name not in _MAILDIR_PARTS]
    if any(c.name.startswith(".") and (c / "cur").is_dir() for c in children):
        return False
    return any(_fs_folders(c, (c.name,)) for c in children if not c.name.startswith("."))


def _fs_folders(directory: Path, parts: tuple[str, ...]) -> list[str]:
    """The folders at and under ``directory`` (path ``parts`` from the root, mUTF-7 decoded):
    a directory with ``cur/`` is one; a directory without is a parent only (``\\Noselect``)."""
    found = []
    if parts and (directory / "cur").is_dir():
        found.append("/".join(imap_utf7.decode(p.encode("ascii", "replace")) for p in parts))
    for child in sorted(directory.iterdir()):
        if child.name in _MAILDIR_PARTS or child.name.startswith(".") or child.is_symlink():
            continue
        if child.is_dir():
            found += _fs_folders(child, (*parts, child.name))
    return found


def _vsize(name: str) -> int | None:
    for part in base_name(name).split(","):
        if part.startswith("W=") and part[2:].isdigit():
            return int(part[2:])
    return None


class MaildirAccount(FileAccount):
    delimiter_char = "."

    def __init__(self, root: Path, *, writable: bool = False) -> None:
        super().__init__()
        self.root = root
        self.writable = writable
        if writable:
            _make_maildir(root)
        elif not (root / "cur").is_dir():
            raise AccountError(f"{root}: not a Maildir (no cur/ directory)")
        self.fs_layout = not writable and is_fs_layout(root)
        if self.fs_layout:
            self.delimiter_char = "/"

    # -- folders ------------------------------------------------------------------------------------
    def _directory(self, folder: str) -> Path:
        if folder.upper() == "INBOX":
            return self.root
        parts = folder.split(self.delimiter_char)
        if any(not p or p in {".", ".."} for p in parts):
            raise FolderError(folder, "invalid folder name")
        encoded = [imap_utf7.encode(p).decode("ascii") for p in parts]
        if self.fs_layout:
            return self.root.joinpath(*encoded)
        return self.root / ("." + ".".join(encoded))

    def list_folders(self) -> list[FolderInfo]:
        if self.fs_layout:
            return folder_tree({"INBOX", *_fs_folders(self.root, ())}, "/")
        names = {"INBOX"}
        for child in self.root.iterdir():
            if child.name.startswith(".") and (child / "cur").is_dir():
                levels = child.name[1:].split(".")
                names.add(".".join(imap_utf7.decode(p.encode("ascii", "replace")) for p in levels))
        return folder_tree(names, ".")

    def _stamp(self, folder: str) -> object:
        directory = self._directory(folder)
        try:
            return tuple((directory / sub).stat().st_mtime_ns for sub in ("cur", "new"))
        except OSError as exc:
            raise FolderError(folder, f"{directory}: {exc.strerror}") from None

    def _load(self, folder: str) -> Listing:
        """The folder's files in ``sort_key`` order, held compactly: at 400,000 messages a list
        of names sorted by a key tuple each peaked at ~170 MB above the interpreter's own."""
        directory = self._directory(folder)
        found = Names()
        for sub in ("cur", "new"):
            try:
                with os.scandir(directory / sub) as entries:
                    found.extend(f"{sub}/{e.name}" for e in entries if not e.name.startswith("."))
            except OSError as exc:
                raise FolderError(folder, f"{directory / sub}: {exc.strerror}") from None
        found.put_in_order(in_uid_order(found))
        digest = ListingDigest()
        for name in found:
            digest.add(base_name(name.split("/", 1)[1]).encode())
        return MaildirListing(directory, found, read_keywords(directory), digest)

    # -- writing ------------------------------------------------------------------------------------
    def create_folder(self, name: str) -> None:
        if not self.writable:
            super().create_folder(name)
        directory = self._directory(name)
        _make_maildir(directory)
        if directory != self.root:
            (directory / "maildirfolder").touch()

    def append_batch(self, folder: str, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        if not self.writable:
            return super().append_batch(folder, requests)
        listing = self.listing(folder)
        assert isinstance(listing, MaildirListing)  # noqa: S101 - this class loads only these
        directory = listing.directory
        last = sort_key(listing.names[-1].split("/", 1)[1]) if listing.names else (0, "")
        staged: list[_Staged] = []
        refused: dict[int, str] = {}
        for request in requests:
            data = request.body.read(request.size)
            if not data:
                refused[request.key] = "refused: a zero-byte message"
                continue
            name = _new_name(last, len(data), rfc822.crlf_size(data))
            last = sort_key(name)
            letters = _letters(directory, request.flags)
            try:
                _write_temporary(directory / "tmp" / name, data)
            except OSError as exc:
                if is_disk_full(exc):  # the burst is taken back: writefail.py
                    _discard(directory, staged)
                    raise disk_full(directory, exc) from None
                refused[request.key] = f"{directory}: {exc.strerror}"
                continue
            staged.append(_Staged(request.key, name, name + INFO + letters, request.internaldate))
        delivered = _deliver(directory, staged, refused)
        uids = {item.key: len(listing) + n + 1 for n, item in enumerate(delivered)}
        after = self._appended(folder, listing, delivered)
        return [
            AppendResult(r.key, ok=False, reason=refused[r.key])
            if r.key in refused
            else AppendResult(
                r.key, ok=True, target_uid=uids[r.key], target_uidvalidity=after.uidvalidity
            )
            for r in requests
        ]

    def _appended(
        self, folder: str, before: MaildirListing, delivered: list[_Staged]
    ) -> MaildirListing:
        """The listing after our own deliveries (their names sort last): no rescan per burst.
        The names are added to ``before``'s own (the cached listing this one replaces), not
        copied: a copy per burst was a copy of the whole folder's names per burst."""
        digest = before.digest.copy()
        for item in delivered:
            digest.add(item.name.encode())
        names = before.names
        names.extend(f"cur/{item.full}" for item in delivered)
        after = MaildirListing(before.directory, names, read_keywords(before.directory), digest)
        self._cache[folder] = (self._stamp(folder), after)
        return after

    def store_flags(self, folder: str, updates: Sequence[tuple[int, frozenset[str]]]) -> None:
        if not self.writable:
            super().store_flags(folder, updates)
        listing = self.listing(folder)
        assert isinstance(listing, MaildirListing)  # noqa: S101 - this class loads only these
        for uid, flags in updates:
            if not 1 <= uid <= len(listing):
                continue
            old = listing.names[uid - 1]
            new = (
                "cur/" + base_name(old.split("/", 1)[1]) + INFO + _letters(listing.directory, flags)
            )
            if new != old:
                try:
                    (listing.directory / old).rename(listing.directory / new)
                except OSError as exc:
                    raise FolderError(
                        folder, f"{listing.directory / old}: {exc.strerror}"
                    ) from None


def in_uid_order(found: Names) -> Iterator[int]:
    """The indexes of ``found`` ("cur/NAME"...) in ``sort_key`` order of their names, as a
    stable sort by it would give: by delivery time first (one int a name), then each run of
    names of one second by its base name (a few names at a time, not a key tuple for every
    name of the folder at once)."""
    seconds = [_delivered(name) for name in found]
    order = array("Q", sorted(range(len(found)), key=seconds.__getitem__))
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and seconds[order[end]] == seconds[order[start]]:
            end += 1
        run = order[start:end].tolist()
        if len(run) > 1:
            run.sort(key=lambda i: base_name(found[i].split("/", 1)[1]))
        yield from run
        start = end


def _delivered(path: str) -> int:
    return sort_key(path.split("/", 1)[1])[0]


def _make_maildir(directory: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        (directory / sub).mkdir(parents=True, exist_ok=True)


def _new_name(last: tuple[int, str], size: int, vsize: int) -> str:
    """A unique delivery name that sorts after ``last`` (the last name in the folder)."""
    now = time.time()
    seconds, micro = int(now), int(now % 1 * 1_000_000)
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    for second in (seconds, max(seconds, last[0]) + 1):
        name = f"{second}.M{micro:06d}P{os.getpid()}Q{next(_sequence)}.{host},S={size},W={vsize}"
        if sort_key(name) > last:
            return name
    raise AssertionError  # pragma: no cover - the second name is always later


def _letters(directory: Path, flags: frozenset[str]) -> str:
    """The ``:2,`` letters of ``flags``, adding new keywords to ``dovecot-keywords`` (26 at most:
    more cannot be written in a Maildir name and are left out)."""
    system = {flag: letter for letter, flag in rfc822.MAILDIR_LETTERS.items()}
    letters = {system[f] for f in flags if f in system}
    keywords = sorted(f for f in flags if not f.startswith("\\"))
    if keywords:
        known = {word: letter for letter, word in read_keywords(directory).items()}
        missing = [k for k in keywords if k not in known]
        for keyword in missing:
            free = sorted(set("abcdefghijklmnopqrstuvwxyz") - set(known.values()))
            if free:
                known[keyword] = free[0]
        if missing:
            lines = sorted(f"{ord(letter) - ord('a')} {word}" for word, letter in known.items())
            (directory / KEYWORDS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
        letters.update(known[k] for k in keywords if k in known)
    return "".join(sorted(letters))


@dataclass(frozen=True)
class _Staged:
    key: int
    name: str  # the base name (UID order, identity)
    full: str  # with the ``:2,`` flags
    when: dt.datetime


def _write_temporary(path: Path, data: bytes) -> None:
    try:
        with path.open("xb") as out:
            out.write(data)
    except OSError:
        path.unlink(missing_ok=True)  # not left half-written in tmp/
        raise


def _discard(directory: Path, staged: Sequence[_Staged]) -> None:
    for item in staged:
        (directory / "tmp" / item.name).unlink(missing_ok=True)


def _deliver(directory: Path, staged: list[_Staged], refused: dict[int, str]) -> list[_Staged]:
    """tmp/ -> cur/, the Maildir delivery rule: a reader never sees a half-written message.

    The files of a burst are flushed to disk together (fsyncs in parallel share the file
    system's journal commits: three times faster here than one after another), then dated and
    renamed, then the directory is flushed. Only then are the appends answered, and recorded in
    the state: a crash before leaves files the intent log does not know landed, and the next run
    settles each intent by finding its message (Message-ID/date/size or hash): never sent twice.
    """
    with ThreadPoolExecutor(max_workers=FSYNC_WORKERS) as pool:
        errors = list(pool.map(lambda s: _fsync_file(directory / "tmp" / s.name), staged))
    full = next((e for e in errors if e is not None and is_disk_full(e)), None)
    if full is not None:  # the data did not reach the disk: the burst is taken back
        _discard(directory, staged)
        raise disk_full(directory, full)
    delivered = []
    for n, (item, error) in enumerate(zip(staged, errors, strict=True)):
        temporary = directory / "tmp" / item.name
        try:
            if error is not None:
                raise error
            stamp = item.when.timestamp()
            os.utime(temporary, (stamp, stamp))
            temporary.rename(directory / "cur" / item.full)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            if is_disk_full(exc):  # those delivered are settled by the next pass (intents)
                _discard(directory, staged[n + 1 :])
                _fsync_directory(directory / "cur")
                raise disk_full(directory, exc) from None
            refused[item.key] = f"{temporary}: {exc.strerror}"
            continue
        delivered.append(item)
    _fsync_directory(directory / "cur")
    return delivered


def _fsync_file(path: Path) -> OSError | None:
    try:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as exc:
        return exc
    return None


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
