"""What an Exchange mailbox hands back through Graph's mailbox import/export API
(``ExchangeMailbox`` in ports): folders of any class and items as opaque full-fidelity streams.

Vocabulary: a *folder class* is Exchange's ``IPF.*`` (which workload a folder holds), an *item
class* its ``IPM.*``; an *entry* is one item as listed (id, change key, class, recognition key); an
*export* is its opaque stream, which mailferry never parses: it goes to the target as it came.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from mailferry.domain.workloads import Workload

# folder class -> workload (Exchange's container classes; a sub-class such as IPF.Note.Custom or
# IPF.Appointment.Birthday belongs to its parent's workload)
_WORKLOADS = (
    ("IPF.Note", Workload.MAIL),
    ("IPF.Appointment", Workload.CALENDAR),
    ("IPF.Contact", Workload.CONTACTS),
    ("IPF.Task", Workload.TASKS),
    ("IPF.StickyNote", Workload.NOTES),
)


def workload_of(folder_class: str) -> Workload | None:
    """The workload of a folder class; None for classes no workload carries (search folders,
    system folders such as IPF.Configuration)."""
    for prefix, workload in _WORKLOADS:
        if folder_class == prefix or folder_class.startswith(prefix + "."):
            return workload
    return None


@dataclass(frozen=True)
class MailboxFolder:
    id: str
    parent_id: str | None  # None: a child of the mailbox root (the root itself is never listed)
    name: str  # displayName
    folder_class: str  # IPF.Note, IPF.Appointment, ...
    well_known: str | None = None  # inbox, sentitems, calendar, contacts, tasks, notes, ...
    total: int | None = None  # totalItemCount, when listed


@dataclass(frozen=True)
class MailboxEntry:
    """One item as listed: enough to decide whether to export it and to recognise its copy."""

    id: str
    change_key: str
    item_class: str  # IPM.Note, IPM.Appointment, IPM.Contact, IPM.Task, IPM.StickyNote, ...
    size: int | None = None
    # a property that an imported copy keeps: PidTagInternetMessageId for mail,
    # PidLidCleanGlobalObjectId for calendar items, PidTagSearchKey for the others (hex or text);
    # None when the item has none (then a lost state cannot recognise its copy)
    key: str | None = None


@dataclass(frozen=True)
class EntryChanges:
    """A delta pass over one folder: new or changed entries, removed ids, the next delta token."""

    changed: tuple[MailboxEntry, ...]
    removed: tuple[str, ...]
    token: str


@dataclass(frozen=True)
class EntryPage:
    """One page of a folder's listing or delta round, as ``ExchangeMailbox.entries`` yields them:
    a pass holds one page at a time, never the folder. ``token`` (the next delta token) is on the
    last page only; ``removed`` comes with delta rounds only."""

    changed: tuple[MailboxEntry, ...]
    removed: tuple[str, ...] = ()
    token: str | None = None


def gather(pages: Iterable[EntryPage]) -> EntryChanges:
    """A whole listing in memory (verify, tests): the pages joined, a later page winning."""
    changed: dict[str, MailboxEntry] = {}
    removed: dict[str, None] = {}
    token = None
    for page in pages:
        for entry in page.changed:
            removed.pop(entry.id, None)
            changed[entry.id] = entry
        for item_id in page.removed:
            changed.pop(item_id, None)
            removed[item_id] = None
        token = page.token or token
    if token is None:
        raise ValueError("a listing ended without its delta token")
    return EntryChanges(tuple(changed.values()), tuple(removed), token)


class Listing(StrEnum):
    """The scratch lists a folder pass keeps in the state instead of in memory."""

    TARGET = "target"  # the target folder's entries: copies to recognise by key, or by id
    SOURCE = "source"  # the source ids a whole pass listed: rows of the others were removed
    WRITTEN = "written"  # source ids imported by this run (a retried pass: not "unchanged")


@dataclass(frozen=True)
class Exported:
    id: str
    change_key: str
    data: bytes = field(repr=False)  # the opaque stream, decoded from base64


@dataclass(frozen=True)
class Imported:
    id: str  # the target item's id
    change_key: str
