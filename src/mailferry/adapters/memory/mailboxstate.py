"""``MailboxStateStore`` in memory, for unit tests and the Hypothesis machine (``lose()``: the
state file is gone). Same semantics as the SQL store (adapters/store/graph_state.py), verified by
the same contract suite."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mailferry.domain.errors import StateError
from mailferry.domain.mailboxplan import Copy, ImportIntent
from mailferry.domain.ports import MailboxFolderState

Key = tuple[str, str]


class MemoryMailboxStateStore:
    def __init__(self) -> None:
        self.closed = False
        self.lose()

    def lose(self) -> None:
        self._folders: dict[Key, MailboxFolderState] = {}
        self._copies: dict[Key, dict[str, Copy]] = {}
        self._intents: dict[Key, dict[str, ImportIntent]] = {}
        self._failures: dict[Key, dict[str, str]] = {}

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
        for table in (self._folders, self._copies, self._intents, self._failures):
            table.pop((pair, source), None)

    def copies(self, pair: str, source: str) -> list[Copy]:
        self._open()
        return sorted(self._copies.get((pair, source), {}).values(), key=lambda c: c.source_id)

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

    def add_import_intents(self, pair: str, source: str, intents: Sequence[ImportIntent]) -> None:
        self._open()
        table = self._intents.setdefault((pair, source), {})
        for intent in intents:
            table[intent.source_id] = intent

    def import_intents(self, pair: str, source: str) -> list[ImportIntent]:
        self._open()
        table = self._intents.get((pair, source), {})
        return sorted(table.values(), key=lambda i: i.source_id)

    def resolve_imports(
        self, pair: str, source: str, done: Sequence[Copy], dropped: Sequence[str]
    ) -> None:
        self._open()
        table = self._intents.setdefault((pair, source), {})
        for source_id in [*(c.source_id for c in done), *dropped]:
            table.pop(source_id, None)
        self.record_copies(pair, source, done)

    def mailbox_failures(self, pair: str, source: str) -> dict[str, str]:
        self._open()
        return dict(self._failures.get((pair, source), {}))

    def set_mailbox_failures(self, pair: str, source: str, failures: Mapping[str, str]) -> None:
        self._open()
        self._failures[(pair, source)] = dict(failures)


def _source(state: MailboxFolderState) -> str:
    return state.source
