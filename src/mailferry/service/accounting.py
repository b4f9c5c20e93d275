"""What became of every source message when a run cannot do all its work, so the report adds up:
copied + remaining + failed + skipped = source, per folder and in total.

Two cases leave messages behind without a per-message failure:
- a target folder that cannot be created: its source folders' messages are *failed*, one report per
  source folder (under the source name) with the count;
- a full target, which stops the run: the messages not yet copied are *remaining*, per folder. A folder
  in progress knows its own; folders the run never reached are planned as a dry run would plan them.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailferry.domain.errors import FolderError, MailferryError
from mailferry.domain.model import Failure, RawName
from mailferry.domain.ports import FolderSetup
from mailferry.logs import get_logger
from mailferry.service.resilience import ServerFaults

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from mailferry.domain.folders import FolderMapping, FolderPlan
    from mailferry.domain.model import Summary
    from mailferry.domain.ports import MailAccount
    from mailferry.service.folderwork import FolderWork
    from mailferry.service.planning import FolderPlanner


log = get_logger("mailferry.migrate")


@dataclass
class Ledger:
    """Shared by the lanes of one run (set and dict updates are atomic under the GIL)."""

    uncreated: dict[str, str] = field(default_factory=dict)  # target folder -> why CREATE failed
    done: set[str] = field(default_factory=set)  # source folders whose pass ended, or was counted
    full: bool = False  # the target said it is full: the run stops, what is left is counted
    # Messages this run copied, by source folder: a pass tried again after a reconnect finds
    # their rows, and must not count them as "already there" (``count_skips``).
    copied: Counter[str] = field(default_factory=Counter)
    server_faults: ServerFaults = field(default_factory=ServerFaults)  # refusals in a row
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_copied(self, folder: str, count: int) -> None:
        with self._lock:  # lanes of one pass commit at once
            self.copied[folder] += count


def prepare_target(target: MailAccount, plan: FolderPlan, summary: Summary) -> dict[str, str]:
    """CREATE and SUBSCRIBE what the plan needs; returns the folders that could not be created.

    A folder that some source folder goes to is reported at that folder's pass, under the source
    name; a parent that only holds others is reported here, under its target name.
    """
    targeted = {m.target for m in plan.mappings}
    uncreated = _create(target, plan.create)
    for name in plan.create:
        reason = uncreated.get(name)
        if reason is None:
            log.info("folder.created", folder=name)
            continue
        log.warning("folder.not_created", folder=name, reason=reason)
        if name not in targeted:
            summary.failures.append(Failure(name, None, f"cannot create folder: {reason}"))
    wanted = [name for name in plan.subscribe if name not in uncreated]
    for name, reason in _subscribe(target, wanted).items():
        summary.warnings.append(f"cannot subscribe {name!r}: {reason}")
    return uncreated


def _create(target: MailAccount, names: Sequence[str]) -> dict[str, str]:
    """Refusals by name: pipelined where the target can (``FolderSetup``), else one by one."""
    if isinstance(target, FolderSetup):
        return target.create_folders(names) if names else {}
    refused: dict[str, str] = {}
    for name in names:
        try:
            target.create_folder(name)
        except FolderError as exc:
            refused[name] = exc.reason
    return refused


def _subscribe(target: MailAccount, names: Sequence[str]) -> dict[str, str]:
    if isinstance(target, FolderSetup):
        return target.subscribe_folders(names) if names else {}
    refused: dict[str, str] = {}
    for name in names:
        try:
            target.subscribe(name)
        except FolderError as exc:
            refused[name] = exc.reason
    return refused


def count_settled(summary: Summary, ledger: Ledger, folder: str, found: tuple[int, int]) -> None:
    """Count the ``found`` (messages, bytes) of appends an interrupted run or pass left
    unanswered, which planning found landed: copied, and counted by nothing before."""
    messages, nbytes = found
    summary.messages_copied += messages
    summary.bytes_copied += nbytes
    ledger.add_copied(folder, messages)


def count_skips(summary: Summary, work: FolderWork, *, copied_before: int = 0) -> None:
    """Add what planning ``work`` found need not be copied; ``copied_before``: messages of the
    folder this run copied before the pass was planned (counted as copied, not as there)."""
    summary.messages_skipped_existing += max(work.existing - copied_before, 0)
    summary.messages_skipped_deleted += work.skipped_deleted
    summary.messages_skipped_filtered += work.skipped_filtered
    summary.messages_skipped_labels += work.elsewhere


def not_created(
    summary: Summary, mapping: FolderMapping, reason: str, planner: FolderPlanner
) -> None:
    """What a dry plan of ``mapping`` would copy is failed: its target folder is missing. The plan
    gets a label tally of its own, so later label folders do not count these as copied."""
    planner.dry_standing = Counter()
    work = planner.plan(mapping, dry_run=True)
    count = work.totals()[0]
    count_skips(summary, work)
    summary.messages_failed += count
    summary.failures.append(
        Failure(
            mapping.source.name,
            None,
            f"folder {mapping.target!r} could not be created ({reason}): "
            f"{count} messages not copied",
        )
    )


def count_unreached(
    plan: FolderPlan, ledger: Ledger, summary: Summary, planner: Callable[[], FolderPlanner]
) -> None:
    """After a full target: what the folders the run never reached would copy is remaining."""
    for mapping in plan.mappings:
        name = mapping.source.name
        if name in ledger.done:
            continue
        ledger.done.add(name)
        try:
            if mapping.target in ledger.uncreated:
                not_created(summary, mapping, ledger.uncreated[mapping.target], planner())
            else:
                work = planner().plan(mapping, dry_run=True)
                count_skips(summary, work)
                remaining(summary, name, work.totals()[0])
        except MailferryError as exc:
            summary.warnings.append(f"folder {name!r}: messages left not counted: {exc}")


def remaining(summary: Summary, folder: str, count: int) -> None:
    """``count`` messages of source ``folder`` are left for the next run."""
    if count > 0:
        summary.messages_remaining += count
        summary.remaining[folder] = summary.remaining.get(folder, 0) + count


def raw_name_warnings(plan: FolderPlan) -> list[str]:
    """One warning per source folder whose name the server sent outside modified UTF-7."""
    return [
        f"source folder {m.source.name!r} is not named in modified UTF-7 (raw bytes "
        f"{m.source.name.raw!r}): copied to {m.target!r}"
        for m in plan.mappings
        if isinstance(m.source.name, RawName)
    ]
