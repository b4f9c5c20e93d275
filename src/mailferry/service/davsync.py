"""Migrate one account's calendars and address books (CalDAV/CardDAV to CalDAV/CardDAV).

    collections   both sides listed; the scheduling inbox and outbox are never touched
    mapping       a collection mapped by an earlier run stays mapped (the state says where);
                  the others by ``map_collections``: defaults to defaults, then by name, then by
                  display name, else created (MKCALENDAR / extended MKCOL, with display name,
                  description, colour, time zone and components); a target that refuses to create
                  one gets the items in its default collection of that kind, reported
    items         one ``CollectionPass`` per collection (service/davitems.py)

A collection that fails (FolderError) is reported and the run goes on with the next one. An
account-level failure (login, connection after its retries) ends the run: the state is consistent,
a re-run resumes. A full target (507, or PUTs failing with 500 again and again: davwrites.py)
stops the run as it stops mail: ``stopped`` says why, what was copied stays, the items not written
are counted ``items_remaining`` (those of the collections not reached as well), none is failed
for it, and the run after more room finishes with nothing copied twice.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from mailferry.domain.attendees import AttendeeMode, attendee_mode
from mailferry.domain.davmodel import CollectionInfo, CollectionKind, NewCollection
from mailferry.domain.davplan import CollectionMapping, map_collections
from mailferry.domain.davports import CollectionAccount, ItemNoting, ItemStateStore
from mailferry.domain.davreport import CollectionReport, DavSummary
from mailferry.domain.errors import (
    ConnectError,
    FolderError,
    MailferryError,
    TargetFailingError,
    TargetFullError,
)
from mailferry.domain.items import Collection, ComponentKind
from mailferry.domain.items import CollectionKind as Kind
from mailferry.domain.workloads import Workload, collection_workload
from mailferry.logs import get_logger
from mailferry.service.davcontext import (
    PassContext,
    Payloads,
    retrying,
    storage_full,
)
from mailferry.service.davitems import CollectionPass, Sides, listing
from mailferry.service.progress import NoProgress, Progress
from mailferry.service.resilience import RetryPolicy

log = get_logger("mailferry.dav")

Chosen = tuple[CollectionInfo, CollectionMapping]  # a source collection and where it maps
KINDS = {CollectionKind.CALENDAR: Kind.CALENDAR, CollectionKind.ADDRESSBOOK: Kind.ADDRESSBOOK}
# Names servers give the collection they create for a new account (Radicale, Xandikos, SabreDAV,
# Cyrus, Google, iCloud): the account's default when a home holds several of a kind.
DEFAULT_NAMES = frozenset(
    {"calendar", "default", "home", "personal", "contacts", "addressbook", "card", "events"}
)


def name_of(href: str) -> str:
    return href.rstrip("/").rsplit("/", 1)[-1]


def domain_collections(infos: list[CollectionInfo]) -> list[Collection]:
    out = []
    for info in infos:
        kind = KINDS[info.kind]
        same = [i for i in infos if i.kind == info.kind]
        default = len(same) == 1 or name_of(info.href).casefold() in DEFAULT_NAMES
        components = frozenset(
            ComponentKind(c) for c in info.components if c in ComponentKind.__members__
        )
        out.append(
            Collection(
                kind,
                name_of(info.href),
                info.displayname,
                info.description,
                info.color,
                info.timezone,
                components,
                default=default,
            )
        )
    return out


@dataclass
class DavSync:
    ctx: PassContext
    workloads: frozenset[Workload] | None = None  # None: every collection

    def run(self) -> DavSummary:
        started = time.monotonic()
        summary = self.ctx.summary
        sources = _kept(retrying(self.ctx, self.ctx.source.collections))
        targets = _kept(retrying(self.ctx, self.ctx.target.collections))
        capabilities = retrying(self.ctx, self.ctx.target.capabilities)
        can_create = capabilities.can_create
        mode = attendee_mode(self.ctx.payloads.mode, capabilities.server)
        self.ctx.payloads.mode = mode
        summary.attendees = str(mode)
        mappings = map_collections(
            domain_collections(sources), domain_collections(targets), can_create=can_create
        )
        by_name = {(KINDS[i.kind], name_of(i.href)): i for i in sources}
        chosen = [(by_name[(m.source.kind, m.source.name)], m) for m in mappings]
        # the others are mapped with them (defaults stay defaults), not copied
        chosen = [(s, m) for s, m in chosen if self._wanted(s)]
        self._each(chosen, targets)
        if self.ctx.stopped():
            summary.stopped = summary.stopped or "stop requested"
        summary.seconds = time.monotonic() - started
        return summary

    def _wanted(self, source: CollectionInfo) -> bool:
        return self.workloads is None or workload_of(source) in self.workloads

    def _each(self, chosen: Sequence[Chosen], targets: list[CollectionInfo]) -> None:
        """One collection after the other, until a stop request or a full target."""
        summary = self.ctx.summary
        for index, (source, mapping) in enumerate(chosen):
            if self.ctx.stopped():
                summary.stopped = "stop requested"
                return
            before = summary.counters()
            try:
                full = self._collection(source, mapping, targets)
            except TargetFullError as exc:  # creating its target: this collection not reached
                self._stop_full(storage_full(exc), chosen[index:])
                return
            after = summary.counters()
            summary.collections[-1] = dataclasses.replace(
                summary.collections[-1],
                workload=str(workload_of(source)),
                counts=tuple((name, after[name] - before[name]) for name in after),
            )
            if full is not None:
                self._stop_full(full, chosen[index + 1 :])
                return

    def _stop_full(self, exc: TargetFullError, rest: Sequence[Chosen]) -> None:
        """The run ends: the collections not reached are reported with the items they hold
        that are not copied yet, counted remaining."""
        summary = self.ctx.summary
        summary.stopped = str(exc)
        summary.target_full = True
        log.warning("run.target_full", reason=str(exc), collections_left=len(rest))
        for source, _mapping in rest:
            self._not_reached(source)

    def _not_reached(self, source: CollectionInfo) -> None:
        summary = self.ctx.summary
        try:
            listed, left = retrying(self.ctx, lambda: items_left(self.ctx, source))
        except MailferryError as exc:
            summary.warnings.append(
                f"collection {name_of(source.href)!r}: items left not counted: {exc}"
            )
            return
        summary.items_remaining += left
        row = self.ctx.state.collection_state(self.ctx.pair, source.href)
        counts = {**dict.fromkeys(summary.counters(), 0), "items_remaining": left}
        report = CollectionReport(
            source.href,
            row.target if row is not None else None,
            source.kind,
            listed,
            note="not reached: the run stopped first",
            workload=str(workload_of(source)),
            counts=tuple(counts.items()),
        )
        summary.collections.append(report)

    def _collection(
        self, source: CollectionInfo, mapping: CollectionMapping, targets: list[CollectionInfo]
    ) -> TargetFullError | None:
        """The collection's pass, reported; the full target that stopped it, if one did
        (raised instead when it stopped the target's creation: nothing to report yet)."""
        summary = self.ctx.summary
        name = name_of(source.href)
        try:
            target, created, note = retrying(
                self.ctx, lambda: self._target(source, mapping, targets)
            )
        except FolderError as exc:
            summary.collections.append(
                CollectionReport(source.href, None, source.kind, 0, note=f"failed: {exc.reason}")
            )
            return None
        if target is None:
            summary.collections.append(
                CollectionReport(source.href, None, source.kind, 0, note=note)
            )
            return None
        sides = Sides(source, target, str(source.kind), name, created and self.ctx.dry_run)
        passes: list[CollectionPass] = []

        def one_pass() -> None:
            passes.append(CollectionPass(self.ctx, sides))  # a fresh pass per attempt
            passes[-1].run()

        full = None
        try:
            retrying(self.ctx, one_pass)
        except TargetFullError as exc:
            full = exc
            why = "kept failing" if isinstance(exc, TargetFailingError) else "is full"
            note = f"stopped: the target {why}" + (f"; {note}" if note else "")
        except FolderError as exc:
            note = f"failed: {exc.reason}" + (f"; {note}" if note else "")
        except ConnectError as exc:  # after its retries (a refused login ends the run)
            note = f"failed: {exc}" + (f"; {note}" if note else "")
        items = passes[-1].items if passes else 0
        log.info("collection.done", source=source.href, target=target.href, items=items)
        summary.collections.append(
            CollectionReport(source.href, target.href, source.kind, items, created, note)
        )
        return full

    def _target(
        self, source: CollectionInfo, mapping: CollectionMapping, targets: list[CollectionInfo]
    ) -> tuple[CollectionInfo | None, bool, str | None]:
        """The target collection (created if it must be), whether it was created, and a note."""
        by_href = {t.href: t for t in targets}
        row = self.ctx.state.collection_state(self.ctx.pair, source.href)
        if row is not None and row.target in by_href:
            return by_href[row.target], False, None
        kind = KINDS[source.kind]
        named = {name_of(t.href): t for t in targets if KINDS[t.kind] is kind}
        if mapping.target is None:
            return None, False, mapping.note
        if not mapping.create:
            return named[mapping.target], False, mapping.note
        return self._create(source, mapping.target, named)

    def _create(
        self, source: CollectionInfo, name: str, named: dict[str, CollectionInfo]
    ) -> tuple[CollectionInfo | None, bool, str | None]:
        homes = self.ctx.target.homes()
        home = (
            homes.calendar_home
            if source.kind is CollectionKind.CALENDAR
            else homes.addressbook_home
        )
        if home is None:
            return None, False, f"the target has no {source.kind} home"
        href = home.rstrip("/") + "/" + name + "/"
        new = NewCollection(
            source.kind,
            source.displayname,
            source.description,
            source.color,
            source.timezone,
            source.components,
        )
        if self.ctx.dry_run:
            return CollectionInfo(href, source.kind, ()), True, "would be created"
        try:
            refused = self.ctx.target.create_collection(href, new)
        except FolderError as exc:
            return self._fallback(named, exc.reason)
        created = next((t for t in _kept(self.ctx.target.collections()) if t.href == href), None)
        if created is None:
            raise FolderError(href, "created, but the target does not list it")
        note = f"the target refused to set {', '.join(refused)}" if refused else None
        return created, True, note

    @staticmethod
    def _fallback(
        named: dict[str, CollectionInfo], reason: str
    ) -> tuple[CollectionInfo | None, bool, str | None]:
        """The target cannot create it: into the target's default collection of the kind."""
        targets = list(named.values())
        defaults = [c for c in domain_collections(targets) if c.default]
        if not defaults:
            return (
                None,
                False,
                f"failed: cannot be created ({reason}) and the target has no default",
            )
        chosen = named[defaults[0].name]
        note = f"cannot be created on the target ({reason}): into '{defaults[0].name}'"
        return chosen, False, note


def _kept(infos: list[CollectionInfo]) -> list[CollectionInfo]:
    """Calendars and address books; never the scheduling inbox/outbox (RFC 6638)."""
    return [i for i in infos if i.kind in KINDS]


def items_left(ctx: PassContext, source: CollectionInfo) -> tuple[int, int]:
    """The items of a source collection a stopped run did not reach, and how many of them the
    state does not hold as copied at their current ETag: left for the next run."""
    refs, _token = listing(ctx.source, source)
    copied = {r.source_href: r.source_etag for r in ctx.state.recorded(ctx.pair, source.href)}
    left = [r for r in refs if r.href not in copied or (r.etag and copied[r.href] != r.etag)]
    return len(refs), len(left)


def workload_of(info: CollectionInfo) -> Workload:
    return collection_workload(info.kind is CollectionKind.ADDRESSBOOK, info.components)


@dataclass(frozen=True)
class DavOptions:
    attendees: AttendeeMode = AttendeeMode.AUTO
    concurrency: int = 4  # PUTs in flight per account
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    dry_run: bool = False
    workloads: frozenset[Workload] | None = None  # None: calendars, contacts and tasks


def sync_accounts(
    source: CollectionAccount,
    target: CollectionAccount,
    state: ItemStateStore,
    pair: str,
    options: DavOptions | None = None,
    *,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> DavSummary:
    """One pass over every calendar and address book of ``source`` into ``target``."""
    options = options or DavOptions()
    summary = DavSummary()
    ctx = PassContext(
        source,
        target,
        state,
        pair,
        summary,
        Payloads(options.attendees, summary),
        retry=options.retry,
        concurrency=options.concurrency,
        dry_run=options.dry_run,
        progress=progress or NoProgress(),
        stop=stop or threading.Event(),
    )
    summary = DavSync(ctx, options.workloads).run()
    if isinstance(source, ItemNoting):
        summary.warnings.extend(source.notes())
    if ctx.payloads.mode is AttendeeMode.PARK and summary.scheduling_changed:
        summary.warnings.append(
            f"{summary.scheduling_changed} meeting(s): ORGANIZER/ATTENDEE written as "
            "X-MAILFERRY-ORGANIZER/X-MAILFERRY-ATTENDEE, because the target is not known to honour "
            "SCHEDULE-AGENT=CLIENT and could mail every attendee; --attendees client writes them "
            "as meetings on a server that honours it"
        )
    return summary
