"""One pass over one source folder of a Microsoft 365 mailbox and the target folder it maps to,
a window (one page of the source's listing) at a time: memory stays flat in the folder's size.

    folder state     the state says which target folder this source folder went to; another one
                     (the old one was deleted, or the state is new): the folder's rows are dropped
    target listing   only when a copy could be there unknown to the state: no pass into this
                     folder completed (and this run did not create it: a first pass into an
                     existing folder, an interrupted one, or the state was lost) or intents of an
                     interrupted run are pending; its entries are streamed into the state's
                     scratch TARGET list, where windows find copies by key (``free_copies``)
    settle intents   ``settle_intents``: each pending import found (recorded) or dropped; a
                     dropped one that cannot be found (no key) may be there already: its doubt is
                     kept in the state in the same transaction, for a run that finishes to report
    windows          the source's entries since the delta token (every entry without one, or when
                     the token is refused), a page at a time: the page's rows read by id, its
                     candidates by key, then ``plan_entries`` (the truth table) for the page; what
                     needs no request recorded at once, the creates and updates fed to ``Imports``
                     (service/graphimports.py: exports, intents, imports, answers, pipelined)
    removed          a whole pass lists the source ids it saw (SOURCE): rows of the others were
                     removed on the source (a delta round says so itself)
    finish           the failures recorded; the new delta token saved only when nothing failed or
                     is pending, so that a failed item comes back in the next pass's delta

A retried pass (after a dropped connection) finds the items its earlier attempt imported recorded:
they are counted once, as written, not also as unchanged (the state's WRITTEN list says which).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence

from mailferry.domain.errors import SyncTokenInvalidError
from mailferry.domain.mailboxfolders import FolderPlan
from mailferry.domain.mailboxmodel import EntryPage, Listing, MailboxEntry
from mailferry.domain.mailboxplan import (
    NOT_RECOGNISABLE,
    Claims,
    Copy,
    ImportIntent,
    ItemAction,
    Mode,
    Settled,
    Step,
    plan_entries,
    settle_intents,
)
from mailferry.domain.mailboxports import MailboxFolderState
from mailferry.domain.mailboxreport import Doubt, EntryProblem
from mailferry.logs import get_logger
from mailferry.service.graphcontext import GraphContext
from mailferry.service.graphimports import Imports

log = get_logger("mailferry.graph")
REMOVED_CHUNK = 500  # rows of removed items forgotten per transaction
SCRATCH = (Listing.TARGET, Listing.SOURCE)  # a pass's own lists (WRITTEN spans its retries)


class FolderPass:
    def __init__(
        self, ctx: GraphContext, plan: FolderPlan, target: str, *, created: bool, first: bool
    ) -> None:
        self.ctx = ctx
        self.plan = plan
        self.source = plan.source.id
        self.target = target
        self.created = created
        self.first = first  # the first attempt of this folder in this run
        self.seen = 0
        self.failures: dict[str, str] = {}
        # counted into the summary by ``publish`` once, from the last attempt of the pass (a
        # retried pass lists the same entries again); copies and updates are counted at once
        self.tally: Counter[str] = Counter()
        self.problems: list[EntryProblem] = []
        self.listed_target = False
        self.strangers = False  # the target folder holds items the state does not know

    def run(self) -> None:
        ctx, state, pair = self.ctx, self.ctx.state, self.ctx.pair
        token = self._folder_state()
        state.forget_listed(pair, self.source, tuple(Listing) if self.first else SCRATCH)
        consult = token is None and not self.created  # a copy the state lacks may be there
        intents = state.import_intents(pair, self.source)
        if intents or consult:
            self._list_target()
        settled = self._settle(intents) if intents else Settled((), (), frozenset())
        pages, whole = self._pages(token)
        keep_ids = whole and state.has_copies(pair, self.source)
        imports = Imports(self)
        next_token = None
        try:
            for page in pages:
                if keep_ids:
                    state.add_listed(pair, self.source, Listing.SOURCE, page.changed)
                imports.feed(self._window(page, consult=consult, settled=settled))
                next_token = page.token
                if ctx.stopped() or imports.lost is not None:
                    break
        finally:
            imports.close()
        if imports.lost is not None:
            raise imports.lost
        self._finish(next_token if not ctx.stopped() else None, removed=keep_ids)

    def _finish(self, token: str | None, *, removed: bool) -> None:
        """``token`` None: the listing did not end (stopped)."""
        state, pair = self.ctx.state, self.ctx.pair
        if token is not None and removed:
            self._forget_unlisted()
        state.set_mailbox_failures(pair, self.source, self.failures)
        if not self.failures and token is not None:
            state.save_folder_state(pair, MailboxFolderState(self.source, self.target, token))
        state.forget_listed(pair, self.source, SCRATCH)

    def publish(self) -> None:
        """The last attempt's counts and failures into the summary (doubts go through the state:
        ``MailboxSync`` reports them when the run finishes)."""
        summary, workload = self.ctx.summary, self.plan.workload
        for name, n in self.tally.items():
            summary.count(workload, name, n)
        for problem in self.problems:
            summary.fail(workload, problem)

    # -- what Imports reports back ---------------------------------------------------------------
    def doubt(self, source_id: str, reason: str) -> Doubt:
        """An item that may be on the target twice, as the state keeps it until a run that
        finishes reports it (this one may not: its summary would be lost with it)."""
        problem = EntryProblem(self.plan.path, source_id, reason)
        return Doubt(self.source, self.plan.workload, problem)

    def landed(self, source_id: str, *, update: bool) -> None:  # noqa: ARG002 - one signature
        self.ctx.summary.count(self.plan.workload, "updated" if update else "copied")

    def fail(self, source_id: str, reason: str) -> None:
        self.failures[source_id] = reason
        self.problems.append(EntryProblem(self.plan.path, source_id, reason))
        log.warning("item.failed", folder=self.plan.path, item=source_id, reason=reason)

    def current(self, target_id: str) -> MailboxEntry | None:
        """The target item as listed (the folder listed once per pass if it was not yet)."""
        if not self.listed_target:
            self._list_target()
        found = self.ctx.state.listed(self.ctx.pair, self.source, Listing.TARGET, [target_id])
        return found.get(target_id)

    # -- the steps ---------------------------------------------------------------------------------
    def _folder_state(self) -> str | None:
        """The delta token of the last complete pass into this target folder (None: no pass
        completed, so a copy the state does not know could be there)."""
        state, pair = self.ctx.state, self.ctx.pair
        row = state.folder_state(pair, self.source)
        if row is not None and row.target == self.target:
            return row.token
        if row is not None:
            state.forget_folder(pair, self.source)  # its copies are in another target folder
        state.save_folder_state(pair, MailboxFolderState(self.source, self.target))
        return None

    def _list_target(self) -> None:
        state, pair = self.ctx.state, self.ctx.pair
        state.forget_listed(pair, self.source, (Listing.TARGET,))
        for page in self.ctx.target.entries(self.target, None):
            state.add_listed(pair, self.source, Listing.TARGET, page.changed)
        self.strangers = state.has_strangers(pair, self.source)
        self.listed_target = True

    def _settle(self, intents: Sequence[ImportIntent]) -> Settled:
        """The intents of an interrupted run against the target's listing (their candidates:
        the free copies with their keys, and the items their updates replaced)."""
        state, pair = self.ctx.state, self.ctx.pair
        keys = {i.key for i in intents if i.mode is Mode.CREATE and i.key is not None}
        free = state.free_copies(pair, self.source, keys) if keys else []
        replaced = [i.target_id for i in intents if i.mode is Mode.UPDATE and i.target_id]
        known = state.listed(pair, self.source, Listing.TARGET, replaced)
        free_ids = {e.id for e in free}
        others = [e for e in known.values() if e.id not in free_ids]
        claims = Claims([*free, *others], [e.id for e in others], strangers=self.strangers)
        settled = settle_intents(intents, claims)
        doubts = [self.doubt(i, NOT_RECOGNISABLE) for i in sorted(settled.unrecognisable)]
        state.resolve_imports(pair, self.source, settled.done, settled.dropped, doubts)
        modes = {i.source_id: i.mode for i in intents}
        for copy in settled.done:  # landed though unanswered: copied or updated
            self.landed(copy.source_id, update=modes[copy.source_id] is Mode.UPDATE)
        return settled

    def _pages(self, token: str | None) -> tuple[Iterator[EntryPage], bool]:
        """The source's pages since ``token`` (whole: every entry), the first one fetched here so
        that a refused token falls back to a whole listing."""
        source = self.ctx.source
        if token is not None:
            pages = source.entries(self.source, token)
            try:
                first = next(pages)
            except SyncTokenInvalidError:
                log.info("folder.token_refused", folder=self.plan.path)
            else:
                return _chain(first, pages), False
        return source.entries(self.source, None), True

    def _window(self, page: EntryPage, *, consult: bool, settled: Settled) -> list[ItemAction]:
        """One page planned against its rows (and, when the target is consulted, the free
        copies with its keys); what needs no request is recorded, the rest returned."""
        state, pair = self.ctx.state, self.ctx.pair
        ids = [e.id for e in page.changed]
        rows = state.copies_of(pair, self.source, [*ids, *page.removed])
        claims = None
        if consult:
            keys = {e.key for e in page.changed if e.id not in rows and e.key is not None}
            free = state.free_copies(pair, self.source, keys) if keys else []
            claims = Claims(free, (), strangers=self.strangers)
        actions = plan_entries(
            page.changed,
            page.removed,
            rows,
            claims,
            whole=False,
            unrecognisable=settled.unrecognisable,
        )
        claimed = [
            a.copy.target_id
            for a in actions
            if a.copy is not None and a.source_id not in rows and a.entry is not None
        ]
        if claimed:
            state.claim_copies(pair, self.source, claimed)
        return self._settle_quick(actions)

    def _settle_quick(self, actions: Sequence[ItemAction]) -> list[ItemAction]:
        """Count and record what needs no request; the creates and updates are returned."""
        found: list[Copy] = []
        gone: list[str] = []
        unchanged: list[str] = []
        work: list[ItemAction] = []
        for action in actions:
            if action.step is Step.REMOVED_ON_SOURCE:
                gone.append(action.source_id)
                continue
            self.seen += 1
            self.tally["seen"] += 1
            if action.step is Step.UNCHANGED:
                unchanged.append(action.source_id)
            elif action.step is Step.RECOGNISED and action.copy is not None:
                found.append(action.copy)
            else:
                work.append(action)
        state, pair = self.ctx.state, self.ctx.pair
        if found:
            state.record_copies(pair, self.source, found)
        if gone:
            state.forget_copies(pair, self.source, gone)
        written = {} if self.first else state.listed(pair, self.source, Listing.WRITTEN, unchanged)
        self.tally["unchanged"] += len(unchanged) - len(written)
        self.tally["already_there"] += len(found)
        self.tally["removed_on_source_kept"] += len(gone)
        return work

    def _forget_unlisted(self) -> None:
        """A whole pass: the rows of source ids it did not list (removed on the source)."""
        state, pair = self.ctx.state, self.ctx.pair
        while gone := state.unlisted_copies(pair, self.source, REMOVED_CHUNK):
            state.forget_copies(pair, self.source, gone)
            self.tally["removed_on_source_kept"] += len(gone)


def _chain(first: EntryPage, rest: Iterator[EntryPage]) -> Iterator[EntryPage]:
    yield first
    yield from rest
