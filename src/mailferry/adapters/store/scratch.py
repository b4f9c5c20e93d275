"""A dry run's copied rows of one folder: a temporary SQLite file in front of the state.

A dry run writes nothing to the state. Yet without usable state, over a target folder that
already holds mail, it must match the folder as a run would: window by window against the
target's temporary listing (``service/windows.py``), so that its memory does not grow with the
folder (issue #17 rule 1: a million messages, matched in memory, took ~300 MB). The matches a
run would record as copied rows are written here instead, and the walk that counts what is left
to copy reads them back from here.

The state's own rows of that folder are hidden: a run would forget them (``reset_folder``) before
matching. Every other folder's rows (another source folder's claims on the same target folder)
are read from the state. Nothing else may be asked of it: an attribute not defined here raises
``StateError``, so a write that a dry run must not make fails loudly instead of landing.

Why SQLite and not a dict: the rows are the folder's matches, up to one per message.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from mailferry.adapters.store.sqlstore import decode_flags, encode_flags
from mailferry.adapters.store.tempdb import TempDb
from mailferry.domain.errors import StateError
from mailferry.domain.ports import Copied, StateStore

CACHE_KIB = 4096  # the page cache bounds what the rows cost in memory
_ROW = "SELECT source_uid, target_uid, flags FROM copied"


class ScratchCopies(TempDb):
    """The copied rows of ``folder`` (of any pair: one dry run has one), in a temporary file;
    ``copied_page`` and ``count_copied`` of other folders from ``state``."""

    def __init__(self, state: StateStore, folder: str) -> None:
        self.state, self.folder = state, folder
        schema = (
            "CREATE TABLE copied (source_uid INTEGER PRIMARY KEY, target_uid INTEGER, "
            "flags TEXT NOT NULL)"
        )
        super().__init__("mailferry-dry-", schema, "a dry run's scratch file", cache_kib=CACHE_KIB)

    def __getattr__(self, name: str) -> object:
        if name.startswith("_"):  # not set yet (a failed __init__), or Python's own probes
            raise AttributeError(name)
        raise StateError(f"a dry run may not ask the state for {name!r}")

    # -- this folder's rows, here --------------------------------------------------------------
    def add_copied(self, pair: str, folder: str, copied: Sequence[Copied]) -> None:  # noqa: ARG002
        self._mine(folder)
        rows = [(c.source_uid, c.target_uid, encode_flags(c.flags)) for c in copied]
        with self._write() as db:
            db.executemany("INSERT OR REPLACE INTO copied VALUES (?, ?, ?)", rows)

    def copied_range(self, pair: str, folder: str, low: int, high: int) -> dict[int, Copied]:  # noqa: ARG002
        self._mine(folder)
        query = f"{_ROW} WHERE source_uid BETWEEN ? AND ?"
        return {c.source_uid: c for c in self._rows(query, (low, high))}

    def copied_page(self, pair: str, folder: str, after: int, limit: int) -> list[Copied]:
        if folder != self.folder:
            return self.state.copied_page(pair, folder, after, limit)
        query = f"{_ROW} WHERE source_uid > ? ORDER BY source_uid LIMIT ?"
        return list(self._rows(query, (after, limit)))

    def count_copied(self, pair: str, folder: str) -> int:
        if folder != self.folder:
            return self.state.count_copied(pair, folder)
        with self._errors():
            return int(self._db.execute("SELECT COUNT(*) FROM copied").fetchone()[0])

    # ------------------------------------------------------------------------------------------
    def _mine(self, folder: str) -> None:
        if folder != self.folder:
            raise StateError(f"a dry run of {self.folder!r} may not write rows of {folder!r}")

    def _rows(self, query: str, args: tuple[int, ...]) -> Iterator[Copied]:
        with self._errors():
            for source_uid, target_uid, flags in self._db.execute(query, args).fetchall():
                yield Copied(int(source_uid), target_uid, decode_flags(flags))
