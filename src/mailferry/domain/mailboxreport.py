"""The outcome of one Microsoft 365 mailbox pass; ``as_json`` is the documented ``--json`` shape.

Mirrors ``davreport.DavSummary``, with one section per workload: every source entry seen ends in
exactly one of copied, updated, already there (recognised on the target by its key), unchanged
or failed (with its reason); an item removed on the source since the last pass is counted as
kept on the target. Throttling is the mailbox's (Graph limits a mailbox, not a workload), so it
is counted once, beside the sections.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from mailferry.domain.workloads import ALL, Workload


@dataclass(frozen=True)
class EntryProblem:
    """One source entry that was not copied, or was copied with a doubt, and why."""

    folder: str  # the source folder's path
    item: str  # the source item's id
    reason: str

    def as_json(self) -> dict[str, object]:
        return {"folder": self.folder, "item": self.item, "reason": self.reason}


@dataclass(frozen=True)
class Doubt:
    """A copy that may be a second one (``not_recognisable``), kept in the state from the moment
    it is known until a run that finishes has reported it: the run that found it may not finish."""

    source: str  # the source folder's id
    workload: Workload
    problem: EntryProblem  # the folder's path then, the source item's id, why


@dataclass
class WorkloadReport:
    seen: int = 0  # source entries looked at (new, changed, or unchanged in a whole listing)
    copied: int = 0
    updated: int = 0
    already_there: int = 0  # recognised on the target by key (after a lost state or a crash)
    unchanged: int = 0
    removed_on_source_kept: int = 0
    failures: list[EntryProblem] = field(default_factory=list)
    not_recognisable: list[EntryProblem] = field(default_factory=list)  # copied, maybe twice

    def as_json(self) -> dict[str, object]:
        return {
            "seen": self.seen,
            "copied": self.copied,
            "updated": self.updated,
            "already_there": self.already_there,
            "unchanged": self.unchanged,
            "removed_on_source_kept": self.removed_on_source_kept,
            "failed": len(self.failures),
            "failures": [p.as_json() for p in self.failures],
            "not_recognisable": [p.as_json() for p in self.not_recognisable],
        }


@dataclass(frozen=True)
class FolderOutcome:
    source: str  # the source folder's path
    target: str | None  # the target folder's id (None: nowhere, see note)
    workload: str | None  # None: skipped (no workload carries its class, or never copied)
    created: bool = False
    items: int = 0  # source entries seen in this pass
    note: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "target": self.target,
            "workload": self.workload,
            "created": self.created,
            "items": self.items,
            "note": self.note,
        }


@dataclass
class MailboxSummary:
    workloads: dict[Workload, WorkloadReport] = field(default_factory=dict)
    folders: list[FolderOutcome] = field(default_factory=list)
    throttled: int = 0  # 429/503 answers waited out (both sides' sessions, and the service's)
    waited: float = 0.0  # seconds spent waiting on them
    retries: int = 0  # folder passes resumed after a dropped connection
    stopped: str | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    # The state's doubts this summary reports (under not_recognisable): still kept in the state
    # until whoever delivers the summary says it was delivered (``graphsync.forget_reported``).
    reported: list[Doubt] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def section(self, workload: Workload) -> WorkloadReport:
        with self._lock:
            return self.workloads.setdefault(workload, WorkloadReport())

    def count(self, workload: Workload, name: str, n: int = 1) -> None:
        """Add ``n`` to one counter (``copied``, ``updated``, ...): safe from several imports."""
        report = self.section(workload)
        with self._lock:
            setattr(report, name, getattr(report, name) + n)

    def fail(self, workload: Workload, problem: EntryProblem) -> None:
        report = self.section(workload)
        with self._lock:
            report.failures.append(problem)

    def doubt(self, workload: Workload, problem: EntryProblem) -> None:
        """A copy that may be a second one (``not_recognisable``), once per item."""
        report = self.section(workload)
        with self._lock:
            if all(p.item != problem.item for p in report.not_recognisable):
                report.not_recognisable.append(problem)

    def report(self, doubt: Doubt) -> None:
        """A doubt the state keeps, reported here; forgotten only once this summary is delivered."""
        self.doubt(doubt.workload, doubt.problem)
        with self._lock:
            self.reported.append(doubt)

    def throttle(self, answers: int, seconds: float) -> None:
        with self._lock:
            self.throttled += answers
            self.waited += seconds

    @property
    def items_failed(self) -> int:
        return sum(len(r.failures) for r in self.workloads.values())

    @property
    def failed(self) -> bool:
        """Anything an administrator must act on: a failed item or a folder that failed."""
        return bool(self.items_failed) or any(
            (f.note or "").startswith("failed") for f in self.folders
        )

    def as_json(self) -> dict[str, object]:
        return {
            "workloads": {str(w): self.workloads[w].as_json() for w in ALL if w in self.workloads},
            "folders": [f.as_json() for f in self.folders],
            "items_failed": self.items_failed,
            "throttled": self.throttled,
            "waited_seconds": round(self.waited, 3),
            "retries": self.retries,
            "stopped": self.stopped,
            "seconds": round(self.seconds, 3),
            "warnings": list(self.warnings),
        }
