"""A ``StateStore`` in dicts: for unit tests and ``--dry-run``. Forgotten on ``close``.

It behaves like ``SqlStateStore`` (the contract suite in tests/unit/test_state_store.py runs
against both): inputs are validated before anything changes, so a refused call leaves no trace.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from mailferry.domain.errors import StateError
from mailferry.domain.labels import LabelTally
from mailferry.domain.ports import Checkpoint, Copied, FolderRecord, Intent

_Folder = tuple[str, str]  # (pair, source folder)


def _check_flags(flags: Iterable[str]) -> None:
    # Same rule as store.sqlstore.encode_flags, which stores flags space-joined.
    for flag in flags:
        if not flag or any(ch.isspace() for ch in flag):
            raise ValueError(f"flag {flag!r} cannot be stored: empty or contains whitespace")


class MemoryStateStore:
    def __init__(self) -> None:
        self._closed = False
        self._checkpoints: dict[_Folder, Checkpoint] = {}
        self._copied: dict[_Folder, dict[int, Copied]] = {}
        self._intents: dict[_Folder, dict[int, Intent]] = {}
        self._failures: dict[_Folder, dict[int, str]] = {}

    def _folder(self, pair: str, folder: str) -> _Folder:
        if self._closed:
            raise StateError("in-memory state store is closed")
        return (pair, folder)

    def checkpoint(self, pair: str, folder: str) -> Checkpoint | None:
        return self._checkpoints.get(self._folder(pair, folder))

    def save_checkpoint(self, pair: str, checkpoint: Checkpoint) -> None:
        self._checkpoints[self._folder(pair, checkpoint.source_folder)] = checkpoint

    def folder_records(self, pair: str) -> dict[str, FolderRecord]:
        self._folder(pair, "")  # a closed store refuses
        return {
            folder: FolderRecord(
                checkpoint,
                len(self._copied.get((pair, folder), {})),
                bool(self._intents.get((pair, folder)) or self._failures.get((pair, folder))),
            )
            for (p, folder), checkpoint in self._checkpoints.items()
            if p == pair
        }

    def reset_folder(self, pair: str, folder: str, start: Checkpoint | None = None) -> None:
        key = self._folder(pair, folder)
        self._checkpoints.pop(key, None)
        for table in (self._copied, self._intents, self._failures):
            table.pop(key, None)
        if start is not None:
            self.save_checkpoint(pair, start)

    def copied(
        self, pair: str, folder: str, uids: Iterable[int] | None = None
    ) -> dict[int, Copied]:
        rows = self._copied.get(self._folder(pair, folder), {})
        if uids is None:
            return dict(rows)
        return {uid: rows[uid] for uid in set(uids) if uid in rows}

    def count_copied(self, pair: str, folder: str) -> int:
        return len(self._copied.get(self._folder(pair, folder), {}))

    def copied_range(self, pair: str, folder: str, low: int, high: int) -> dict[int, Copied]:
        rows = self._copied.get(self._folder(pair, folder), {})
        return {uid: row for uid, row in sorted(rows.items()) if low <= uid <= high}

    def copied_page(self, pair: str, folder: str, after: int, limit: int) -> list[Copied]:
        rows = self._copied.get(self._folder(pair, folder), {})
        return [rows[uid] for uid in sorted(rows) if uid > after][:limit]

    def add_copied(self, pair: str, folder: str, copied: Sequence[Copied]) -> None:
        key = self._folder(pair, folder)
        for message in copied:
            _check_flags(message.flags)
        self._copied.setdefault(key, {}).update((c.source_uid, c) for c in copied)

    def update_flags(self, pair: str, folder: str, updates: Mapping[int, frozenset[str]]) -> None:
        """Record the flags now on the target; UIDs not recorded as copied are ignored."""
        rows = self._copied.get(self._folder(pair, folder), {})
        for flags in updates.values():
            _check_flags(flags)
        for uid, flags in updates.items():
            if uid in rows:
                rows[uid] = dataclasses.replace(rows[uid], flags=frozenset(flags))

    def add_intents(self, pair: str, folder: str, intents: Sequence[Intent]) -> None:
        key = self._folder(pair, folder)
        for intent in intents:
            _check_flags(intent.flags)
        self._intents.setdefault(key, {}).update((i.source_uid, i) for i in intents)

    def intents(self, pair: str, folder: str) -> list[Intent]:
        rows = self._intents.get(self._folder(pair, folder), {})
        return [rows[uid] for uid in sorted(rows)]

    def resolve(
        self, pair: str, folder: str, confirmed: Sequence[Copied], dropped: Sequence[int]
    ) -> None:
        key = self._folder(pair, folder)
        for message in confirmed:
            _check_flags(message.flags)
        pending = self._intents.get(key, {})
        for uid in (*(c.source_uid for c in confirmed), *dropped):
            pending.pop(uid, None)
        if confirmed:
            self._copied.setdefault(key, {}).update((c.source_uid, c) for c in confirmed)

    def label_tally(self, pair: str, folder: str, keys: Iterable[str]) -> LabelTally:
        wanted = set(keys)
        tally = LabelTally()
        for (row_pair, row_folder), rows in self._copied.items():
            if row_pair != self._folder(pair, folder)[0]:
                continue
            for row in rows.values():
                if row.label not in wanted:
                    continue
                if not row.elsewhere:
                    tally.standing[row.label] += 1
                if row_folder == folder:
                    tally.mine[row.label] += 1
        return tally

    def failed_uids(self, pair: str, folder: str) -> set[int]:
        return set(self._failures.get(self._folder(pair, folder), {}))

    def set_failures(self, pair: str, folder: str, failures: Mapping[int, str]) -> None:
        self._failures[self._folder(pair, folder)] = dict(failures)

    def close(self) -> None:
        self._closed = True
