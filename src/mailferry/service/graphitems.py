"""One pass over one source folder of a Microsoft 365 mailbox and the target folder it maps to.

    folder state     the state says which target folder this source folder went to; another one
                     (the old one was deleted, or the state is new): the folder's rows are dropped
    target listing   only when a copy could be there unknown to the state: no pass into this
                     folder completed (and this run did not create it: a first pass into an
                     existing folder, an interrupted one, or the state was lost) or intents of an
                     interrupted run are pending; its entries become ``Claims`` by key
    settle intents   ``settle_intents``: each pending import found (recorded) or dropped
    list             the source's entries since the delta token (every entry without one, or when
                     the token is refused), then ``plan_entries``: the truth table
    execute          creates and updates in chunks of 20: one export, the intents committed, then
                     imports with at most ``concurrency`` in flight, then the answers resolved into
                     rows in one transaction (the state committed after each chunk)
    finish           the failures recorded; the new delta token saved only when nothing failed or
                     is pending, so that a failed item comes back in the next pass's delta

An update whose target change key is stale (the target item changed since it was copied) reads
the target's current change key once and updates again; an item deleted on the target since it
was copied is created again. An import whose answer was lost (``ConnectError``) keeps its intent:
the chunk's other answers are resolved, then the error ends the pass, which ``retrying`` runs
again (settling that intent first).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mailferry.domain.errors import (
    ConnectError,
    ItemConflictError,
    ItemError,
    SyncTokenInvalidError,
    ThrottledError,
)
from mailferry.domain.mailboxmodel import EntryChanges, Exported, MailboxEntry
from mailferry.domain.mailboxplan import (
    Claims,
    Copy,
    FolderPlan,
    ImportIntent,
    ItemAction,
    Mode,
    Settled,
    Step,
    plan_entries,
    settle_intents,
)
from mailferry.domain.mailboxreport import EntryProblem
from mailferry.domain.ports import MailboxFolderState
from mailferry.logs import get_logger
from mailferry.service.graphcontext import EXPORT_CHUNK, MAX_THROTTLED, GraphContext

log = get_logger("mailferry.graph")


@dataclass(frozen=True)
class Upload:
    entry: MailboxEntry
    change_key: str  # the source change key of the exported version
    data: bytes = field(repr=False)
    replace: Copy | None = None  # an update: the row of the copy it replaces

    def intent(self, folder: str) -> ImportIntent:
        if self.replace is None:
            return ImportIntent(self.entry.id, self.change_key, folder, self.entry.key, Mode.CREATE)
        return ImportIntent(
            self.entry.id,
            self.change_key,
            folder,
            self.entry.key,
            Mode.UPDATE,
            self.replace.target_id,
            self.replace.target_change_key,
        )


class Recreate:
    """An update whose target copy is gone (deleted on the target): created again."""


Outcome = Copy | str | ConnectError | Recreate  # landed, failed (why), answer lost, recreate


class FolderPass:
    def __init__(self, ctx: GraphContext, plan: FolderPlan, target: str, *, created: bool) -> None:
        self.ctx = ctx
        self.plan = plan
        self.source = plan.source.id
        self.target = target
        self.created = created
        self.seen = 0
        self.failures: dict[str, str] = {}
        # counted into the summary by ``publish`` once, from the last attempt of the pass (a
        # retried pass lists the same entries again); copies and updates are counted at once
        self.tally: Counter[str] = Counter()
        self.problems: list[EntryProblem] = []
        self.unknown: list[EntryProblem] = []
        self._listing: dict[str, MailboxEntry] | None = None
        self._lock = threading.Lock()

    def run(self) -> None:
        ctx, state, pair = self.ctx, self.ctx.state, self.ctx.pair
        token = self._folder_state()
        complete = token is not None  # a pass completed: every copy has a row or an intent
        rows = {c.source_id: c for c in state.copies(pair, self.source)}
        intents = state.import_intents(pair, self.source)
        claims = None
        if intents or (not complete and not self.created):
            claims = Claims(self._target_entries().values(), (r.target_id for r in rows.values()))
        settled = Settled((), (), frozenset())
        if intents and claims is not None:
            settled = settle_intents(intents, claims)
            state.resolve_imports(pair, self.source, settled.done, settled.dropped)
            self._count_landed(intents, settled)
            rows.update((c.source_id, c) for c in settled.done)
        changes, whole = self._changes(token)
        actions = plan_entries(
            changes.changed,
            changes.removed,
            rows,
            None if complete else claims,
            whole=whole,
            unrecognisable=settled.unrecognisable,
        )
        work = self._settle_quick(actions)
        for start in range(0, len(work), EXPORT_CHUNK):
            if ctx.stopped():
                break
            self._chunk(work[start : start + EXPORT_CHUNK])
        state.set_mailbox_failures(pair, self.source, self.failures)
        if not self.failures and not ctx.stopped():
            state.save_folder_state(
                pair, MailboxFolderState(self.source, self.target, changes.token)
            )

    def _count_landed(self, intents: Sequence[ImportIntent], settled: Settled) -> None:
        """Imports of an interrupted pass that landed: copied or updated, though unanswered."""
        modes = {i.source_id: i.mode for i in intents}
        for copy in settled.done:
            self._landed(copy.source_id, update=modes[copy.source_id] is Mode.UPDATE)

    def _landed(self, source_id: str, *, update: bool) -> None:
        self.ctx.wrote(source_id)
        self.ctx.summary.count(self.plan.workload, "updated" if update else "copied")

    def publish(self) -> None:
        """The last attempt's counts, failures and doubts into the summary."""
        summary, workload = self.ctx.summary, self.plan.workload
        for name, n in self.tally.items():
            summary.count(workload, name, n)
        for problem in self.problems:
            summary.fail(workload, problem)
        summary.section(workload).not_recognisable.extend(self.unknown)

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

    def _changes(self, token: str | None) -> tuple[EntryChanges, bool]:
        if token is not None:
            try:
                return self.ctx.source.entries(self.source, token), False
            except SyncTokenInvalidError:
                log.info("folder.token_refused", folder=self.plan.path)
        return self.ctx.source.entries(self.source, None), True

    def _target_entries(self) -> dict[str, MailboxEntry]:
        with self._lock:
            if self._listing is None:
                listed = self.ctx.target.entries(self.target, None).changed
                self._listing = {e.id: e for e in listed}
            return self._listing

    def _settle_quick(self, actions: Sequence[ItemAction]) -> list[ItemAction]:
        """Count and record what needs no request; the creates and updates are returned."""
        found: list[Copy] = []
        gone: list[str] = []
        work: list[ItemAction] = []
        for action in actions:
            if action.step is Step.REMOVED_ON_SOURCE:
                gone.append(action.source_id)
                continue
            self.seen += 1
            if action.step is Step.UNCHANGED:
                if not self.ctx.written_before(action.source_id):
                    self.tally["unchanged"] += 1
            elif action.step is Step.RECOGNISED and action.copy is not None:
                found.append(action.copy)
            else:
                work.append(action)
        state, pair = self.ctx.state, self.ctx.pair
        state.record_copies(pair, self.source, found)
        state.forget_copies(pair, self.source, gone)
        self.tally["seen"] += self.seen
        self.tally["already_there"] += len(found)
        self.tally["removed_on_source_kept"] += len(gone)
        return work

    # -- a chunk -----------------------------------------------------------------------------------
    def _chunk(self, actions: Sequence[ItemAction]) -> None:
        uploads = self._export(actions)
        lost: ConnectError | None = None
        while uploads:
            self.ctx.state.add_import_intents(
                self.ctx.pair, self.source, [u.intent(self.target) for u in uploads]
            )
            with ThreadPoolExecutor(max_workers=max(1, self.ctx.options.concurrency)) as pool:
                outcomes = list(pool.map(self._import, uploads))
            again, error = self._resolve(uploads, outcomes)
            lost = lost or error
            uploads = again
        if lost is not None:
            raise lost

    def _export(self, actions: Sequence[ItemAction]) -> list[Upload]:
        limit = self.ctx.options.max_item_size
        wanted: list[ItemAction] = []
        for action in actions:
            size = action.entry.size if action.entry is not None else None
            if size is not None and size > limit:
                self._fail(action.source_id, f"{size} bytes: over the limit of {limit} bytes")
            else:
                wanted.append(action)
        if not wanted:
            return []
        got: dict[str, Exported | ItemError] = {}
        for item in self.ctx.source.export([a.source_id for a in wanted]):
            got[item.href if isinstance(item, ItemError) else item.id] = item
        uploads = []
        for action in wanted:
            upload = self._upload(action, got.get(action.source_id), limit)
            if upload is not None:
                uploads.append(upload)
        return uploads

    def _upload(
        self, action: ItemAction, got: Exported | ItemError | None, limit: int
    ) -> Upload | None:
        if isinstance(got, ItemError):
            self._fail(action.source_id, f"export failed: {got.reason}")
            return None
        if got is None or action.entry is None:
            self._fail(action.source_id, "the source did not export it")
            return None
        data = got.data
        if len(data) > limit:
            self._fail(action.source_id, f"{len(data)} bytes: over the limit of {limit} bytes")
            return None
        if action.note is not None:
            self.unknown.append(EntryProblem(self.plan.path, action.source_id, action.note))
        replace = action.copy if action.step is Step.UPDATE else None
        return Upload(action.entry, got.change_key, data, replace)

    def _resolve(
        self, uploads: Sequence[Upload], outcomes: Sequence[Outcome]
    ) -> tuple[list[Upload], ConnectError | None]:
        """Landed ones recorded and failed ones dropped, in one transaction; the uploads to
        create again, and the first lost answer."""
        done: list[Copy] = []
        dropped: list[str] = []
        again: list[Upload] = []
        lost: ConnectError | None = None
        for upload, outcome in zip(uploads, outcomes, strict=True):
            if isinstance(outcome, Copy):
                done.append(outcome)
                self._landed(outcome.source_id, update=upload.replace is not None)
            elif isinstance(outcome, Recreate):
                again.append(Upload(upload.entry, upload.change_key, upload.data))
            elif isinstance(outcome, ConnectError):
                lost = lost or outcome  # the intent stays: settled by the next pass
            else:
                dropped.append(upload.entry.id)
                self._fail(upload.entry.id, outcome)
        self.ctx.state.resolve_imports(self.ctx.pair, self.source, done, dropped)
        return again, lost

    def _fail(self, source_id: str, reason: str) -> None:
        self.failures[source_id] = reason
        self.problems.append(EntryProblem(self.plan.path, source_id, reason))
        log.warning("item.failed", folder=self.plan.path, item=source_id, reason=reason)

    # -- one import --------------------------------------------------------------------------------
    def _import(self, upload: Upload) -> Outcome:
        replace = upload.replace
        target = (replace.target_id, replace.target_change_key) if replace else None
        throttled = 0
        stale_retried = False
        while True:
            try:
                got = self.ctx.target.import_item(self.target, upload.data, target)
            except ThrottledError as exc:
                throttled += 1
                if throttled > MAX_THROTTLED:
                    return f"the target kept answering 'slow down': {exc}"
                wait = self.ctx.options.retry.wait(min(throttled, 6), exc.wait)
                self.ctx.waited(wait)
                time.sleep(wait)
                continue
            except ConnectError as exc:
                return exc
            except ItemConflictError as exc:
                if target is None or stale_retried:
                    return f"refused by the target: {exc.reason}"
                stale_retried = True
                current = self._target_entries().get(target[0])
                if current is None:
                    return Recreate()
                target = (current.id, current.change_key)
                continue
            except ItemError as exc:
                return f"refused by the target: {exc.reason}"
            entry = upload.entry
            return Copy(entry.id, upload.change_key, got.id, got.change_key, entry.key)
