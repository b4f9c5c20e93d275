"""One big folder's first pass copied over several sessions at once.

A run shares folders out over ``--connections`` lanes; an account whose mail is one big folder
(a shared mailbox, an archive, a ticket inbox of a million messages) left all but one idle, and one
target session stores one message at a time: on Dovecot the target's IMAP process, not mailferry,
set the pace. Here the folder's windows (``windows.SharedSpans``) are handed out to the run's lane
and to helper lanes opened for this pass, each listing, planning and copying its windows on its
own source and target sessions, within the same connection cap.

Why the guarantees hold:
- the pass was marked STARTED by the run's lane before any window is handed out, and only that
  lane writes the checkpoint that completes it, once every lane has ended;
- every lane commits its intents before its APPENDs, as one lane does. An intent's UIDNEXT is a
  lower bound of its own APPEND's UID whichever session stored the messages before (UIDs only
  grow), and a crash is settled by identity, each target message used once (planning.py);
- windows are disjoint ranges of source UIDs, so no two lanes plan or record the same message;
- a lane that fails (a dropped connection, a full target, a stop) ends the hand-out: the others
  finish the window they have, settle what they have in flight, and the failure is raised on the
  run's lane as if it had happened there: the run reconnects and plans the folder again from the
  state, as it does for one lane.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from dataclasses import dataclass, field

from mailferry.domain.errors import MailferryError
from mailferry.domain.model import Summary
from mailferry.domain.ports import MailAccount
from mailferry.logs import get_logger
from mailferry.service.copying import FolderCopy
from mailferry.service.folderwork import FolderWork
from mailferry.service.planning import FolderPlanner

log = get_logger("mailferry.lanes")
MIN_WINDOWS = 2  # windows left after the first, for a helper lane to be worth its login


@dataclass
class Helper:
    """A lane opened for one folder pass: its sessions, the planner on them, its copy."""

    source: MailAccount
    target: MailAccount
    planner: FolderPlanner
    copy: FolderCopy
    summary: Summary
    error: BaseException | None = field(default=None, init=False)

    def close(self) -> None:
        for account in (self.source, self.target):
            with contextlib.suppress(MailferryError, OSError):
                account.close()


def helpers_wanted(work: FolderWork, free: int) -> int:
    """How many helper lanes a pass can use: one per window left, within ``free`` sessions."""
    if work.spans is None or free < 1:
        return 0
    left = work.spans.left
    return min(free, left) if left >= MIN_WINDOWS else 0


def copy_over_lanes(work: FolderWork, copy: FolderCopy, helpers: list[Helper]) -> None:
    """Copy ``work`` on this thread (``copy``) and on each helper's, then merge the helpers'
    results into ``copy`` and their summaries into its summary. The first failure of any lane
    is raised, once every lane has stopped."""
    threads = [_start(work, helper) for helper in helpers]
    try:
        copy.copy_parts(work, work.parts())
    except BaseException:
        _stop_handing_out(work)
        raise
    finally:
        for thread in threads:
            thread.join()
        for helper in helpers:
            copy.merge(helper.copy)
            copy.summary.absorb(helper.summary)
            helper.close()
    failed = next((h.error for h in helpers if h.error is not None), None)
    if failed is not None:
        raise failed


def _start(work: FolderWork, helper: Helper) -> threading.Thread:
    def run() -> None:
        try:
            helper.copy.copy_parts(work, helper.planner.windows.walk(work))
        except BaseException as exc:  # noqa: BLE001 - raised on the run's lane (copy_over_lanes)
            helper.error = exc
            log.warning("lane.failed", folder=work.mapping.source.name, reason=str(exc))
            _stop_handing_out(work)

    # Each lane logs with the run's context (pair, folder): a copy of it, for its thread.
    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True)
    thread.start()
    return thread


def _stop_handing_out(work: FolderWork) -> None:
    if work.spans is not None:
        work.spans.close()
