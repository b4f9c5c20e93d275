"""``ItemStateStore`` in memory, for unit tests and the Hypothesis machines (``lose()``: state lost).

Same semantics as the SQL store (adapters/store/dav_state.py), verified by the same contract.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mailferry.domain.davplan import Listed, Recorded
from mailferry.domain.davports import CollectionState, ItemIntent
from mailferry.domain.errors import StateError

Key = tuple[str, str]


SIDES = ("source", "target")


class MemoryItemStateStore:
    def __init__(self) -> None:
        self.closed = False
        self.lose()

    def close(self) -> None:
        self.closed = True

    def _open(self) -> None:
        if self.closed:
            raise StateError("state database (memory) is closed")

    def lose(self) -> None:
        self._collections: dict[Key, CollectionState] = {}
        self._rows: dict[Key, dict[str, Recorded]] = {}
        self._intents: dict[Key, dict[str, ItemIntent]] = {}
        self._identities: dict[tuple[str, str, str], dict[str, Listed]] = {}
        self._failures: dict[Key, dict[str, str]] = {}

    def collection_state(self, pair: str, source: str) -> CollectionState | None:
        self._open()
        return self._collections.get((pair, source))

    def save_collection_state(self, pair: str, state: CollectionState) -> None:
        self._open()
        self._collections[(pair, state.source)] = state

    def forget_collection(self, pair: str, source: str) -> None:
        self._open()
        row = self._collections.pop((pair, source), None)
        for table in (self._rows, self._intents, self._failures):
            table.pop((pair, source), None)
        self._identities.pop((pair, "source", source), None)
        if row is not None:
            self._identities.pop((pair, "target", row.target), None)

    def recorded(self, pair: str, source: str) -> list[Recorded]:
        self._open()
        return sorted(self._rows.get((pair, source), {}).values(), key=lambda r: r.source_href)

    def record(self, pair: str, source: str, rows: Sequence[Recorded]) -> None:
        self._open()
        table = self._rows.setdefault((pair, source), {})
        for row in rows:
            table[row.source_href] = row

    def add_item_intents(self, pair: str, source: str, intents: Sequence[ItemIntent]) -> None:
        self._open()
        table = self._intents.setdefault((pair, source), {})
        for intent in intents:
            table[intent.source_href] = intent

    def item_intents(self, pair: str, source: str) -> list[ItemIntent]:
        self._open()
        table = self._intents.get((pair, source), {})
        return sorted(table.values(), key=lambda i: i.source_href)

    def resolve_items(
        self, pair: str, source: str, done: Sequence[Recorded], dropped: Sequence[str]
    ) -> None:
        self._open()
        table = self._intents.setdefault((pair, source), {})
        for href in [*(r.source_href for r in done), *dropped]:
            table.pop(href, None)
        self.record(pair, source, done)

    def identities(self, pair: str, side: str, collection: str) -> list[Listed]:
        self._open()
        _side(side)
        table = self._identities.get((pair, side, collection), {})
        return sorted(table.values(), key=lambda i: i.href)

    def save_identities(
        self,
        pair: str,
        side: str,
        collection: str,
        listed: Sequence[Listed],
        removed: Sequence[str],
    ) -> None:
        self._open()
        _side(side)
        table = self._identities.setdefault((pair, side, collection), {})
        for href in removed:  # removed first: an href in both is kept, as in the SQL store
            table.pop(href, None)
        for item in listed:
            table[item.href] = item

    def item_failures(self, pair: str, source: str) -> dict[str, str]:
        self._open()
        return dict(self._failures.get((pair, source), {}))

    def set_item_failures(self, pair: str, source: str, failures: Mapping[str, str]) -> None:
        self._open()
        self._failures[(pair, source)] = dict(failures)


def _side(side: str) -> None:
    if side not in SIDES:
        raise ValueError(f"side must be 'source' or 'target', not {side!r}")
