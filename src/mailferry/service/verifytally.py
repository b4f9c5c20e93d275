"""What verify compares, counted in a temporary SQLite file instead of Python's memory.

A folder of a million messages is two million fingerprints (source and target): as a ``Counter``
that was hundreds of MB. Here they are written in chunks to a scratch database and compared by one
``GROUP BY`` that SQLite sorts on disk, so verify's memory is the same for ten messages or ten
million; the price is temporary disk of about 300 bytes per message, deleted when the comparison
ends.

Why not the state database: verify trusts nothing recorded (it also judges copies made by other
tools, and runs without any state). Why not an adapter: this is no store of anything, only the
spill of one use case's sort, created and removed inside one call; nothing outside verify reads it.
The file needs no durability: a crash loses a comparison that is simply run again, so it is
written with no journal and no fsync.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from mailferry.domain.model import MessageMeta

SCHEMA = """
CREATE TABLE parts (          -- one folder read for one compared target folder (a slot)
    part INTEGER PRIMARY KEY,
    slot INTEGER NOT NULL,
    side INTEGER NOT NULL      -- 0 the source (what should be there), 1 the target (what is)
);
CREATE TABLE messages (
    part INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    size INTEGER NOT NULL,
    date INTEGER NOT NULL,     -- INTERNALDATE, epoch seconds
    flags TEXT NOT NULL,       -- as the target should hold them: sorted, one per line
    key TEXT,                  -- SHA-256 or "id:" Message-ID; NULL until hashed, or unreadable
    PRIMARY KEY (part, uid)
) WITHOUT ROWID;
"""

# (identity, date, flags, how many the target should hold, how many it holds)
Difference = tuple[str, int, str, int, int]

# Messages missing from a folder that label folders may account for (see verify): covered by the
# copies the other compared target folders hold of the same fingerprint.
_COVERED = """CASE WHEN t.wanted > t.have
    THEN MIN(t.wanted - t.have, COALESCE(e.have, 0) - t.have) ELSE 0 END"""


def encode_flags(flags: frozenset[str]) -> str:
    """One canonical text per flag set (flags and keywords never hold a line break)."""
    return "\n".join(sorted(flags))


def decode_flags(text: str) -> list[str]:
    return text.split("\n") if text else []


class PrintTally:
    """The messages of every compared folder, then their fingerprints counted per target folder."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._parts = 0

    @classmethod
    @contextmanager
    def open(cls) -> Iterator[PrintTally]:
        """A fresh scratch file in its own temporary directory, removed with it on exit."""
        with (
            tempfile.TemporaryDirectory(prefix="mailferry-verify-") as tmp,
            closing(sqlite3.connect(Path(tmp) / "tally.sqlite3", isolation_level=None)) as db,
        ):
            for pragma in ("journal_mode=OFF", "synchronous=OFF", "temp_store=FILE"):
                db.execute(f"PRAGMA {pragma}")
            db.execute("PRAGMA cache_size=-8192")  # KiB: the sorts spill to disk beyond this
            db.executescript(SCHEMA)
            yield cls(db)

    def part(self, slot: int, *, target: bool) -> int:
        """A new part of ``slot``: one source folder mapped to it, or the target folder."""
        self._parts += 1
        self._db.execute("INSERT INTO parts VALUES (?, ?, ?)", (self._parts, slot, int(target)))
        return self._parts

    def add(self, part: int, rows: Iterable[tuple[int, int, int, str, str | None]]) -> None:
        """(uid, size, date, flags, key) of some messages of ``part``; a UID listed again replaces
        the first (a server that repeats a message must not count it twice)."""
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?, ?)",
                ((part, *row) for row in rows),
            )

    def unhashed(self, part: int, limit: int) -> Iterator[list[MessageMeta]]:
        """The messages of ``part`` still without identity, ``limit`` at a time in UID order
        (what their bodies must be fetched for). Call ``hashed`` before the next chunk."""
        after = 0
        while True:
            rows = self._db.execute(
                "SELECT uid, size, date FROM messages WHERE part = ? AND uid > ? AND key IS NULL"
                " ORDER BY uid LIMIT ?",
                (part, after, limit),
            ).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            yield [MessageMeta(uid, frozenset(), _date(date), size) for uid, size, date in rows]

    def hashed(self, part: int, hashes: Iterable[tuple[int, str]]) -> None:
        """(uid, sha256) of messages whose bodies were read."""
        with self._transaction():
            self._db.executemany(
                "UPDATE messages SET key = ? WHERE part = ? AND uid = ?",
                ((sha, part, uid) for uid, sha in hashes),
            )

    def forget(self, slot: int) -> None:
        """Drop what was read for ``slot`` (a folder that could not be read whole)."""
        with self._transaction():
            self._db.execute(
                "DELETE FROM messages WHERE part IN (SELECT part FROM parts WHERE slot = ?)",
                (slot,),
            )

    def count(self, *, elsewhere: bool) -> None:
        """Count every fingerprint per slot, in one sort on disk. With ``elsewhere``, also count
        the copies every target folder together holds of each (for label folders)."""
        with self._transaction():
            self._db.execute(
                "CREATE TABLE tally (slot, key, date, flags, wanted, have,"
                " PRIMARY KEY (slot, key, date, flags)) WITHOUT ROWID"
            )
            self._db.execute(
                "INSERT INTO tally SELECT p.slot, m.key, m.date, m.flags,"
                " SUM(p.side = 0), SUM(p.side = 1)"
                " FROM messages m JOIN parts p ON p.part = m.part WHERE m.key IS NOT NULL"
                " GROUP BY p.slot, m.key, m.date, m.flags"
            )
            self._db.execute(
                "CREATE TABLE everywhere (key, date, flags, have,"
                " PRIMARY KEY (key, date, flags)) WITHOUT ROWID"
            )
            if elsewhere:
                self._db.execute(
                    "INSERT INTO everywhere SELECT key, date, flags, SUM(have) FROM tally"
                    " GROUP BY key, date, flags HAVING SUM(have) > 0"
                )

    def totals(self, slot: int, *, elsewhere: bool) -> tuple[int, int, int]:
        """(source messages, target messages, source messages whose copy is in another target
        folder) of ``slot``."""
        covered = _COVERED if elsewhere else "0"
        row = self._db.execute(
            f"SELECT COALESCE(SUM(t.wanted), 0), COALESCE(SUM(t.have), 0),"  # noqa: S608 - constants
            f" COALESCE(SUM({covered}), 0) FROM tally t"
            " LEFT JOIN everywhere e USING (key, date, flags) WHERE t.slot = ?",
            (slot,),
        ).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def differences(self, slot: int, *, elsewhere: bool) -> Iterator[Difference]:
        """The fingerprints of ``slot`` the target holds a different number of, by identity: the
        source's count less what other target folders account for, against the target's."""
        covered = _COVERED if elsewhere else "0"
        yield from self._db.execute(
            f"SELECT key, date, flags, wanted, have FROM (SELECT t.key, t.date, t.flags,"  # noqa: S608 - constants
            f" t.wanted - ({covered}) AS wanted, t.have FROM tally t"
            " LEFT JOIN everywhere e USING (key, date, flags) WHERE t.slot = ?)"
            " WHERE wanted != have ORDER BY key, date, flags",
            (slot,),
        )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _date(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)
