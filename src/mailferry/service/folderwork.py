"""What one folder pass will do: the plan ``planning.py`` makes and ``copying.py`` carries out,
whole, or (a streamed pass) window by window as the copy goes (``windows.py``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailferry.domain.folders import FolderMapping
from mailferry.domain.model import FolderStatus, MessageMeta
from mailferry.domain.plan import Choice, FlagUpdate

if TYPE_CHECKING:
    from mailferry.service.windows import SharedSpans


@dataclass
class FolderWork:
    """What one folder pass will do (the plan), and what --dry-run prints."""

    mapping: FolderMapping
    source_status: FolderStatus
    target_status: (
        FolderStatus | None
    )  # None in a dry run when the target folder does not exist yet
    copy: list[MessageMeta] = field(default_factory=list)
    updates: list[FlagUpdate] = field(default_factory=list)
    existing: int = 0
    skipped_deleted: int = 0
    skipped_filtered: int = 0
    elsewhere: int = 0  # left out: a copy from another label folder stands for them
    # Appends an interrupted run or pass left unanswered, found landed by planning: copies that
    # nothing has counted yet, counted as copied by this run (their bytes too).
    settled: int = 0
    settled_bytes: int = 0
    unchanged: bool = False  # the run's snapshot showed nothing to do: no checkpoint to write
    # A streamed pass (windows.py): the windows, each a FolderWork of its own, planned one by one
    # as the copy goes; their counts are added to this one as they are handed out (``parts``).
    windows: Iterator[FolderWork] | None = None
    expected: int = 0  # streamed: messages to copy, exact for one window, else estimated (STATUS)
    expected_bytes: int = 0
    listed: int = 0  # streamed: source messages the windows handed out so far have listed
    planned: int = 0  # streamed: messages those windows chose to copy
    spans: SharedSpans | None = None  # streamed: the windows not planned yet, for any lane
    # streamed: a first pass into a target folder that held nothing (no match, no rows): no
    # window has a copy to carry flags to, so none needs the target's PERMANENTFLAGS.
    into_empty: bool = False
    # A dry run's streamed pass, its windows counted as they were planned and let go: the totals
    # below stand for ``copy`` and ``updates``, which stay empty (``count_windows``).
    counted: bool = False
    counted_bytes: int = 0
    counted_updates: int = 0
    _counting: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    @property
    def copy_bytes(self) -> int:
        return sum(m.size for m in self.copy)

    @property
    def streamed(self) -> bool:
        return self.windows is not None

    def parts(self) -> Iterator[FolderWork]:
        """What the copy phase works through: the windows of a streamed pass, else this plan."""
        if self.windows is None:
            yield self
        else:
            yield from self.windows

    def window(self, choice: Choice, updates: list[FlagUpdate], *, existing: int) -> FolderWork:
        """One window of this (streamed) pass."""
        return FolderWork(
            self.mapping,
            self.source_status,
            self.target_status,
            copy=choice.copy,
            updates=updates,
            existing=existing,
            skipped_deleted=len(choice.skipped_deleted),
            skipped_filtered=len(choice.skipped_filtered),
        )

    def absorb(self, part: FolderWork, *, listed: int) -> None:
        """Count a window of this pass as it is handed out."""
        self.existing += part.existing
        self.skipped_deleted += part.skipped_deleted
        self.skipped_filtered += part.skipped_filtered
        self.elsewhere += part.elsewhere
        self.listed += listed
        self.planned += len(part.copy)

    def count_windows(self) -> FolderWork:
        """This streamed pass's windows planned one by one and counted, none kept: what a dry
        run reports of a folder, in memory that does not grow with it."""
        for part in self.parts():  # ``absorb`` counts the rest as each window is handed out
            self.counted_bytes += part.copy_bytes
            self.counted_updates += len(part.updates)
        self.windows, self.counted = None, True
        return self

    def totals(self) -> tuple[int, int, int]:
        """(messages to copy, their bytes, flag updates): kept, or counted by a dry run."""
        if self.counted:
            return self.planned, self.counted_bytes, self.counted_updates
        return len(self.copy), self.copy_bytes, len(self.updates)

    def left(self, done: int) -> int:
        """Messages not copied yet when the pass stops after ``done`` of them (copied or failed):
        a streamed pass counts the windows not planned yet by STATUS, as skipped none of them."""
        if self.windows is None:
            return len(self.copy) - done
        return self.planned - done + max(self.source_status.exists - self.listed, 0)
