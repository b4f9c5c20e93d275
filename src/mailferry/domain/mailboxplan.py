"""The Microsoft 365 mailbox planner: pure functions from listings and state to what must be done.

As ``davplan`` does for calendars: the service lists both mailboxes' folders and asks
``map_folders`` where each source folder goes; per folder it lists the source's entries (whole, or
by delta token), settles the intents an interrupted run left (``settle_intents``), then asks
``plan_entries`` what to do with each entry and executes the answer (an export, then an import
in ``Mode: create`` or ``Mode: update``). One folder pass, as a truth table:

    state row            source entry            target (listed only without state)   action
    ---------            ---------------------   ---------------------------------   -----------------
    none                 present                 not listed (the folder's state known) create
    none                 present, key K          an unclaimed copy with key K,        recognised (record)
                                                 of the same size
    none                 present, key K          an unclaimed copy with key K,        update that copy
                                                 of another size                      (Mode: update)
    none                 present, key K          no unclaimed copy with key K         create
    none                 present, no key         holds items the state does not know  create, reported
                                                                                      "not recognisable"
    recorded             same change key         -                                    unchanged
    recorded             other change key        -                                    update (Mode: update)
    recorded             removed on the source   -                                    kept on the target
                                                                                      (counted, row dropped)

and the intents of an interrupted run, settled first against a listing of the target folder:

    intent               target                                      outcome
    ------               ------                                      ---------------------------------
    create, key K        an unclaimed copy with key K, of its size   recorded (it landed)
                         (else of an unknown size)
    create, key K        only copies of K of other sizes             recorded as another version:
                                                                     imported again over it (update)
    create, key K        none                                        dropped: planned again
    create, no key       -                                           dropped: created again, reported
                                                                     "not recognisable" (it may be twice)
    update               its target item with another change key     recorded (it landed)
    update               its target item unchanged, or gone          dropped: planned again (update)

A copy recognised after a lost state is compared by size only (nothing else of both versions is
listed): a change of the source made since that copy, that kept the item's size, is carried
over only when the item changes again. A *copy with key K* is claimed once: two source entries with one key (the same Message-ID twice in
a folder) need two copies, and a copy the state already records is nobody else's.

Folders are mapped by ``map_folders``: the folder an earlier run mapped stays mapped; a well-known
folder to the target's folder of the same well-known name; the others by name under their mapped
parent, created with the same class when missing.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from mailferry.domain.mailboxmodel import MailboxEntry


@dataclass(frozen=True)
class Copy:
    """A state row: this source item, as of this change key, is that target item."""

    source_id: str
    source_change_key: str
    target_id: str
    target_change_key: str
    key: str | None  # its recognition key (see MailboxEntry.key)


class Mode(StrEnum):
    """Graph's import ``Mode``."""

    CREATE = "create"
    UPDATE = "update"


@dataclass(frozen=True)
class ImportIntent:
    """Written (and committed) before an import: enough to settle it if the answer is lost."""

    source_id: str
    source_change_key: str
    target_folder: str
    key: str | None
    mode: Mode
    target_id: str | None = None  # an update: the target item it replaces ...
    target_change_key: str | None = None  # ... and the change key it replaces
    size: int | None = None  # the version imported's, as listed (None: unknown; schema 2)


