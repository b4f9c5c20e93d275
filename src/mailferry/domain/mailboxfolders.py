"""Where a Microsoft 365 mailbox's folders go on the target (``map_folders``): the source tree
walked parents first, each folder of a moved workload placed in the target folder it matches (by
well-known name, then by name under its parent's place) or created under a free name; the system
folders (outbox, search folders, sync issues) and what is under them left out, with why."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mailferry.domain.mailboxmodel import MailboxFolder, workload_of
from mailferry.domain.workloads import Workload

# Well-known folders never copied, with why; their sub-folders go with them.
SYSTEM_FOLDERS = {
    "outbox": "the outbox: an item there would be submitted on the target",
    "searchfolders": "search folders: their items live in other folders",
    "syncissues": "sync issues: the source client's logs, not the user's items",
    "conflicts": "sync issues: the source client's logs, not the user's items",
    "localfailures": "sync issues: the source client's logs, not the user's items",
    "serverfailures": "sync issues: the source client's logs, not the user's items",
}


@dataclass(frozen=True)
class FolderPlan:
    """Where one source folder's items go: an existing target folder, or one to create."""

    source: MailboxFolder
    path: str  # the source folder's path ("Inbox/Projects"), for reports
    workload: Workload
    target: str | None  # the existing target folder's id; None: create it
    under: str | None = None  # create: the source folder whose target is the parent (None: root)
    name: str = ""  # create: its name
    note: str | None = None  # why it went elsewhere or under another name


@dataclass(frozen=True)
class SkippedFolder:
    source: MailboxFolder
    path: str
    reason: str


@dataclass(frozen=True)
class FolderMap:
    plans: tuple[FolderPlan, ...]
    skipped: tuple[SkippedFolder, ...]  # reported: no workload carries them, or never copied


class _Mapper:
    def __init__(self, target: Sequence[MailboxFolder], recorded: Mapping[str, str]) -> None:
        self.by_id = {f.id: f for f in target}
        self.well_known = {f.well_known: f for f in target if f.well_known}
        self.recorded = recorded
        self.claimed: set[str] = set()
        self.names: dict[str | None, dict[str, MailboxFolder]] = {}
        for folder in target:
            self.names.setdefault(folder.parent_id, {})[folder.name.casefold()] = folder
        # source id -> the target id it is in (None: the root), or "" while it is to be created
        self.placed: dict[str | None, str | None] = {None: None}
        self.pending: dict[str | None, set[str]] = {}  # names to be created, by parent source id

    def existing(self, folder: MailboxFolder) -> MailboxFolder | None:
        recorded = self.by_id.get(self.recorded.get(folder.id, ""))
        if recorded is not None:
            return recorded
        known = self.well_known.get(folder.well_known) if folder.well_known else None
        return known if known is not None and known.id not in self.claimed else None

    def named(self, under: str | None, name: str) -> MailboxFolder | None:
        parent = self.placed.get(under)
        if parent == "":
            return None  # the parent is to be created: so is this one
        found = self.names.get(parent, {}).get(name.casefold())
        return None if found is None or found.id in self.claimed else found

    def free_name(self, under: str | None, name: str) -> str:
        """``name``, or ``name (2)``... when the parent already holds that name (any class)."""
        parent = self.placed.get(under)
        taken = set(self.names.get(parent, {})) if parent != "" else set()
        taken |= self.pending.setdefault(under, set())
        counter, free = 1, name
        while free.casefold() in taken:
            counter += 1
            free = f"{name} ({counter})"
        self.pending[under].add(free.casefold())
        return free


def map_folders(
    source: Sequence[MailboxFolder],
    target: Sequence[MailboxFolder],
    workloads: frozenset[Workload],
    recorded: Mapping[str, str] | None = None,
) -> FolderMap:
    """Every source folder (parents before children, as ``folders()`` lists them) planned or
    skipped. ``recorded``: source folder id -> target folder id of an earlier run."""
    mapper = _Mapper(target, recorded or {})
    paths: dict[str, str] = {}
    anchor: dict[str | None, str | None] = {None: None}  # source id -> nearest planned folder
    system: set[str] = set()
    plans: list[FolderPlan] = []
    skipped: list[SkippedFolder] = []
    for folder in source:
        parent_path = paths.get(folder.parent_id or "")
        path = f"{parent_path}/{folder.name}" if parent_path else folder.name
        paths[folder.id] = path
        anchor[folder.id] = anchor.get(folder.parent_id)
        reason = _skip_reason(folder, system)
        if reason is not None:
            skipped.append(SkippedFolder(folder, path, reason))
            continue
        workload = workload_of(folder.folder_class)
        if workload is None or workload not in workloads:
            continue  # left out: anchor stays the parent's
        plan = _plan_one(mapper, folder, path, workload, anchor[folder.id], paths)
        mapper.placed[folder.id] = plan.target or ""
        if plan.target is not None:
            mapper.claimed.add(plan.target)
        anchor[folder.id] = folder.id
        plans.append(plan)
    return FolderMap(tuple(plans), tuple(skipped))


def _skip_reason(folder: MailboxFolder, system: set[str]) -> str | None:
    if folder.parent_id in system:
        system.add(folder.id)
        return "inside a folder that is never copied"
    if folder.well_known in SYSTEM_FOLDERS:
        system.add(folder.id)
        return SYSTEM_FOLDERS[folder.well_known]
    if workload_of(folder.folder_class) is None:
        return f"folder class {folder.folder_class or '(none)'}: no workload carries it"
    return None


def _plan_one(
    mapper: _Mapper,
    folder: MailboxFolder,
    path: str,
    workload: Workload,
    under: str | None,
    paths: Mapping[str, str],
) -> FolderPlan:
    moved = (
        None
        if under == folder.parent_id
        else f"its parent is not copied: under {paths[under] if under else 'the root'}"
    )
    found = mapper.existing(folder) or mapper.named(under, folder.name)
    if found is not None and workload_of(found.folder_class) is workload:
        return FolderPlan(folder, path, workload, found.id, note=moved)
    name = mapper.free_name(under, folder.name)
    clash = None if name == folder.name else f"the target's {folder.name!r} holds other items"
    note = "; ".join(n for n in (moved, clash) if n) or None
    return FolderPlan(folder, path, workload, None, under, name, note)
