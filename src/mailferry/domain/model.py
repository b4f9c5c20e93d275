"""Value types shared by every layer."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from enum import StrEnum
from typing import BinaryIO, Self

# System flags that every IMAP server keeps. \Recent is session-only and never copied.
SYSTEM_FLAGS = frozenset({"\\Seen", "\\Answered", "\\Flagged", "\\Draft", "\\Deleted"})
DELETED = "\\Deleted"


class Role(StrEnum):
    """The special use of a folder (RFC 6154), plus INBOX."""

    INBOX = "inbox"
    SENT = "sent"
    DRAFTS = "drafts"
    TRASH = "trash"
    JUNK = "junk"
    ARCHIVE = "archive"
    ALL = "all"
    FLAGGED = "flagged"


class Security(StrEnum):
    SSL = "ssl"  # implicit TLS (imaps)
    STARTTLS = "starttls"
    NONE = "none"


class AuthMethod(StrEnum):
    """How an account logs in (adapters/imap speaks each as SASL or LOGIN)."""

    AUTO = "auto"  # a token login if there is a token provider (XOAUTH2, else OAUTHBEARER), else password
    PASSWORD = "password"  # noqa: S105 - the name of a method, not a password
    XOAUTH2 = "xoauth2"
    OAUTHBEARER = "oauthbearer"


class MailboxState(StrEnum):
    """Where a batch's mailbox stands: Created -> Syncing -> Synced -> Completing -> Completed, or
    Stopped / Failed (both can start again)."""

    CREATED = "created"
    SYNCING = "syncing"
    SYNCED = "synced"
    COMPLETING = "completing"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True)
class Endpoint:
    """Where an account lives and who logs in. Never holds the password."""

    host: str
    port: int
    security: Security
    user: str
    authuser: str | None = None  # admin/master login acting for ``user`` (SASL PLAIN authzid)

    def display(self) -> str:
        scheme = {
            Security.SSL: "imaps",
            Security.STARTTLS: "imap+starttls",
            Security.NONE: "imap",
        }[self.security]
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{self.user}@{host}:{self.port}"


class RawName(str):  # noqa: SLOT000 - a str subtype cannot have slots, and this one carries ``raw``
    """A folder name a server sent outside modified UTF-7 (raw 8-bit bytes from old servers).

    The text is the bytes read as UTF-8 where they are valid UTF-8, else as Latin-1 (so it can still be
    stored and written on the target); ``raw`` is the exact bytes, sent back to that server as they came.
    """

    raw: bytes

    def __new__(cls, text: str, raw: bytes) -> Self:
        name = super().__new__(cls, text)
        name.raw = raw
        return name


@dataclass(frozen=True)
class FolderInfo:
    """A folder as LIST shows it; ``name`` is decoded (never modified UTF-7)."""

    name: str
    delimiter: str | None
    flags: frozenset[str] = frozenset()  # LIST attributes, e.g. "\\Noselect", "\\Sent"
    subscribed: bool = False

    @functools.cached_property  # asked several times a folder by map_folders
    def path(self) -> tuple[str, ...]:
        if not self.delimiter:
            return (self.name,)
        return tuple(self.name.split(self.delimiter))

    @property
    def selectable(self) -> bool:
        return _selectable(self.flags)


@functools.lru_cache(maxsize=256)  # asked ~9 times a folder a pass; most folders share a set
def _selectable(flags: frozenset[str]) -> bool:
    return not any(f.lower() in ("\\noselect", "\\nonexistent") for f in flags)


@dataclass(frozen=True)
class FolderStatus:
    uidvalidity: int
    uidnext: int
    exists: int
    highestmodseq: int | None = None  # only where CONDSTORE is offered


@dataclass(frozen=True)
class MessageMeta:
    """What is known of a message without its body."""

    uid: int
    flags: frozenset[str]
    internaldate: dt.datetime  # timezone-aware
    size: int
    message_id: str | None = None  # normalised, see identity.normalise_message_id
    sha256: str | None = None  # filled only where content identity is needed

    @property
    def deleted(self) -> bool:
        return DELETED in self.flags


@dataclass
class FetchedMessage:
    """A message body spooled by an adapter: read it from ``body`` (positioned at 0)."""

    uid: int
    size: int
    sha256: str
    body: BinaryIO


@dataclass(frozen=True)
class AppendRequest:
    """One message to append; ``body`` is read from its current position for ``size`` bytes."""

    key: int  # the caller's correlation key (the source UID)
    body: BinaryIO
    size: int
    flags: frozenset[str]
    internaldate: dt.datetime


@dataclass(frozen=True)
class AppendResult:
    key: int
    ok: bool
    target_uid: int | None = None  # from APPENDUID (UIDPLUS), when the server tells
    reason: str | None = None  # the server's words when ``ok`` is false
    # The folder's UIDVALIDITY as the APPENDUID answer gives it. It can differ from a STATUS read
    # just before: a fresh Courier folder reports a new, time-based UIDVALIDITY on every STATUS
    # until something is stored in it.
    target_uidvalidity: int | None = None


@dataclass
class Failure:
    folder: str
    uid: int | None
    reason: str


@dataclass(frozen=True)
class Note:
    """Messages of a folder copied as they could be rather than as they were: a PST message
    rebuilt from its properties, a date taken from the last resort. Not failures: reported."""

    folder: str
    reason: str
    messages: int


@dataclass
class Summary:
    """The outcome of one run; ``as_json`` is the documented ``--json`` shape."""

    folders: int = 0
    messages_copied: int = 0
    messages_skipped_existing: int = 0
    messages_skipped_deleted: int = 0
    messages_skipped_filtered: int = 0
    messages_skipped_labels: int = 0  # in several label folders: copied from one of them
    messages_failed: int = 0
    messages_remaining: int = 0  # not copied yet when the run stopped early (a full target)
    bytes_copied: int = 0
    flags_updated: int = 0
    reconnects: int = 0
    throttled: int = 0
    cap_pauses: int = 0  # pauses for a provider's daily cap
    paused_seconds: float = 0.0
    stopped: str | None = None  # why the run ended early (full target, stop request)
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    renames: list[tuple[str, str, str]] = field(default_factory=list)  # source, target, why
    warnings: list[str] = field(default_factory=list)
    remaining: dict[str, int] = field(default_factory=dict)  # source folder -> messages_remaining
    notes: list[Note] = field(default_factory=list)  # copied, but not as the source had them

    def note(self, folder: str, reason: str, messages: int) -> None:
        """Add ``messages`` to the folder's count for ``reason``."""
        for at, found in enumerate(self.notes):
            if (found.folder, found.reason) == (folder, reason):
                self.notes[at] = Note(folder, reason, found.messages + messages)
                return
        self.notes.append(Note(folder, reason, messages))

    def absorb(self, other: Summary) -> None:
        """Add another lane's counts and lists into this summary."""
        for name in (
            "folders",
            "messages_copied",
            "messages_skipped_existing",
            "messages_skipped_deleted",
            "messages_skipped_filtered",
            "messages_skipped_labels",
            "messages_failed",
            "messages_remaining",
            "bytes_copied",
            "flags_updated",
            "reconnects",
            "throttled",
            "cap_pauses",
            "paused_seconds",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures.extend(other.failures)
        self.warnings.extend(other.warnings)
        for note in other.notes:
            self.note(note.folder, note.reason, note.messages)
        for folder, count in other.remaining.items():
            self.remaining[folder] = self.remaining.get(folder, 0) + count
        self.stopped = self.stopped or other.stopped

    def as_json(self) -> dict[str, object]:
        return {
            "folders": self.folders,
            "messages_copied": self.messages_copied,
            "messages_skipped_existing": self.messages_skipped_existing,
            "messages_skipped_deleted": self.messages_skipped_deleted,
            "messages_skipped_filtered": self.messages_skipped_filtered,
            "messages_skipped_labels": self.messages_skipped_labels,
            "messages_failed": self.messages_failed,
            "messages_remaining": self.messages_remaining,
            "remaining": dict(self.remaining),
            "bytes_copied": self.bytes_copied,
            "flags_updated": self.flags_updated,
            "reconnects": self.reconnects,
            "throttled": self.throttled,
            "cap_pauses": self.cap_pauses,
            "paused_seconds": round(self.paused_seconds, 3),
            "stopped": self.stopped,
            "seconds": round(self.seconds, 3),
            "failures": [
                {"folder": f.folder, "uid": f.uid, "reason": f.reason} for f in self.failures
            ],
            "renames": [{"source": s, "target": t, "reason": r} for s, t, r in self.renames],
            "warnings": list(self.warnings),
            "notes": [
                {"folder": n.folder, "reason": n.reason, "messages": n.messages} for n in self.notes
            ],
        }