class Step(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    RECOGNISED = "recognised"
    REMOVED_ON_SOURCE = "removed-on-source"


@dataclass(frozen=True)
class ItemAction:
    step: Step
    source_id: str
    entry: MailboxEntry | None = None  # None: removed on the source
    copy: Copy | None = None  # the row an update replaces, or the copy recognised / kept
    note: str | None = None  # why it is reported although it goes on (not recognisable)


NOT_RECOGNISABLE = (
    "not recognisable: the item has no key to find an earlier copy by, so it may now be on the "
    "target twice"
)


class Claims:
    """The copies on a target folder by key, each claimed at most once."""

    def __init__(
        self,
        target: Iterable[MailboxEntry],
        recorded: Iterable[str],
        *,
        strangers: bool | None = None,
    ) -> None:
        """``target``: the whole folder, or (a pass's window) only the candidates it needs, with
        ``strangers`` then said of the whole folder."""
        known = set(recorded)
        self._free: dict[str, list[MailboxEntry]] = {}
        self.by_id: dict[str, MailboxEntry] = {}
        self.strangers = False  # an item the state does not know: a keyless one may be a copy
        for entry in target:
            self.by_id[entry.id] = entry
            if entry.id in known:
                continue
            self.strangers = True
            if entry.key is not None:
                self._free.setdefault(entry.key, []).append(entry)
        for copies in self._free.values():
            copies.sort(key=lambda e: e.id)
        if strangers is not None:
            self.strangers = strangers

    def take(self, target_id: str) -> None:
        """That copy is known now (an update that landed): nobody else's."""
        there = self.by_id.get(target_id)
        if there is not None and there.key is not None and there in self._free.get(there.key, []):
            self._free[there.key].remove(there)

    def count(self, key: str | None) -> int:
        """How many free copies have ``key``."""
        return len(self._free.get(key, ())) if key is not None else 0

    def claim(self, key: str | None, size: int | None = None) -> MailboxEntry | None:
        """A free copy with ``key``, taken. ``size`` (a create's, settled): one of that size
        first, then one of unknown size, then any (the caller says what another size means)."""
        copies = self._free.get(key, []) if key is not None else []
        if not copies:
            return None
        ranked = sorted(copies, key=lambda c: _size_rank(c.size, size))  # stable: then by id
        copies.remove(ranked[0])
        return ranked[0]


def _size_rank(there: int | None, wanted: int | None) -> int:
    if wanted is None or there == wanted:
        return 0
    return 1 if there is None else 2


@dataclass(frozen=True)
class Settled:
    done: tuple[Copy, ...]  # intents that landed: recorded
    dropped: tuple[str, ...]  # source ids: planned again
    unrecognisable: frozenset[str]  # of those, the ones that may be on the target already


def settle_intents(intents: Sequence[ImportIntent], claims: Claims) -> Settled:
    """The intents an interrupted run left, against a listing of their target folder.

    A create found by a key that several intents share, or that several free copies have, may have
    been matched to another source item's copy (both have that key): it is recorded with an
    unknown source change key, so the pass that follows replaces the copy with this item's
    content (``Mode: update``)."""
    done: list[Copy] = []
    dropped: list[str] = []
    unknown: set[str] = set()
    shared = Counter(i.key for i in intents if i.mode is Mode.CREATE and i.key is not None)
    for intent in intents:  # an update names its copy: no create may claim that one by key
        if intent.mode is Mode.UPDATE and intent.target_id:
            claims.take(intent.target_id)
    for intent in intents:
        ambiguous = intent.mode is Mode.CREATE and (
            claims.count(intent.key) > 1 or (intent.key is not None and shared[intent.key] > 1)
        )
        landed = _landed(intent, claims)
        if landed is not None:
            if ambiguous:
                landed = dataclasses.replace(landed, source_change_key="")
            done.append(landed)
            continue
        dropped.append(intent.source_id)
        if intent.mode is Mode.CREATE and intent.key is None:
            unknown.add(intent.source_id)
    return Settled(tuple(done), tuple(dropped), frozenset(unknown))


def _landed(intent: ImportIntent, claims: Claims) -> Copy | None:
    if intent.mode is Mode.UPDATE:
        there = claims.by_id.get(intent.target_id or "")
        if there is None or there.change_key == intent.target_change_key:
            return None
        claims.take(there.id)
    else:
        there = claims.claim(intent.key, intent.size)
        if there is None:
            return None
        if None not in (there.size, intent.size) and there.size != intent.size:
            # Its import, its size changed on the way in, or another item's copy with its key (an
            # item removed on the source leaves its copy): recorded as not this version, so the
            # next pass imports it over that copy (``Mode: update``). Never a second copy, and
            # never an item left out; the removed item's copy is what gives way.
            return Copy(intent.source_id, "", there.id, there.change_key, intent.key)
    return Copy(intent.source_id, intent.source_change_key, there.id, there.change_key, intent.key)


def plan_entries(
    changed: Sequence[MailboxEntry],
    removed: Sequence[str],
    rows: Mapping[str, Copy],
    claims: Claims | None,
    *,
    whole: bool,
    unrecognisable: frozenset[str] = frozenset(),
) -> list[ItemAction]:
    """One folder pass. ``whole``: ``changed`` is every source entry (no delta token), so a row
    whose entry is not listed was removed. ``claims`` None: the folder's state is known, the
    target is not looked at. ``unrecognisable``: source ids whose earlier import may have landed."""
    actions = [_entry(entry, rows, claims, unrecognisable) for entry in changed]
    listed = {entry.id for entry in changed}
    gone = [i for i in rows if i not in listed] if whole else [i for i in removed if i in rows]
    actions.extend(
        ItemAction(Step.REMOVED_ON_SOURCE, i, copy=rows[i]) for i in sorted(dict.fromkeys(gone))
    )
    return actions


def _entry(
    entry: MailboxEntry,
    rows: Mapping[str, Copy],
    claims: Claims | None,
    unrecognisable: frozenset[str],
) -> ItemAction:
    row = rows.get(entry.id)
    if row is not None:
        step = Step.UNCHANGED if row.source_change_key == entry.change_key else Step.UPDATE
        return ItemAction(step, entry.id, entry, row)
    hit = claims.claim(entry.key) if claims is not None else None
    if hit is not None:
        copy = Copy(entry.id, entry.change_key, hit.id, hit.change_key, entry.key)
        if entry.size is not None and hit.size is not None and entry.size != hit.size:
            return ItemAction(Step.UPDATE, entry.id, entry, copy)  # another version of it
        return ItemAction(Step.RECOGNISED, entry.id, entry, copy)
    maybe_there = entry.id in unrecognisable or (
        entry.key is None and claims is not None and claims.strangers
    )
    return ItemAction(Step.CREATE, entry.id, entry, note=NOT_RECOGNISABLE if maybe_there else None)
