"""``MailboxStateStore`` in memory, for unit tests and the Hypothesis machine (``lose()``: the
state file is gone). Same semantics as the SQL store (adapters/store/graph_state.py), verified by
the same contract suite."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

from mailferry.domain.errors import StateError
from mailferry.domain.mailboxmodel import Listing, MailboxEntry
from mailferry.domain.mailboxplan import Copy, ImportIntent
from mailferry.domain.mailboxports import MailboxFolderState
from mailferry.domain.mailboxreport import Doubt

Key = tuple[str, str]
ListKey = tuple[str, str, Listing]


class MemoryMailboxStateStore:
    def __init__(self) -> None:
        self.closed = False
        self.lose()

    def lose(self) -> None:
        self._folders: dict[Key, MailboxFolderState] = {}
        self._copies: dict[Key, dict[str, Copy]] = {}
        self._intents: dict[Key, dict[str, ImportIntent]] = {}
        self._failures: dict[Key, dict[str, str]] = {}
        self._listed: dict[ListKey, dict[str, MailboxEntry]] = {}
        self._claimed: dict[Key, set[str]] = {}
        self._doubts: dict[str, dict[Key, Doubt]] = {}  # pair -> (source, source id) -> doubt

    def close(self) -> None:
        self.closed = True

    def _open(self) -> None:
        if self.closed:
            raise StateError("state database (memory) is closed")

    def folder_state(self, pair: str, source: str) -> MailboxFolderState | None:
        self._open()
        return self._folders.get((pair, source))

    def folder_states(self, pair: str) -> list[MailboxFolderState]:
        self._open()
        return sorted((s for (p, _), s in self._folders.items() if p == pair), key=_source)

    def save_folder_state(self, pair: str, state: MailboxFolderState) -> None:
        self._open()
        self._folders[(pair, state.source)] = state

    def forget_folder(self, pair: str, source: str) -> None:
        self._open()
        for table in (self._folders, self._copies, self._intents, self._failures, self._claimed):
            table.pop((pair, source), None)
        self.forget_listed(pair, source, tuple(Listing))

    def copies(self, pair: str, source: str) -> list[Copy]:
        self._open()
        return sorted(self._copies.get((pair, source), {}).values(), key=lambda c: c.source_id)

    def copies_of(self, pair: str, source: str, source_ids: Sequence[str]) -> dict[str, Copy]:
        self._open()
        table = self._copies.get((pair, source), {})
        return {i: table[i] for i in source_ids if i in table}

    def has_copies(self, pair: str, source: str) -> bool:
        self._open()
        return bool(self._copies.get((pair, source)))

    def record_copies(self, pair: str, source: str, rows: Sequence[Copy]) -> None:
        self._open()
        table = self._copies.setdefault((pair, source), {})
        for row in rows:
            table[row.source_id] = row

    def forget_copies(self, pair: str, source: str, source_ids: Sequence[str]) -> None:
        self._open()
        table = self._copies.get((pair, source), {})
        for source_id in source_ids:
            table.pop(source_id, None)

    def add_import_intents(
        self,
        pair: str,
        source: str,
        intents: Sequence[ImportIntent],
        doubts: Sequence[Doubt] = (),
    ) -> None:
        self._open()
        table = self._intents.setdefault((pair, source), {})
        for intent in intents:
            table[intent.source_id] = intent
        self._keep_doubts(pair, doubts)

    def import_intents(self, pair: str, source: str) -> list[ImportIntent]:
        self._open()
        table = self._intents.get((pair, source), {})
        return sorted(table.values(), key=lambda i: i.source_id)

    def resolve_imports(
        self,
        pair: str,
        source: str,
        done: Sequence[Copy],
        dropped: Sequence[str],
        doubts: Sequence[Doubt] = (),
    ) -> None:
        self._open()
        table = self._intents.setdefault((pair, source), {})
        for source_id in [*(c.source_id for c in done), *dropped]:
            table.pop(source_id, None)
        self.record_copies(pair, source, done)
        written = self._listed.setdefault((pair, source, Listing.WRITTEN), {})
        written.update((c.source_id, _bare(c.source_id)) for c in done)
        self._keep_doubts(pair, doubts)

    def _keep_doubts(self, pair: str, doubts: Sequence[Doubt]) -> None:
        table = self._doubts.setdefault(pair, {})
        table.update(((d.source, d.problem.item), d) for d in doubts)

    def doubts(self, pair: str) -> list[Doubt]:
        self._open()
        table = self._doubts.get(pair, {})
        return [table[k] for k in sorted(table)]

    def forget_doubts(self, pair: str, doubts: Sequence[Doubt]) -> None:
        self._open()
        table = self._doubts.get(pair, {})
        for doubt in doubts:
            table.pop((doubt.source, doubt.problem.item), None)

    def add_listed(
        self, pair: str, source: str, side: Listing, entries: Sequence[MailboxEntry]
    ) -> None:
        self._open()
        table = self._listed.setdefault((pair, source, side), {})
        for entry in entries:
            table[entry.id] = entry if side is Listing.TARGET else _bare(entry.id)
            if side is Listing.TARGET:
                self._claimed.get((pair, source), set()).discard(entry.id)

    def listed(
        self, pair: str, source: str, side: Listing, ids: Sequence[str]
    ) -> dict[str, MailboxEntry]:
        self._open()
        table = self._listed.get((pair, source, side), {})
        return {i: table[i] for i in ids if i in table}

    def _recorded(self, pair: str, source: str) -> set[str]:
        return {c.target_id for c in self._copies.get((pair, source), {}).values()}

    def free_copies(self, pair: str, source: str, keys: Collection[str]) -> list[MailboxEntry]:
        self._open()
        table = self._listed.get((pair, source, Listing.TARGET), {})
        taken = self._claimed.get((pair, source), set()) | self._recorded(pair, source)
        wanted = set(keys)
        free = [e for e in table.values() if e.key in wanted and e.id not in taken]
        return sorted(free, key=lambda e: e.id)

    def claim_copies(self, pair: str, source: str, target_ids: Sequence[str]) -> None:
        self._open()
        listed = self._listed.get((pair, source, Listing.TARGET), {})
        claimed = self._claimed.setdefault((pair, source), set())
        claimed.update(i for i in target_ids if i in listed)

    def has_strangers(self, pair: str, source: str) -> bool:
        self._open()
        recorded = self._recorded(pair, source)
        return any(i not in recorded for i in self._listed.get((pair, source, Listing.TARGET), {}))

    def unlisted_copies(self, pair: str, source: str, limit: int) -> list[str]:
        self._open()
        listed = self._listed.get((pair, source, Listing.SOURCE), {})
        rows = self._copies.get((pair, source), {})
        return sorted(i for i in rows if i not in listed)[:limit]

    def forget_listed(self, pair: str, source: str, sides: Collection[Listing]) -> None:
        self._open()
        for side in sides:
            self._listed.pop((pair, source, side), None)
            if side is Listing.TARGET:
                self._claimed.pop((pair, source), None)

    def mailbox_failures(self, pair: str, source: str) -> dict[str, str]:
        self._open()
        return dict(self._failures.get((pair, source), {}))

    def set_mailbox_failures(self, pair: str, source: str, failures: Mapping[str, str]) -> None:
        self._open()
        self._failures[(pair, source)] = dict(failures)


def _bare(item_id: str) -> MailboxEntry:
    """An entry of an id-only list (SOURCE, WRITTEN), as the SQL store gives it back."""
    return replace(_BARE, id=item_id)


_BARE = MailboxEntry("", "", "")


def _source(state: MailboxFolderState) -> str:
    return state.source
