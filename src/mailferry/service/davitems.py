"""One pass over one source collection and the target collection it maps to.

    settle intents   PUTs announced by an earlier run that never got their answer: each is looked
                     up on the target (there with the source's content: recorded; else dropped,
                     and planned again: a copy edited there since is then a conflict)
    fast path        both collections' sync-tokens (or CTags) are those of the last complete pass,
                     and nothing failed: nothing to do, no request beyond the collection listing
    list             sync-collection (RFC 6578) with no token, else PROPFIND getetag: href + ETag
    identify         items whose ETag the identity cache does not know are read (multiget in
                     chunks); the source's bytes are spooled to a temporary file, not kept in memory
    plan             ``plan_items`` (domain/davplan.py): the truth table
    execute          creates and updates in bursts: intents committed, then bounded concurrent PUTs
                     (``writes.py``), then the answers resolved into rows in one transaction
    finish           ETags the PUTs did not return are read back; the tokens are stored

What a crash leaves: intents (settled by the next run), or rows already resolved. Never a second
copy: a create is ``If-None-Match: *`` at a name chosen before the intent was committed.

A full (or failing) target ends the pass after the burst in flight: the writes it did not take
and those of the bursts not sent are counted remaining, the state is closed as after a stop
request (no token kept: the next pass lists both sides), then ``TargetFullError`` goes up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailferry.domain.attendees import AttendeeMode
from mailferry.domain.davmodel import CollectionInfo, ItemRef
from mailferry.domain.davplan import Action, Listed, Recorded, Step, plan_items
from mailferry.domain.davports import CollectionState
from mailferry.domain.davreport import DavSummary, ItemProblem
from mailferry.domain.errors import (
    ConnectError,
    FolderError,
    ItemError,
    ServerFaultError,
    SyncTokenInvalidError,
    TargetFullError,
)
from mailferry.domain.items import identify, item_key
from mailferry.domain.normalise import content_differs
from mailferry.service.davspool import Spool
from mailferry.service.davwrites import Write, Writer

if TYPE_CHECKING:
    from mailferry.domain.davports import CollectionAccount
    from mailferry.service.davcontext import PassContext

SOURCE, TARGET = "source", "target"
SUFFIX = {"calendar": ".ics", "addressbook": ".vcf"}
BURST = 64  # creates/updates per intent transaction
MULTIGET = 100  # items per multiget when items found on the target are compared


@dataclass(frozen=True)
class Sides:
    source: CollectionInfo
    target: CollectionInfo
    kind: str  # calendar | addressbook
    name: str  # the source collection's name, as reported
    new: bool = False  # a dry run's collection that would be created: empty, not listed


class CollectionPass:
    def __init__(self, ctx: PassContext, sides: Sides) -> None:
        self.ctx = ctx
        self.sides = sides
        self.state = ctx.state
        self.pair = ctx.pair
        self.key = sides.source.href
        self.items = 0  # source items seen
        self._failures: dict[str, str] = {}  # source href -> reason, stored for the next pass
        # What this pass reports, added to the summary when it ends (a pass retried after a
        # dropped connection reports once): failures, conflicts, deletions, warnings.
        self._findings = DavSummary()
        self._etags: dict[str, str | None] = {}  # source href -> ETag as listed or read
        self._wrote = False
        self._full: TargetFullError | None = None  # the target had no room (or kept failing)

    def run(self) -> None:
        self._settle_intents()
        if self._unchanged():
            self.items = len(self.state.recorded(self.pair, self.key))
            self.ctx.summary.items_unchanged += self.items
            return
        spool = Spool()
        try:
            self._run(spool)
        finally:
            spool.close()

    def _run(self, spool: Spool) -> None:
        source_refs, source_token = listing(self.ctx.source, self.sides.source)
        target_refs: list[ItemRef] = []
        target_token = None
        if not self.sides.new:
            target_refs, target_token = listing(self.ctx.target, self.sides.target)
        self.items = len(source_refs)
        self.ctx.progress.folder_started(self.sides.name, self.sides.target.href, self.items, 0)
        source = self._identify(SOURCE, self.ctx.source, self.sides.source, source_refs, spool)
        target = self._identify(TARGET, self.ctx.target, self.sides.target, target_refs, None)
        recorded = self.state.recorded(self.pair, self.key)
        actions = plan_items(source, target, recorded, suffix=SUFFIX[self.sides.kind])
        failures = self._execute(actions, spool)
        # Conflicts are stored with the failures: either keeps the next pass off the fast path,
        # so a conflict is reported on every pass until someone resolves it.
        for problem in self._findings.conflicts:
            failures.setdefault(problem.href or "", f"conflict: {problem.reason}")
        if not self.ctx.dry_run:
            self._save(failures, source_token, target_token)
        self._report_found()
        self.ctx.progress.folder_finished(self.sides.name)
        if self._full is not None:
            raise self._full

    # -- before --------------------------------------------------------------------------------
    def _settle_intents(self) -> None:
        intents = self.state.item_intents(self.pair, self.key)
        if not intents or self.ctx.dry_run:
            return
        done, dropped = Writer(self.ctx, self.sides).settle(intents)
        self.state.resolve_items(self.pair, self.key, done, dropped)

    def _unchanged(self) -> bool:
        row = self.state.collection_state(self.pair, self.key)
        if row is None or row.target != self.sides.target.href:
            return False
        if self.state.item_failures(self.pair, self.key):
            return False
        return _same(row.source_token, _version(self.sides.source)) and _same(
            row.target_token, _version(self.sides.target)
        )

    def _identify(
        self,
        side: str,
        account: CollectionAccount,
        collection: CollectionInfo,
        refs: Sequence[ItemRef],
        spool: Spool | None,
    ) -> list[Listed]:
        """Every listed item with its identity; unknown or changed ones read (source: spooled)."""
        cached = {i.href: i for i in self.state.identities(self.pair, side, collection.href)}
        known, unknown = [], {}
        for ref in refs:
            hit = cached.get(ref.href)
            if hit is not None and ref.etag is not None and hit.etag == ref.etag:
                known.append(hit)  # unchanged: read again only if the plan writes it
            else:
                unknown[ref.href] = ref
        read = self._read(side, account, collection, unknown, spool)
        listed = known + read
        if side == SOURCE:
            self._etags = {i.href: i.etag for i in listed}
        listed_now = {r.href for r in refs}
        gone = [href for href in cached if href not in listed_now]
        if not self.ctx.dry_run:
            self.state.save_identities(self.pair, side, collection.href, read, gone)
        return listed

    def _read(
        self,
        side: str,
        account: CollectionAccount,
        collection: CollectionInfo,
        wanted: dict[str, ItemRef],
        spool: Spool | None,
    ) -> list[Listed]:
        out: list[Listed] = []
        if not wanted:
            return out
        for got in account.read(collection.href, collection.kind, list(wanted)):
            if isinstance(got, ItemError):
                if side == SOURCE:
                    self._fail(got.href, None, f"not readable on the source: {got.reason}")
                continue
            identity = identify(got.data)
            ref = wanted.get(got.href)
            etag = got.etag or (ref.etag if ref else None)
            out.append(Listed(got.href, etag, item_key(identity.uid, got.data)))
            if spool is not None:
                spool.put(got.href, got.data, identity.component)
                if identity.problem:
                    self._findings.warnings.append(
                        f"{self.sides.name}: {got.href}: {identity.problem}: copied as it is"
                    )
        return out

    # -- the plan -------------------------------------------------------------------------------
    def _execute(self, actions: Sequence[Action], spool: Spool) -> dict[str, str]:
        writes: list[Write] = []
        found: list[Action] = []
        for action in actions:
            step = action.step
            if step is Step.UNCHANGED:
                if (self.key, action.source_href) not in self.ctx.written:
                    self.ctx.summary.items_unchanged += 1  # not copied by an earlier attempt
            elif step is Step.SKIP_EXISTING:
                found.append(action)
            elif step in {Step.CREATE, Step.UPDATE}:
                write = self._write_for(action, spool)
                if write is not None:
                    writes.append(write)
            else:
                self._report(action)
        self._record_found([self._found(a) for a in self._same_on_target(found, spool)])
        self._write(writes)
        return dict(self._failures)

    def _same_on_target(self, found: list[Action], spool: Spool) -> list[Action]:
        """Items the target already holds (no state row): those equal to the source's are taken
        as copies; one that differs (the state was lost after the source or the target changed
        it) is left alone and reported as a conflict, every pass, until someone decides."""
        same: list[Action] = []
        target = self.sides.target
        for start in range(0, len(found), MULTIGET):
            chunk = {a.target_href or "": a for a in found[start : start + MULTIGET]}
            for got in self.ctx.target.read(target.href, target.kind, list(chunk)):
                action = chunk.get(got.href)
                if action is None:
                    continue
                if isinstance(got, ItemError):
                    same.append(action)  # listed a moment ago: taken as there
                    continue
                ours = spool.get(action.source_href or "") or self._read_one(
                    action.source_href or ""
                )
                differs = None if ours is None else content_differs(target.kind, ours, got.data)
                if differs is None:
                    same.append(action)
                else:
                    reason = f"on the target already, with other content ({differs}): left alone"
                    self._findings.conflicts.append(
                        ItemProblem(self.sides.name, action.source_href, action.key.uid, reason)
                    )
        return same

    def _record_found(self, found: list[Recorded]) -> None:
        if found and not self.ctx.dry_run:
            self.state.record(self.pair, self.key, found)
            self.ctx.written.update((self.key, r.source_href) for r in found)
        self.ctx.summary.items_skipped_existing += len(found)

    def _write(self, writes: list[Write]) -> None:
        writer = Writer(self.ctx, self.sides)
        sent = 0  # writes of the bursts begun
        try:
            for start in range(0, len(writes), BURST):
                if self.ctx.stopped():
                    break
                burst = writes[start : start + BURST]
                sent += len(burst)
                writer.burst(burst)
                self.ctx.progress.folder_advanced(self.sides.name, len(burst))
        except TargetFullError as exc:
            self._full = exc
            self.ctx.summary.items_remaining += writer.unwritten + len(writes) - sent
        finally:
            self._wrote = writer.wrote
            for href, (uid, reason) in writer.failures.items():
                self._fail(href, uid, reason)

    def _found(self, action: Action) -> Recorded:
        source_etag = self._source_etag(action)
        return Recorded(
            action.source_href or "",
            source_etag,
            action.key,
            action.target_href or "",
            action.if_match,
        )

    def _source_etag(self, action: Action) -> str | None:
        return self._etags.get(action.source_href or "")

    def _write_for(self, action: Action, spool: Spool) -> Write | None:
        href = action.source_href or ""
        data = spool.get(href)
        if data is None:  # known from the cache but not read this pass: read it now
            data = self._read_one(href)
            if data is None:
                return None
        target = self.sides.target.href + (action.target_href or "")
        if action.step is Step.UPDATE:
            target = action.target_href or target
        component = spool.components.get(href) or identify(data).component
        prepared = self.ctx.payloads.prepare(self.sides.target, data, component)
        if isinstance(prepared, str):
            self._fail(href, action.key.uid, prepared)
            return None
        if prepared != data and self.ctx.payloads.mode is AttendeeMode.PARK:
            self._findings.warnings.append(
                f"{self.sides.name}: {href}: ORGANIZER/ATTENDEE parked as X-MAILFERRY-* "
                "(the target would have mailed every attendee)"
            )
        return Write(
            source_href=href,
            source_etag=self._source_etag(action),
            key=action.key,
            href=target,
            data=prepared,
            if_match=action.if_match if action.step is Step.UPDATE else None,
        )

    def _read_one(self, href: str) -> bytes | None:
        source = self.sides.source
        for got in self.ctx.source.read(source.href, source.kind, [href]):
            if isinstance(got, ItemError):
                self._fail(href, None, f"not readable on the source: {got.reason}")
                return None
            return got.data
        self._fail(href, None, "gone from the source while it was read")
        return None

    def _report(self, action: Action) -> None:
        summary = self._findings
        problem = ItemProblem(
            self.sides.name, action.source_href, action.key.uid, action.reason or action.step
        )
        lists = {
            Step.CONFLICT: summary.conflicts,
            Step.DELETED_ON_SOURCE: summary.deleted_on_source,
            Step.DELETED_ON_TARGET: summary.deleted_on_target,
        }
        if action.step in lists:
            lists[action.step].append(problem)
        else:  # DUPLICATE: a second source item with the same UID
            self._fail(action.source_href or "", action.key.uid, problem.reason)

    def _fail(self, href: str, uid: str | None, reason: str) -> None:
        self._failures[href] = reason
        self._findings.failures.append(ItemProblem(self.sides.name, href, uid, reason))

    def _report_found(self) -> None:
        summary, found = self.ctx.summary, self._findings
        summary.failures += found.failures
        summary.conflicts += found.conflicts
        summary.deleted_on_source += found.deleted_on_source
        summary.deleted_on_target += found.deleted_on_target
        summary.warnings += found.warnings

    # -- after ----------------------------------------------------------------------------------
    def _finish(self, target_token: str | None) -> str | None:
        """Fill in the ETags the PUTs did not return; the target's token, if only we changed it."""
        recorded = self.state.recorded(self.pair, self.key)
        missing = [r for r in recorded if r.target_etag is None]
        if not missing and not self._wrote:
            return target_token
        refs, token = listing(self.ctx.target, self.sides.target)
        etags = {r.href: r.etag for r in refs}
        filled = [
            Recorded(r.source_href, r.source_etag, r.key, r.target_href, etags[r.target_href])
            for r in missing
            if etags.get(r.target_href)
        ]
        if filled:
            self.state.record(self.pair, self.key, filled)
        return token

    def _save(
        self, failures: dict[str, str], source_token: str | None, target_token: str | None
    ) -> None:
        """The failures, the ETags and the tokens; no token when writes were left undone (a stop
        request, a full target): the next pass must not take the fast path."""
        self.state.set_item_failures(self.pair, self.key, failures)
        token = None
        if self._full is None:
            token = self._finish(target_token)
        else:  # ETags still read back if the target answers (one failing with 500s may not)
            with contextlib.suppress(ConnectError, FolderError):
                self._finish(None)
        if self.ctx.stopped() or self._full is not None:
            source_token = token = None
        self.state.save_collection_state(
            self.pair, CollectionState(self.key, self.sides.target.href, source_token, token)
        )


def _same(stored: str | None, current: str | None) -> bool:
    return stored is not None and stored == current


def _version(collection: CollectionInfo) -> str | None:
    """What changes whenever a collection's content does: its sync-token, else its CTag."""
    return collection.sync_token or (f"ctag:{collection.ctag}" if collection.ctag else None)


def listing(
    account: CollectionAccount, collection: CollectionInfo
) -> tuple[list[ItemRef], str | None]:
    """Every item (href, ETag) and the collection's version now (sync-token or CTag).

    sync-collection with no token lists everything and says the token in the same answer;
    a server without it (or refusing it, or failing it: Radicale and Xandikos answer it 500
    while their disk is full, as they write as they answer) is listed with PROPFIND, versioned
    by its CTag.
    """
    if collection.sync_token is not None:
        try:
            changes = account.sync(collection.href, None)
        except (FolderError, SyncTokenInvalidError, ServerFaultError):
            pass
        else:
            return list(changes.changed), changes.token
    refs = account.items(collection.href)
    return refs, (f"ctag:{collection.ctag}" if collection.ctag else None)
