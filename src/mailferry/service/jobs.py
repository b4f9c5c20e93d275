"""Job backends: how a pending mailbox becomes a *job* (one pass over one mailbox) and reaches the
process that runs it. One job body for both (``Scheduler.run_one``, over ``Scheduler._execute``).

In-process (SQLite, the embedded default; also ``serve`` on PostgreSQL without a queue): the
scheduler's own loop claims pending mailboxes and runs them in its thread pool (``dispatch``).

Queued (PostgreSQL): the scheduler of every process only *submits* pending mailboxes to a
``JobQueue`` (procrastinate: ``adapters/queue``), one job per mailbox (a queueing lock keeps one
waiting, a job lock keeps one running); workers run each job with ``run_one``. The queue finds
the jobs of a dead worker (no heartbeat) and runs them again elsewhere: the per-folder state
makes the re-run resume without a duplicate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Protocol

from mailferry.adapters.store.records import MailboxRecord


class JobResult(StrEnum):
    """What ``run_one`` did with a job."""

    DONE = "done"  # the pass ran (whatever its outcome: recorded on the mailbox)
    SKIPPED = "skipped"  # nothing to do: no longer pending, batch stopped or gone, aborted
    BUSY = "busy"  # somebody alive holds the mailbox: run it again later (no retry spent)


# ``run_one(batch, email, should_abort)``: what a queue's worker calls for each job.
RunJob = Callable[[str, str, Callable[[], bool]], JobResult]


class JobControl(Protocol):
    """How `stop` and `delete` reach a batch's jobs wherever they run (the queue's abort)."""

    def abort(self, batch: str) -> int:
        """Cancel the batch's waiting jobs and ask its running ones, on any worker, to stop
        after their burst in flight (freeing their connection slots); how many were reached."""
        ...

    def close(self) -> None: ...


class JobQueue(Protocol):
    def submit(self, mailboxes: Sequence[MailboxRecord]) -> int:
        """Queue a job for each mailbox not queued yet; how many were queued."""
        ...

    def close(self) -> None: ...
