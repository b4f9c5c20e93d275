"""Migrate one whole Microsoft 365 mailbox to another through Graph's mailbox import/export API.

    folders   both mailboxes' folders listed; ``map_folders`` (domain/mailboxplan.py) says where
              each source folder goes: the folder an earlier run mapped, the target's well-known
              folder of the same name, else by name under the mapped parent; missing ones are
              created with the source's class, parents first. Search folders, the outbox, sync
              issues and classes no workload carries are skipped and reported; the folders of a
              workload not chosen are left out.
    items     one ``FolderPass`` per folder (service/graphitems.py): delta token, intents of an
              interrupted run settled, the truth table a page of entries at a time, exports in
              chunks of 20, imports with at most ``concurrency`` in flight, pipelined
              (service/graphimports.py), the state committed after each chunk; the folder's
              scratch lists in the state are dropped when it is done.

    doubts    a copy that may be a second one (a keyless item whose import may have landed,
              created again) is kept in the state when it becomes known; a run that finishes
              (all its folders passed, or stopped on request) reports every doubt kept, of the
              workloads it moves, in its summary (``MailboxSummary.reported``) and does NOT
              forget them: a summary is worth nothing until it reaches the administrator. Its
              caller forgets exactly those (``forget_reported``) once it has delivered the
              summary: the CLI after its output is written and flushed, a batch job after its
              outcome is recorded. A run that ends with an error (or is killed) loses its
              summary, so the doubts of the folders it passed wait for one that finishes; a
              kill between the delivery and the forget leaves them to be reported again by the
              next run that finishes. That is the trade: a doubt reported twice, never zero
              times.

A folder that fails (FolderError) is reported and the run goes on with the next one; a dropped
connection re-runs the folder's pass from its state (``RetryPolicy``), and after its retries ends
the run (the state is consistent: a re-run resumes). A stop request ends the run between chunks.
"""

from __future__ import annotations

import threading
import time

from mailferry.domain.errors import ConnectError, FolderError
from mailferry.domain.mailboxfolders import FolderPlan, map_folders
from mailferry.domain.mailboxmodel import Listing, MailboxFolder
from mailferry.domain.mailboxports import ExchangeMailbox, MailboxStateStore, Metered
from mailferry.domain.mailboxreport import FolderOutcome, MailboxSummary
from mailferry.logs import get_logger
from mailferry.service.graphcontext import GraphContext, GraphSyncOptions, retrying
from mailferry.service.graphitems import FolderPass

log = get_logger("mailferry.graph")


class MailboxSync:
    def __init__(self, ctx: GraphContext) -> None:
        self.ctx = ctx
        self.placed: dict[str | None, str | None] = {None: None}  # source id -> target id

    def run(self) -> MailboxSummary:
        ctx, summary = self.ctx, self.ctx.summary
        sources = retrying(ctx, ctx.source.folders)
        targets = retrying(ctx, ctx.target.folders)
        recorded = {s.source: s.target for s in ctx.state.folder_states(ctx.pair)}
        planned = map_folders(sources, targets, ctx.options.workloads, recorded)
        for skip in planned.skipped:
            summary.folders.append(FolderOutcome(skip.path, None, None, note=skip.reason))
        for plan in planned.plans:
            if ctx.stopped():
                break
            self._folder(plan)
        if ctx.stopped():
            summary.stopped = "stop requested"
        self._report_doubts()
        return summary

    def _report_doubts(self) -> None:
        """The doubts the state keeps into this finishing run's summary, kept in the state until
        the caller has delivered it (``forget_reported``); those of a workload this run does not
        move wait for one that does."""
        ctx = self.ctx
        for doubt in ctx.state.doubts(ctx.pair):
            if doubt.workload in ctx.options.workloads:
                ctx.summary.report(doubt)

    def _folder(self, plan: FolderPlan) -> None:
        summary = self.ctx.summary
        summary.section(plan.workload)
        try:
            target, created = self._target(plan)
        except FolderError as exc:
            summary.folders.append(self._outcome(plan, None, note=f"failed: {exc.reason}"))
            return
        self.placed[plan.source.id] = target.id
        passes: list[FolderPass] = []

        def one_pass() -> None:
            first = not passes
            passes.append(FolderPass(self.ctx, plan, target.id, created=created, first=first))
            passes[-1].run()

        note = plan.note
        try:
            retrying(self.ctx, one_pass)
        except (FolderError, ConnectError) as exc:
            if passes:
                passes[-1].publish()
            reason = exc.reason if isinstance(exc, FolderError) else str(exc)
            note = f"failed: {reason}" + (f"; {note}" if note else "")
            if isinstance(exc, ConnectError):
                summary.folders.append(self._outcome(plan, target.id, created, note=note))
                raise
        else:
            passes[-1].publish()
        finally:
            self.ctx.state.forget_listed(self.ctx.pair, plan.source.id, tuple(Listing))
        seen = passes[-1].seen if passes else 0
        log.info("folder.done", folder=plan.path, target=target.id, items=seen)
        summary.folders.append(self._outcome(plan, target.id, created, seen, note))

    def _target(self, plan: FolderPlan) -> tuple[MailboxFolder, bool]:
        """The target folder (created if it must be), and whether this run created it."""
        if plan.target is not None:
            return MailboxFolder(plan.target, None, plan.name, plan.source.folder_class), False
        if plan.under not in self.placed:
            raise FolderError(plan.path, "its parent folder could not be created")
        parent = self.placed[plan.under]
        cls = plan.source.folder_class
        folder = retrying(self.ctx, lambda: self.ctx.target.create_folder(parent, plan.name, cls))
        log.info("folder.created", folder=plan.path, target=folder.id, name=plan.name)
        return folder, True

    @staticmethod
    def _outcome(
        plan: FolderPlan,
        target: str | None,
        created: bool = False,
        items: int = 0,
        note: str | None = None,
    ) -> FolderOutcome:
        return FolderOutcome(plan.path, target, str(plan.workload), created, items, note)


def sync_mailboxes(
    source: ExchangeMailbox,
    target: ExchangeMailbox,
    state: MailboxStateStore,
    pair: str,
    options: GraphSyncOptions | None = None,
    *,
    stop: threading.Event | None = None,
) -> MailboxSummary:
    """One pass over every folder of ``source`` (of the chosen workloads) into ``target``.
    Raises ``AccountError`` when a side cannot be used (after retries); the state is then
    consistent and a re-run resumes."""
    started = time.monotonic()
    ctx = GraphContext(
        source,
        target,
        state,
        pair,
        options or GraphSyncOptions(),
        MailboxSummary(),
        stop or threading.Event(),
    )
    try:
        return MailboxSync(ctx).run()
    finally:
        for side in (source, target):
            if isinstance(side, Metered):
                ctx.summary.throttle(*side.throttling())
        ctx.summary.seconds = time.monotonic() - started


def forget_reported(state: MailboxStateStore, pair: str, summary: MailboxSummary) -> None:
    """The second phase of reporting doubts: ``summary`` reached the administrator (printed and
    flushed, or recorded as the job's outcome), so the doubts it reported go: only those (by source
    folder and item), the others wait for a summary of their own. Called by whoever
    delivered the summary, never by the run (see the module docstring)."""
    if summary.reported:
        state.forget_doubts(pair, summary.reported)
