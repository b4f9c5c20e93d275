"""What people see on a terminal: live progress, the plan, the summary, verify's differences."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from mailferry.cli.console import err, out
from mailferry.domain.model import Summary
from mailferry.service.folderwork import FolderWork
from mailferry.service.progress import NoProgress
from mailferry.service.progress import Progress as ProgressPort
from mailferry.service.verify import VerifyReport

if TYPE_CHECKING:  # rich is loaded when something is shown on a terminal (cli/console.py)
    from rich.progress import Progress, Task, TaskID


class RichProgress:
    """A run bar (bytes, rate, ETA over what is planned so far) and one bar per folder in flight.

    Called from several lanes at once with --connections: every update goes through one lock.
    """

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._lock = threading.Lock()
        self._folders: dict[str, TaskID] = {}
        self._started = time.monotonic()
        self._messages = 0
        self._run = progress.add_task("run", total=0, detail="starting")

    def folder_started(self, source: str, target: str, messages: int, nbytes: int) -> None:
        label = source if source == target else f"{source} → {target}"
        with self._lock:
            old = self._folders.pop(source, None)
            if old is not None:  # a retried folder starts again
                self._progress.remove_task(old)
            self._folders[source] = self._progress.add_task(
                label, total=max(messages, 1), detail=f"0/{messages} msgs"
            )
            total = (self._task(self._run).total or 0) + nbytes
            self._progress.update(self._run, total=total)
            self._refresh_run()

    def advanced(self, messages: int, nbytes: int) -> None:
        with self._lock:
            self._messages += messages
            self._progress.advance(self._run, nbytes)
            self._refresh_run()

    def folder_advanced(self, source: str, messages: int) -> None:
        with self._lock:
            task = self._folders.get(source)
            if task is not None:
                self._progress.advance(task, messages)
                done = int(self._task(task).completed)
                total = int(self._task(task).total or 0)
                self._progress.update(task, detail=f"{done}/{total} msgs")

    def folder_finished(self, source: str) -> None:
        with self._lock:
            task = self._folders.pop(source, None)
            if task is not None:
                self._progress.remove_task(task)

    def paused(self, reason: str, seconds: float) -> None:
        until = time.strftime("%H:%M", time.localtime(time.time() + seconds))
        self._progress.console.print(f"paused until {until} ({seconds / 60:.0f} min): {reason}")

    def _task(self, task_id: TaskID) -> Task:
        return next(t for t in self._progress.tasks if t.id == task_id)

    def _refresh_run(self) -> None:
        run = self._task(self._run)
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = run.completed / elapsed / 1e6
        detail = (
            f"{run.completed / 1e6:.1f}/{(run.total or 0) / 1e6:.1f} MB  {rate:.1f} MB/s  "
            f"{self._messages} msgs  {self._messages / elapsed:.0f} msg/s"
        )
        self._progress.update(self._run, detail=detail)


@contextlib.contextmanager
def progress_display(*, enabled: bool) -> Iterator[ProgressPort]:
    if not enabled or not sys.stderr.isatty():
        yield NoProgress()
        return
    from rich.progress import (  # noqa: PLC0415 - a terminal's only
        BarColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err.console, transient=True) as progress:
        yield RichProgress(progress)


def print_plan(works: Sequence[FolderWork]) -> None:
    if out.is_terminal:
        _plan_table(works)
    else:  # plain lines for pipes and logs: nothing cut to a terminal's width
        for work in works:
            mapping = work.mapping
            renamed = f" (renamed: {mapping.rename_reason})" if mapping.rename_reason else ""
            count, size, updates = work.totals()
            out.print(
                f"{mapping.source.name} -> {mapping.target}{renamed}: {count} to copy "
                f"({size} bytes), {work.existing} on target, "
                f"{updates} flag updates, "
                f"{work.skipped_deleted + work.skipped_filtered} skipped"
                + (f", {work.elsewhere} copied from another label" if work.elsewhere else ""),
                markup=False,
            )
    totals = [w.totals() for w in works]
    out.print(
        f"{len(works)} folders, {sum(t[0] for t in totals)} messages, "
        f"{sum(t[1] for t in totals)} bytes to copy"
    )


def _plan_table(works: Sequence[FolderWork]) -> None:
    from rich.table import Table  # noqa: PLC0415 - a terminal's only

    table = Table(title="Plan (dry run: nothing is written)", expand=False)
    for column in (
        "source folder",
        "target folder",
        "to copy",
        "bytes",
        "on target",
        "flag updates",
        "skipped",
        "in other labels",
    ):
        text = column in ("source folder", "target folder")
        table.add_column(column, justify="left" if text else "right", overflow="fold")
    for work in works:
        skipped = work.skipped_deleted + work.skipped_filtered
        count, size, updates = work.totals()
        table.add_row(
            work.mapping.source.name,
            work.mapping.target
            + (f"  ({work.mapping.rename_reason})" if work.mapping.rename_reason else ""),
            str(count),
            str(size),
            str(work.existing),
            str(updates),
            str(skipped),
            str(work.elsewhere),
        )
    out.print(table)


def print_summary(summary: Summary) -> None:
    out.print(
        f"{summary.folders} folders: {summary.messages_copied} messages copied "
        f"({summary.bytes_copied} bytes), {summary.messages_skipped_existing} already there, "
        f"{summary.flags_updated} flag updates, {summary.messages_skipped_deleted} deleted skipped, "
        f"{summary.messages_skipped_filtered} outside the date window, "
        f"{summary.messages_failed} failed, in {summary.seconds:.1f} s"
    )
    if summary.messages_skipped_labels:
        out.print(
            f"{summary.messages_skipped_labels} messages seen in several label folders were "
            "copied from the first of them only"
        )
    if summary.cap_pauses:
        out.print(
            f"paused {summary.cap_pauses} times ({summary.paused_seconds / 60:.0f} min) "
            "while a provider's daily cap was in force"
        )
    if summary.messages_remaining:
        by_folder = ", ".join(f"{name!r} {count}" for name, count in summary.remaining.items())
        out.print(
            f"{summary.messages_remaining} messages not copied yet, left for the next run: "
            f"{by_folder}",
            markup=False,
        )
    for source, target, why in summary.renames:
        out.print(f"renamed: {source!r} -> {target!r} ({why})")
    for note in summary.notes:
        out.print(f"note: {note.folder!r}: {note.messages} messages {note.reason}", markup=False)
    for warning in summary.warnings:
        err.print(f"warning: {warning}")
    for failure in summary.failures:
        where = failure.folder if failure.uid is None else f"{failure.folder} uid {failure.uid}"
        err.print(f"FAILED {where}: {failure.reason}")


def print_verify(report: VerifyReport) -> None:
    for line in report.lines():
        out.print(line, markup=False)
    out.print("identical" if report.identical else "DIFFERENCES FOUND")
