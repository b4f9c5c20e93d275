"""``verify`` for Microsoft 365 mailboxes: every source entry has its copy, found by the state
(its target item still there) or by key, and that copy is of the source's latest version.

Each source folder is compared with the target folder it maps to (the state's mapping when there
is one, else the one a sync would make). Counts are shown per folder; they may differ on purpose
(an item removed on the source is kept on the target), so only a missing or outdated copy makes
the verification fail. Nothing is exported: listings only, with their change keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailferry.domain.mailboxfolders import FolderPlan, map_folders
from mailferry.domain.mailboxmodel import gather
from mailferry.domain.mailboxplan import Claims
from mailferry.domain.mailboxports import ExchangeMailbox, MailboxStateStore
from mailferry.service.graphcontext import GraphSyncOptions

SHOWN = 20  # ids listed per folder and kind of difference; the rest counted


@dataclass
class FolderCheck:
    source: str  # the source folder's path
    target: str | None  # the target folder's id (None: not there)
    source_count: int = 0
    target_count: int = 0
    missing: list[str] = field(default_factory=list)  # source ids without a copy
    outdated: list[str] = field(default_factory=list)  # copied, changed on the source since
    more: int = 0  # differences beyond those listed

    def differs(self, kind: list[str], source_id: str) -> None:
        if len(kind) < SHOWN:
            kind.append(source_id)
        else:
            self.more += 1

    @property
    def ok(self) -> bool:
        return not (self.missing or self.outdated or self.more)

    def as_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "target": self.target,
            "source_count": self.source_count,
            "target_count": self.target_count,
            "missing": self.missing,
            "outdated": self.outdated,
            "more": self.more,
        }


@dataclass
class MailboxVerification:
    folders: list[FolderCheck] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path: reason"

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.folders)

    def as_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "folders": [f.as_json() for f in self.folders],
            "skipped": list(self.skipped),
        }


def verify_mailboxes(
    source: ExchangeMailbox,
    target: ExchangeMailbox,
    state: MailboxStateStore,
    pair: str,
    options: GraphSyncOptions | None = None,
) -> MailboxVerification:
    """Compare every chosen source folder with its target folder; reads, never writes."""
    options = options or GraphSyncOptions()
    recorded = {s.source: s.target for s in state.folder_states(pair)}
    planned = map_folders(source.folders(), target.folders(), options.workloads, recorded)
    report = MailboxVerification(skipped=[f"{s.path}: {s.reason}" for s in planned.skipped])
    for plan in planned.plans:
        report.folders.append(_check(source, target, state, pair, plan, recorded))
    return report


def _check(
    source: ExchangeMailbox,
    target: ExchangeMailbox,
    state: MailboxStateStore,
    pair: str,
    plan: FolderPlan,
    recorded: dict[str, str],
) -> FolderCheck:
    entries = gather(source.entries(plan.source.id, None)).changed
    check = FolderCheck(plan.path, plan.target, len(entries))
    if plan.target is None:
        for entry in entries:
            check.differs(check.missing, entry.id)
        return check
    copies = gather(target.entries(plan.target, None)).changed
    check.target_count = len(copies)
    there = {c.id for c in copies}
    rows = {}
    if recorded.get(plan.source.id) == plan.target:
        rows = {r.source_id: r for r in state.copies(pair, plan.source.id) if r.target_id in there}
    claims = Claims(copies, (r.target_id for r in rows.values()))
    for entry in entries:
        row = rows.get(entry.id)
        if row is not None:
            if row.source_change_key != entry.change_key:
                check.differs(check.outdated, entry.id)
        elif claims.claim(entry.key) is None:
            check.differs(check.missing, entry.id)
    return check
