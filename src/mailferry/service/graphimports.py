"""The creates and updates of one folder pass, pipelined within Graph's limits.

    export    a chunk of at most 20 ids (exportItems' limit) in one call, on its own thread: the
              next chunk's export runs while this chunk's imports are in flight (the source
              mailbox has its own 4 requests)
    intents   the chunk's intents committed (``add_import_intents``) before its first import,
              with the doubts of the creates that may make a second copy (``ItemAction.note``)
    imports   on a pool of ``concurrency`` workers: the imports of the next chunk queue behind
              this one's, so the target mailbox keeps its 4 requests busy across chunks
    resolve   a chunk's answers into rows in one transaction while the next chunk imports; an
              update whose target copy changed (a stale change key) reads the target's current
              change key once and goes again, one whose copy is gone is created again (each with
              its intent rewritten first)

At most two chunks' data are held (one exported, one importing), whatever the folder's size. An
import whose answer was lost (``ConnectError``) keeps its intent: nothing new is started, what is
in flight is resolved, then the error ends the pass (``retrying`` runs it again, settling that
intent first). Only the pass's thread touches the state; the workers only send.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailferry.domain.errors import ConnectError, ItemConflictError, ItemError, ThrottledError
from mailferry.domain.mailboxmodel import Exported, MailboxEntry
from mailferry.domain.mailboxplan import Copy, ImportIntent, ItemAction, Mode, Step
from mailferry.service.graphcontext import EXPORT_CHUNK, MAX_THROTTLED

if TYPE_CHECKING:
    from mailferry.service.graphitems import FolderPass


@dataclass(frozen=True)
class Upload:
    entry: MailboxEntry
    change_key: str  # the source change key of the exported version
    data: bytes = field(repr=False)
    replace: Copy | None = None  # an update: the row of the copy it replaces
    stale_retried: bool = False  # its target change key was read again once already
    note: str | None = None  # it may make a second copy: the doubt kept with its intent

    def intent(self, folder: str) -> ImportIntent:
        """The size goes along only when the listed entry is the version exported: an item
        changed since it was listed has a size nobody read (None: settled by key alone)."""
        entry = self.entry
        size = entry.size if self.change_key == entry.change_key else None
        if self.replace is None:
            return ImportIntent(
                entry.id, self.change_key, folder, entry.key, Mode.CREATE, size=size
            )
        return ImportIntent(
            entry.id,
            self.change_key,
            folder,
            entry.key,
            Mode.UPDATE,
            self.replace.target_id,
            self.replace.target_change_key,
            size,
        )


class Stale:
    """An update refused for its change key: the target copy changed since it was copied."""


Outcome = Copy | str | ConnectError | Stale | BaseException  # landed, failed (why), lost, ...
Got = Exported | ItemError | None


@dataclass
class Batch:
    uploads: list[Upload]
    futures: list[Future[Outcome]]


class Imports:
    """``feed(actions)`` as the pass plans them; ``close()`` waits for what is in flight."""

    def __init__(self, folder: FolderPass) -> None:
        self.folder = folder
        self.ctx = folder.ctx
        self._export_pool = ThreadPoolExecutor(1, thread_name_prefix="graph-export")
        workers = max(1, self.ctx.options.concurrency)
        self._import_pool = ThreadPoolExecutor(workers, thread_name_prefix="graph-import")
        self._exporting: collections.deque[Future[list[tuple[ItemAction, Got]]]] = (
            collections.deque()
        )
        self._importing: collections.deque[Batch] = collections.deque()
        self.lost: ConnectError | None = None
        self._error: BaseException | None = None

    def feed(self, actions: Sequence[ItemAction]) -> None:
        for start in range(0, len(actions), EXPORT_CHUNK):
            if self.ctx.stopped() or self.lost is not None:
                return
            wanted = self._within_limit(actions[start : start + EXPORT_CHUNK])
            if wanted:
                self._exporting.append(self._export_pool.submit(self._export, wanted))
            self._advance(exporting=1, importing=1)

    def close(self) -> None:
        """Every chunk exported is imported (unless an answer was lost or a stop requested), and
        every import is resolved; then the first unexpected error of a worker is raised."""
        try:
            self._advance(exporting=0, importing=0)
        finally:
            self._export_pool.shutdown(wait=True, cancel_futures=True)
            self._import_pool.shutdown(wait=True)
        if self._error is not None:
            raise self._error

    def _advance(self, *, exporting: int, importing: int) -> None:
        while len(self._exporting) > exporting:
            self._start(self._exporting.popleft().result())
        while len(self._importing) > importing:
            self._resolve(self._importing.popleft())

    # -- export ------------------------------------------------------------------------------------
    def _within_limit(self, actions: Sequence[ItemAction]) -> list[ItemAction]:
        limit = self.ctx.options.max_item_size
        wanted = []
        for action in actions:
            size = action.entry.size if action.entry is not None else None
            if size is not None and size > limit:
                self.folder.fail(action.source_id, f"{size} bytes: over the limit of {limit} bytes")
            else:
                wanted.append(action)
        return wanted

    def _export(self, actions: list[ItemAction]) -> list[tuple[ItemAction, Got]]:
        """On the export thread: the source's answer for each action (no state touched)."""
        got: dict[str, Exported | ItemError] = {}
        for item in self.ctx.source.export([a.source_id for a in actions]):
            got[item.href if isinstance(item, ItemError) else item.id] = item
        return [(action, got.get(action.source_id)) for action in actions]

    def _upload(self, action: ItemAction, got: Got) -> Upload | None:
        limit = self.ctx.options.max_item_size
        if isinstance(got, ItemError):
            self.folder.fail(action.source_id, f"export failed: {got.reason}")
            return None
        if got is None or action.entry is None:
            self.folder.fail(action.source_id, "the source did not export it")
            return None
        if len(got.data) > limit:
            self.folder.fail(
                action.source_id, f"{len(got.data)} bytes: over the limit of {limit} bytes"
            )
            return None
        replace = action.copy if action.step is Step.UPDATE else None
        return Upload(action.entry, got.change_key, got.data, replace, note=action.note)

    # -- intents, imports, answers -----------------------------------------------------------------
    def _start(self, exported: list[tuple[ItemAction, Got]]) -> None:
        uploads = [u for u in (self._upload(a, got) for a, got in exported) if u is not None]
        self._submit(uploads)

    def _submit(self, uploads: list[Upload]) -> None:
        """Intents (and doubts) committed, then the imports queued (none after a lost answer or
        a stop). A doubt is kept whatever becomes of the import: once sent, it may land."""
        if not uploads or self.lost is not None or self.ctx.stopped():
            return
        folder = self.folder
        intents = [u.intent(folder.target) for u in uploads]
        doubts = [folder.doubt(u.entry.id, u.note) for u in uploads if u.note is not None]
        self.ctx.state.add_import_intents(self.ctx.pair, folder.source, intents, doubts)
        futures = [self._import_pool.submit(self._import, u) for u in uploads]
        self._importing.append(Batch(uploads, futures))

    def _resolve(self, batch: Batch) -> None:
        """Landed ones recorded and failed ones dropped, in one transaction; stale and recreated
        ones sent again; a lost answer's intent kept."""
        done: list[Copy] = []
        dropped: list[str] = []
        again: list[Upload] = []
        for upload, future in zip(batch.uploads, batch.futures, strict=True):
            outcome = _result(future)
            if isinstance(outcome, Copy):
                done.append(outcome)
                self.folder.landed(outcome.source_id, update=upload.replace is not None)
            elif isinstance(outcome, Stale):
                again.append(self._fresh(upload))
            elif isinstance(outcome, ConnectError):
                self.lost = self.lost or outcome  # the intent stays: settled by the next pass
            elif isinstance(outcome, str):
                dropped.append(upload.entry.id)
                self.folder.fail(upload.entry.id, outcome)
            else:
                self._error = self._error or outcome  # the intent stays
        self.ctx.state.resolve_imports(self.ctx.pair, self.folder.source, done, dropped)
        self._submit(again)

    def _fresh(self, upload: Upload) -> Upload:
        """A stale update again: with the target copy's current change key, or as a new item
        when the copy is gone (deleted on the target since it was copied)."""
        replace = upload.replace
        current = self.folder.current(replace.target_id) if replace is not None else None
        if replace is None or current is None:
            return Upload(upload.entry, upload.change_key, upload.data)
        fresh = dataclasses.replace(replace, target_change_key=current.change_key)
        return dataclasses.replace(upload, replace=fresh, stale_retried=True)

    def _import(self, upload: Upload) -> Outcome:
        """On a worker: one import, 'slow down' answers waited out."""
        replace = upload.replace
        target = (replace.target_id, replace.target_change_key) if replace else None
        throttled = 0
        while True:
            try:
                got = self.ctx.target.import_item(self.folder.target, upload.data, target)
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
                if target is None or upload.stale_retried:
                    return f"refused by the target: {exc.reason}"
                return Stale()
            except ItemError as exc:
                return f"refused by the target: {exc.reason}"
            entry = upload.entry
            return Copy(entry.id, upload.change_key, got.id, got.change_key, entry.key)


def _result(future: Future[Outcome]) -> Outcome:
    """The worker's outcome, or what it raised (raised by ``close`` once all is resolved)."""
    error = future.exception()
    return error if error is not None else future.result()
