"""The target folder's listing during lost-state matching: a temporary SQLite file, not the state.

Matching a source folder against a target that already holds messages (first run, lost state)
needs the target's identities at hand, one row per target message: at a million messages that
is no Python dict (~60 MB for the UIDs alone), so they are streamed into an indexed table and
each window of source messages is matched against it by query.

Why a file of its own rather than a table of the state database: the listing is scratch (rebuilt
by every matching pass, worthless after a crash: the pass is marked started only once every
match is recorded as copied rows in the state), so it needs neither ``synchronous=FULL`` nor the
state's write lock (which the other lanes' intents wait on), it leaves the state file no bigger
(SQLite does not shrink a file after a delete), it costs no schema version, and it works the
same whether the state is a SQLite file or a PostgreSQL server (1M rows never cross that
network). It lives in the temporary directory (``TMPDIR``), and is deleted when closed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from mailferry.adapters.store.tempdb import TempDb

CHUNK = 500  # keys or UIDs per IN (...) query; SQLite allowed 999 variables before 3.32
T = TypeVar("T")
# The lowest UIDs of each key asked for, at most ``n`` of each, highest first (popped from the end).
_TAKE = (
    "SELECT key, target_uid, flags FROM (SELECT key, target_uid, flags, "
    "ROW_NUMBER() OVER (PARTITION BY key ORDER BY target_uid) AS n FROM listed "
    "WHERE key IN (MARKS)) WHERE n <= ? ORDER BY key, target_uid DESC"
)
CACHE_KIB = 8192  # the page cache bounds what the listing costs in memory, whatever its size


class TargetListing(TempDb):
    """Rows (target UID, identity digest or None, size, flags) of one target folder; each row can
    be taken once (``claim``, ``take``)."""

    def __init__(self) -> None:
        schema = (
            "CREATE TABLE listed (target_uid INTEGER PRIMARY KEY, key TEXT, "
            "size INTEGER NOT NULL, flags TEXT NOT NULL)"
        )
        super().__init__("mailferry-listing-", schema, "temporary listing", cache_kib=CACHE_KIB)
        self._indexed = False

    def add(self, rows: Iterable[tuple[int, str | None, int, str]]) -> int:
        """(target UID, digest, size, flags) rows, before any ``take``; returns how many."""
        added = 0
        with self._write() as db:
            for chunk in _chunks(rows, 2000):
                db.executemany("INSERT OR REPLACE INTO listed VALUES (?, ?, ?, ?)", chunk)
                added += len(chunk)
        return added

    def unkeyed(self, after: int, limit: int) -> list[tuple[int, int]]:
        """(target UID, size) of rows without a digest yet, above ``after``, in UID order."""
        query = (
            "SELECT target_uid, size FROM listed WHERE key IS NULL AND target_uid > ? "
            "ORDER BY target_uid LIMIT ?"
        )
        with self._errors():
            return [(int(u), int(s)) for u, s in self._db.execute(query, (after, limit))]

    def set_keys(self, keys: Iterable[tuple[int, str]]) -> None:
        """Digests of rows listed without one (their content hash, computed since)."""
        with self._write() as db:
            db.executemany(
                "UPDATE listed SET key = ? WHERE target_uid = ?", [(k, u) for u, k in keys]
            )

    def claim(self, uids: Sequence[int]) -> None:
        """These target UIDs are taken (by another source folder sharing the target folder)."""
        with self._write() as db:
            db.executemany("DELETE FROM listed WHERE target_uid = ?", [(u,) for u in uids])

    def take(self, keys: Sequence[str | None]) -> list[tuple[int, str] | None]:
        """For each key in order (the source window, by UID): the lowest-UID row of that key not
        taken yet, as (target UID, flags), else None; the rows returned are taken."""
        self._index()
        need = Counter(k for k in keys if k is not None)
        pool: dict[str, list[tuple[int, str]]] = defaultdict(list)
        with self._errors():
            for chunk in _chunks(sorted(need), CHUNK):
                most = max(need[k] for k in chunk)
                marks = ",".join("?" * len(chunk))  # placeholders only: the keys are bound
                query = _TAKE.replace("MARKS", marks)
                for key, uid, flags in self._db.execute(query, (*chunk, most)):
                    pool[key].append((int(uid), str(flags)))
        found: list[tuple[int, str] | None] = []
        for key in keys:
            bucket = pool.get(key) if key is not None else None
            found.append(bucket.pop() if bucket else None)  # lowest UID is last
        self.claim([hit[0] for hit in found if hit is not None])
        return found

    def _index(self) -> None:
        """Built once, after the listing is in: faster than keeping it up to date row by row."""
        if not self._indexed:
            with self._write() as db:
                db.execute("CREATE INDEX listed_key ON listed (key, target_uid)")
            self._indexed = True


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
