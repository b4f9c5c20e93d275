"""A temporary SQLite file of scratch rows, never the state: made in the temporary directory
(``TMPDIR``), without journal or fsync (worthless after a crash: whoever needs the rows builds
them again), with a bounded page cache (what the rows cost in memory, whatever their number), and
deleted when closed. The lost-state listing of a target folder (``listing.py``) and a dry run's
matches (``scratch.py``) are two.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Self

from mailferry.domain.errors import StateError


class TempDb:
    """One scratch file made with ``schema``; ``what`` names it in errors (a ``StateError``)."""

    def __init__(self, prefix: str, schema: str, what: str, *, cache_kib: int) -> None:
        self.what = what
        fd, self.path = tempfile.mkstemp(prefix=prefix, suffix=".sqlite3")
        os.close(fd)
        try:
            # Used by one thread at a time, not always the one that made it (a dry run's walk).
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            pragmas = ("journal_mode = OFF", "synchronous = OFF", "temp_store = FILE")
            for pragma in (*pragmas, f"cache_size = -{cache_kib}"):
                self._db.execute(f"PRAGMA {pragma}")
            self._db.execute(schema)
        except sqlite3.Error as exc:
            self.close()
            raise StateError(f"{what} {self.path}: {exc}") from exc

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(AttributeError, sqlite3.Error):
            self._db.close()
        with contextlib.suppress(OSError):
            Path(self.path).unlink()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction: committed whole, or rolled back."""
        with self._errors():
            self._db.execute("BEGIN")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StateError(f"{self.what} {self.path}: {exc}") from exc
