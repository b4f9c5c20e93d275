"""The interfaces the service layer needs; adapters implement them.

``MailAccount`` is one logged-in account (source or target: both sides read, the target also writes).
``StateStore`` is the durable memory of a pair: what was copied where, and what was in flight.
``CollectionAccount`` and ``ItemStateStore``, the same two for calendars and address books, are in
davports.py (an IMAP run does not load them).
``ExchangeMailbox`` is one Microsoft 365 mailbox through Graph's import/export API (every workload);
``MailboxStateStore`` the durable memory of a pair of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from mailferry.domain.errors import MessageError
from mailferry.domain.labels import LabelTally
from mailferry.domain.model import (
    AppendRequest,
    AppendResult,
    FetchedMessage,
    FolderInfo,
    FolderStatus,
    MessageMeta,
)


class MailAccount(Protocol):
    @property
    def delimiter(self) -> str:
        """The hierarchy delimiter of the personal namespace."""
        ...

    @property
    def condstore(self) -> bool:
        """True when the server offers CONDSTORE (HIGHESTMODSEQ, CHANGEDSINCE)."""
        ...

    @property
    def keeps_bytes(self) -> bool:
        """False when the server stores a rewritten copy (sizes and hashes then differ)."""
        ...

    @property
    def append_limit(self) -> int | None:
        """The largest message the server accepts (APPENDLIMIT, RFC 7889), when it says."""
        ...

    def list_folders(self) -> list[FolderInfo]:
        """Every folder, with LIST attributes and whether it is subscribed."""
        ...

    def create_folder(self, name: str) -> None:
        """Create ``name``; a folder that already exists is not an error."""
        ...

    def subscribe(self, name: str) -> None: ...

    def status(self, folder: str) -> FolderStatus:
        """Select ``folder`` (read-only on a source) and return its status."""
        ...

    def statuses(self, folders: Sequence[str]) -> dict[str, FolderStatus]:
        """The status of many folders in as few round trips as the server allows (LIST-STATUS,
        pipelined STATUS). A folder without an answer is left out (``status`` says why)."""
        ...

    def permanent_flags(self, folder: str) -> frozenset[str]:
        """Flags the folder keeps; contains ``\\*`` when any keyword may be created."""
        ...

    def fetch_meta(
        self, folder: str, uids: Sequence[int] | None = None, *, message_ids: bool = False
    ) -> Iterator[MessageMeta]:
        """Metadata of the given UIDs (all messages when None), in UID order."""
        ...

    def fetch_flags(
        self, folder: str, changed_since: int | None = None
    ) -> Iterator[tuple[int, frozenset[str]]]:
        """(uid, flags) of every message, or of those changed since a mod-sequence (CONDSTORE)."""
        ...

    def fetch_messages(
        self, folder: str, metas: Sequence[MessageMeta]
    ) -> Iterator[FetchedMessage | MessageError]:
        """Bodies spooled to memory or disk, in UID order. A message that no longer exists is left
        out; one that exists but cannot be read (a file source's unreadable file) is a
        ``MessageError`` in its place, recorded as that message's failure."""
        ...

    def append_batch(self, folder: str, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        """Append in one pipelined burst; one result per request, in order."""
        ...

    def store_flags(self, folder: str, updates: Sequence[tuple[int, frozenset[str]]]) -> None:
        """Replace the flags of target UIDs."""
        ...

    def close(self) -> None: ...


class TokenProvider(Protocol):
    """OAuth2 access tokens for one login (adapters/oauth builds them from the token sources)."""

    def token(self, force_refresh: bool = False) -> str:
        """A valid access token; ``force_refresh`` skips the cache (the server refused the last)."""
        ...


@dataclass(frozen=True)
class Checkpoint:
    """Where the last complete pass over a source folder ended."""

    source_folder: str
    target_folder: str
    source_uidvalidity: int
    source_uidnext: int
    source_modseq: int | None
    target_uidvalidity: int
    selection: str  # fingerprint of the options that choose messages (dates, deleted)

    # ``source_uidnext`` of a pass that has not ended: MATCHING while a folder without usable state
    # is matched against the target (nothing recorded can be trusted yet: the next attempt matches
    # again), STARTED once every match is recorded (the next attempt resumes from the rows).
    MATCHING: ClassVar[int] = -1
    STARTED: ClassVar[int] = 0

    @property
    def matched(self) -> bool:
        """The rows of this folder say what is on the target (matching, if any, has finished)."""
        return self.source_uidnext != self.MATCHING

    @property
    def complete(self) -> bool:
        return self.source_uidnext > self.STARTED


@dataclass(frozen=True)
class FolderRecord:
    """What the state holds on one source folder, read for every folder of a pair at once (a
    pass over thousands of unchanged folders then costs a few queries, not a few per folder)."""

    checkpoint: Checkpoint
    copied: int  # copied rows (``count_copied``)
    pending: bool  # intents in flight or failures recorded: the folder's pass has work to do


@dataclass(frozen=True)
class Copied:
    """A source message known to be on the target."""

    source_uid: int
    target_uid: int | None
    flags: frozenset[str]  # the flags last written to the target
    # Sources whose folders are labels (domain/labels.py): the message's key across folders, and
    # True when no copy was made from this folder because one from another folder stands for it.
    label: str | None = None
    elsewhere: bool = False


@dataclass(frozen=True)
class Intent:
    """Written before an APPEND: enough to find the message on the target if we crash."""

    source_uid: int
    sha256: str
    size: int
    flags: frozenset[str]
    target_folder: str
    target_uidvalidity: int
    target_uidnext: int  # the target folder's UIDNEXT before the append
    # A second way to recognise the message, for targets that rewrite what they store (Exchange):
    message_id: str | None = None
    internaldate: int | None = None  # epoch seconds
    label: str | None = None  # a source whose folders are labels: the message's label key


class StateStore(Protocol):
    def checkpoint(self, pair: str, folder: str) -> Checkpoint | None: ...

    def save_checkpoint(self, pair: str, checkpoint: Checkpoint) -> None: ...

    def folder_records(self, pair: str) -> dict[str, FolderRecord]:
        """Every source folder of ``pair`` that has a checkpoint, by name, in a few queries."""
        ...

    def reset_folder(self, pair: str, folder: str, start: Checkpoint | None = None) -> None:
        """Forget everything about a source folder (its UIDVALIDITY or target changed);
        ``start``: the checkpoint of the pass beginning over it, saved in the same transaction
        (a fresh pass's first write: one commit where there were two)."""
        ...

    def copied(
        self, pair: str, folder: str, uids: Iterable[int] | None = None
    ) -> dict[int, Copied]:
        """Copied messages of a source folder, optionally only the given source UIDs."""
        ...

    def count_copied(self, pair: str, folder: str) -> int: ...

    def copied_range(self, pair: str, folder: str, low: int, high: int) -> dict[int, Copied]:
        """Copied messages with source UIDs from ``low`` to ``high`` (one window of a folder
        pass: a range of the primary key, so the query costs the window, not the folder)."""
        ...

    def copied_page(self, pair: str, folder: str, after: int, limit: int) -> list[Copied]:
        """Up to ``limit`` copied messages with source UIDs above ``after``, in UID order (a
        walk over a folder's rows that never holds them all)."""
        ...

    def add_intents(self, pair: str, folder: str, intents: Sequence[Intent]) -> None:
        """Record intents durably (one transaction) before the APPENDs are sent."""
        ...

    def intents(self, pair: str, folder: str) -> list[Intent]: ...

    def resolve(
        self, pair: str, folder: str, confirmed: Sequence[Copied], dropped: Sequence[int]
    ) -> None:
        """In one transaction: turn intents into copied rows, and drop intents that did not land."""
        ...

    def add_copied(self, pair: str, folder: str, copied: Sequence[Copied]) -> None:
        """Record messages found already on the target (no intent involved)."""
        ...

    def update_flags(
        self, pair: str, folder: str, updates: Mapping[int, frozenset[str]]
    ) -> None: ...

    def label_tally(self, pair: str, folder: str, keys: Iterable[str]) -> LabelTally:
        """For label keys: copies standing on the target from any folder of the pair (copied rows
        with the key, not ``elsewhere``), and rows of ``folder`` with the key (copied or left out).
        Pending intents do not count: the run settles them before it asks (``Migration.run``)."""
        ...

    def failed_uids(self, pair: str, folder: str) -> set[int]: ...

    def set_failures(self, pair: str, folder: str, failures: Mapping[int, str]) -> None:
        """Replace the recorded per-message failures of a folder (uid -> reason); none where
        none are recorded writes nothing."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Noting(Protocol):
    """A source that knows which messages it handed out not as it holds them (files: a PST
    message rebuilt from its properties, a date from the last resort): the summary's ``notes``.
    Optional: a server source hands out what it holds."""

    def notes(self, folder: str, uids: Sequence[int]) -> dict[str, int]:
        """Reason -> how many of ``uids`` (already fetched) it applies to."""
        ...


@runtime_checkable
class FolderSetup(Protocol):
    """A target that creates and subscribes many folders in a few round trips (IMAP: pipelined
    commands). Optional: without it, ``create_folder`` and ``subscribe`` one by one, which over a
    WAN costs two round trips per folder before the first message moves."""

    def create_folders(self, names: Sequence[str]) -> dict[str, str]:
        """Create ``names`` in order (parents first); the refused ones with the reason. A folder
        that exists already is not refused."""
        ...

    def subscribe_folders(self, names: Sequence[str]) -> dict[str, str]:
        """Subscribe ``names``; the refused ones with the reason."""
        ...


@runtime_checkable
class UidMarks(Protocol):
    """A source that names the UIDs of every n-th message in a few round trips (IMAP: one FETCH
    of those sequence numbers). Optional: without it, a folder whose UIDs are sparse is listed
    whole instead of in windows."""

    def uid_marks(self, folder: str, every: int) -> list[int]:
        """The UIDs of messages ``every``, ``2 * every``... (by position), ascending."""
        ...


@runtime_checkable
class ChangeCounting(Protocol):
    """A CONDSTORE source that can say how many messages changed since a mod-sequence without
    listing them (IMAP: ESEARCH COUNT). Optional: without it, a big folder's changes are read in
    windows, never as one answer that grows with them."""

    def count_changed(self, folder: str, since: int) -> int | None:
        """How many messages of ``folder`` changed since ``since``; None when it cannot say."""
        ...


@runtime_checkable
class ListingAhead(Protocol):
    """A source that answers a folder's status and lists its messages in one round trip (IMAP:
    EXAMINE and FETCH pipelined). Optional: without it, ``status`` then ``fetch_meta``, two
    round trips a folder over a WAN."""

    def status_with_listing(self, folder: str) -> tuple[FolderStatus, list[MessageMeta] | None]:
        """``status``, and every message's metadata with its Message-ID, in UID order; None
        when the answer is not a whole listing (the caller lists the folder itself)."""
        ...

    def send_listing(self, folder: str) -> None:
        """Ask for ``status_with_listing(folder)`` now, the answer read when it is called (a
        round trip overlapped with other work); any other use of the account first reads it."""
        ...


@runtime_checkable
class LateWrites(Protocol):
    """A target on another machine, which may still apply what a dead session had sent it (a
    server reads the commands its connection had delivered before it closed). After a crash,
    an intent found nowhere on it is looked for again ``settle_pause`` seconds later (while the
    folder keeps growing) before its message is copied again. Optional: a target whose writes
    are our own process's (files, the in-memory fake) has nothing that lands late."""

    settle_pause: float


@runtime_checkable
class BodiesAhead(Protocol):
    """A source whose next burst's bodies can be asked for before this burst's answer is read
    (IMAP: UID FETCH pipelined). Optional: without it, a round trip between bursts."""

    def send_bodies(self, folder: str, metas: Sequence[MessageMeta]) -> bool:
        """Ask for ``fetch_messages(folder, metas)`` now, the answer read when it is called;
        False when it was not asked (the call then fetches as usual). Any other use of the
        account first reads (and drops) bodies asked for and not taken."""
        ...


@runtime_checkable
class AppendPipelining(Protocol):
    """A target whose APPENDs can be written before the answers to the ones before are read
    (IMAP with LITERAL+). Optional: without it, ``append_batch`` waits for each burst's answers
    before the next burst goes out, one round trip per burst."""

    def send_batch(
        self, folder: str, requests: Sequence[AppendRequest]
    ) -> Callable[[], list[AppendResult]]:
        """Write ``requests`` now; the returned call reads their answers (``append_batch``'s
        results). Nothing else may be asked of the account in between but another
        ``send_batch``, whose answers are read after these."""
        ...
