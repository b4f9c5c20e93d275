"""The durable ``StateStore``: SQLAlchemy Core on SQLite (the default) or PostgreSQL.

Every method is one explicit transaction on the file's shared ``Database`` (``engine``: writes
run under ``BEGIN IMMEDIATE`` on SQLite, and ``synchronous=FULL``). Batches are written with
executemany: one round trip per call, never one per message. Every SQLAlchemy error is translated
to ``StateError`` at the boundary (``Database.transaction``).

What a crash leaves: an intent is written (``add_intents``, durable when it returns) before the
APPEND it announces, and resolved into ``copied`` only after the target confirmed it; a crash in
between leaves the intent, which the next run matches against the target instead of appending
again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Table,
    bindparam,
    delete,
    func,
    select,
    update,
)

from mailferry.adapters.store import schema
from mailferry.adapters.store.sqlstore import (
    NAMED,
    SqlStore,
    decode_flags,
    encode_flags,
    folder_counts,
)
from mailferry.adapters.store.tables import CHECKPOINTS, COPIED, FAILURES, INTENTS
from mailferry.adapters.store.upserts import upsert
from mailferry.domain.labels import LabelTally
from mailferry.domain.ports import Checkpoint, Copied, FolderRecord, Intent

SCHEMA_VERSION = schema.SYNC.version
WRITE_CHUNK = 2000  # rows per executemany of one large write
UID_CHUNK = NAMED  # source UIDs per IN (...) query

_FOLDER_TABLES = (CHECKPOINTS, COPIED, INTENTS, FAILURES)


def _checkpoint_row(pair: str, checkpoint: Checkpoint) -> dict[str, object]:
    return {
        "pair": pair,
        "folder": checkpoint.source_folder,
        "target_folder": checkpoint.target_folder,
        "source_uidvalidity": checkpoint.source_uidvalidity,
        "source_uidnext": checkpoint.source_uidnext,
        "source_modseq": checkpoint.source_modseq,
        "target_uidvalidity": checkpoint.target_uidvalidity,
        "selection": checkpoint.selection,
    }


class SqlStateStore(SqlStore):
    """``StateStore`` on a shared ``Database``; see ``open_sqlite`` for the usual local file."""

    component = schema.SYNC

    # -- checkpoints ---------------------------------------------------------------------------

    def checkpoint(self, pair: str, folder: str) -> Checkpoint | None:
        query = select(*_CHECKPOINT).where(
            CHECKPOINTS.c.pair == pair, CHECKPOINTS.c.folder == folder
        )
        with self._transaction() as conn:
            row = conn.execute(query).one_or_none()
        return None if row is None else _checkpoint(row)

    def folder_records(self, pair: str) -> dict[str, FolderRecord]:
        """Four queries at most, each on the primary key's (pair, folder) prefix, in one
        transaction. A folder's count of rows is the one saved with its checkpoint
        (``checkpoints.copied``); only folders written since are counted, so a no-op pass reads no
        row of a million-message folder (a count of them took 0.1-0.3 s)."""
        query = select(*_CHECKPOINT, CHECKPOINTS.c.copied).where(CHECKPOINTS.c.pair == pair)
        with self._transaction() as conn:
            rows = conn.execute(query).all()
            counted = folder_counts(conn, COPIED, pair, [row[0] for row in rows if row[-1] is None])
            pending: set[str] = set()
            for table in (INTENTS, FAILURES):
                query = select(table.c.folder).where(table.c.pair == pair).distinct()
                pending.update(conn.scalars(query))
        return {
            row[0]: FolderRecord(
                _checkpoint(row[:-1]),
                counted.get(row[0], 0) if row[-1] is None else int(row[-1]),
                row[0] in pending,
            )
            for row in rows
        }

    def save_checkpoint(self, pair: str, checkpoint: Checkpoint) -> None:
        """The row replaced, its count of copied rows kept (still exact: every write of rows
        clears it), or counted here when a complete pass is saved without one."""
        this = _folder(CHECKPOINTS, pair, checkpoint.source_folder)
        with self._transaction(write=True) as conn:
            count = conn.scalar(select(CHECKPOINTS.c.copied).where(this))
            row = {**_checkpoint_row(pair, checkpoint), "copied": count}
            upsert(conn, CHECKPOINTS, [row], ("pair", "folder"))
            if count is None and checkpoint.complete:
                conn.execute(update(CHECKPOINTS).where(this).values(copied=schema.copied_count()))

    def reset_folder(self, pair: str, folder: str, start: Checkpoint | None = None) -> None:
        with self._transaction(write=True) as conn:
            for table in _FOLDER_TABLES:
                conn.execute(delete(table).where(table.c.pair == pair, table.c.folder == folder))
            if start is not None:  # deleted above: inserted, not upserted
                conn.execute(CHECKPOINTS.insert(), [_checkpoint_row(pair, start)])

    # -- copied --------------------------------------------------------------------------------

    def copied(
        self, pair: str, folder: str, uids: Iterable[int] | None = None
    ) -> dict[int, Copied]:
        query = select(COPIED).where(COPIED.c.pair == pair, COPIED.c.folder == folder)
        if uids is None:
            chunks = [query]
        else:
            wanted = sorted(set(uids))
            chunks = [
                query.where(COPIED.c.source_uid.in_(wanted[start : start + UID_CHUNK]))
                for start in range(0, len(wanted), UID_CHUNK)
            ]
        found: dict[int, Copied] = {}
        if not chunks:
            return found
        with self._transaction() as conn:
            for chunk in chunks:
                for row in conn.execute(chunk):
                    found[row.source_uid] = _copied(row)
        return found

    def copied_range(self, pair: str, folder: str, low: int, high: int) -> dict[int, Copied]:
        """A range of the primary key (pair, folder, source_uid) on SQLite and PostgreSQL alike."""
        query = select(COPIED).where(
            COPIED.c.pair == pair,
            COPIED.c.folder == folder,
            COPIED.c.source_uid.between(low, high),
        )
        with self._transaction() as conn:
            return {row.source_uid: _copied(row) for row in conn.execute(query)}

    def copied_page(self, pair: str, folder: str, after: int, limit: int) -> list[Copied]:
        query = (
            select(COPIED)
            .where(COPIED.c.pair == pair, COPIED.c.folder == folder, COPIED.c.source_uid > after)
            .order_by(COPIED.c.source_uid)
            .limit(limit)
        )
        with self._transaction() as conn:
            return [_copied(row) for row in conn.execute(query)]

    def count_copied(self, pair: str, folder: str) -> int:
        query = (
            select(func.count())
            .select_from(COPIED)
            .where(COPIED.c.pair == pair, COPIED.c.folder == folder)
        )
        with self._transaction() as conn:
            return int(conn.execute(query).scalar_one())

    def add_copied(self, pair: str, folder: str, copied: Sequence[Copied]) -> None:
        """One transaction, written ``WRITE_CHUNK`` rows at a time: lost-state matching records a
        whole folder at once, and its rows and SQLAlchemy's parameters for all of them at once
        were the peak of that pass (a flag that cannot be stored rolls back every chunk)."""
        with self._transaction(write=True) as conn:
            for start in range(0, len(copied), WRITE_CHUNK):
                chunk = copied[start : start + WRITE_CHUNK]
                _upsert_messages(conn, COPIED, _copied_rows(pair, folder, chunk))
            if copied:
                _uncount(conn, pair, folder)

    def update_flags(self, pair: str, folder: str, updates: Mapping[int, frozenset[str]]) -> None:
        """Record the flags now on the target; UIDs not recorded as copied are ignored."""
        params = [{"b_uid": uid, "b_flags": encode_flags(flags)} for uid, flags in updates.items()]
        if not params:
            return
        statement = (
            update(COPIED)
            .where(
                COPIED.c.pair == pair,
                COPIED.c.folder == folder,
                COPIED.c.source_uid == bindparam("b_uid"),
            )
            .values(flags=bindparam("b_flags"))
        )
        with self._transaction(write=True) as conn:
            conn.execute(statement, params)

    # -- intents -------------------------------------------------------------------------------

    def add_intents(self, pair: str, folder: str, intents: Sequence[Intent]) -> None:
        """Durable when this returns (synchronous=FULL). A UID's newer intent replaces the old."""
        rows: list[dict[str, object]] = [
            {
                "pair": pair,
                "folder": folder,
                "source_uid": intent.source_uid,
                "sha256": intent.sha256,
                "size": intent.size,
                "flags": encode_flags(intent.flags),
                "target_folder": intent.target_folder,
                "target_uidvalidity": intent.target_uidvalidity,
                "target_uidnext": intent.target_uidnext,
                "message_id": intent.message_id,
                "internaldate": intent.internaldate,
                "label": intent.label,
            }
            for intent in intents
        ]
        with self._transaction(write=True) as conn:
            _upsert_messages(conn, INTENTS, rows)

    def intents(self, pair: str, folder: str) -> list[Intent]:
        query = (
            select(INTENTS)
            .where(INTENTS.c.pair == pair, INTENTS.c.folder == folder)
            .order_by(INTENTS.c.source_uid)
        )
        with self._transaction() as conn:
            rows = conn.execute(query).all()
        return [
            Intent(
                source_uid=row.source_uid,
                sha256=row.sha256,
                size=row.size,
                flags=decode_flags(row.flags),
                target_folder=row.target_folder,
                target_uidvalidity=row.target_uidvalidity,
                target_uidnext=row.target_uidnext,
                message_id=row.message_id,
                internaldate=row.internaldate,
                label=row.label,
            )
            for row in rows
        ]

    def resolve(
        self, pair: str, folder: str, confirmed: Sequence[Copied], dropped: Sequence[int]
    ) -> None:
        rows = _copied_rows(pair, folder, confirmed)  # validates before anything is written
        done = [{"b_uid": uid} for uid in {*(c.source_uid for c in confirmed), *dropped}]
        forget = delete(INTENTS).where(
            INTENTS.c.pair == pair,
            INTENTS.c.folder == folder,
            INTENTS.c.source_uid == bindparam("b_uid"),
        )
        with self._transaction(write=True) as conn:
            if done:
                conn.execute(forget, done)
            _upsert_messages(conn, COPIED, rows)
            if rows:
                _uncount(conn, pair, folder)

    # -- labels --------------------------------------------------------------------------------

    def label_tally(self, pair: str, folder: str, keys: Iterable[str]) -> LabelTally:
        wanted = sorted(set(keys))
        tally = LabelTally()
        count = func.count().label("n")
        with self._transaction() as conn:
            for start in range(0, len(wanted), UID_CHUNK):
                chunk = wanted[start : start + UID_CHUNK]
                rows = select(COPIED.c.label, count).where(
                    COPIED.c.pair == pair, COPIED.c.label.in_(chunk)
                )
                standing = rows.where(COPIED.c.elsewhere == 0).group_by(COPIED.c.label)
                mine = rows.where(COPIED.c.folder == folder).group_by(COPIED.c.label)
                for row in conn.execute(standing):
                    tally.standing[row.label] += row.n
                for row in conn.execute(mine):
                    tally.mine[row.label] += row.n
        return tally

    # -- failures ------------------------------------------------------------------------------

    def failed_uids(self, pair: str, folder: str) -> set[int]:
        query = select(FAILURES.c.source_uid).where(
            FAILURES.c.pair == pair, FAILURES.c.folder == folder
        )
        with self._transaction() as conn:
            return set(conn.scalars(query))

    def set_failures(self, pair: str, folder: str, failures: Mapping[int, str]) -> None:
        rows = [
            {"pair": pair, "folder": folder, "source_uid": uid, "reason": reason}
            for uid, reason in failures.items()
        ]
        if not rows and not self.failed_uids(pair, folder):
            return  # every pass ends here: no commit (and its fsync) a folder for nothing
        with self._transaction(write=True) as conn:
            conn.execute(
                delete(FAILURES).where(FAILURES.c.pair == pair, FAILURES.c.folder == folder)
            )
            if rows:
                conn.execute(FAILURES.insert(), rows)


# Checkpoint's fields in its order: a row of these columns makes one positionally (by name, a
# no-op pass over 2,000 folders spent a tenth of its time here).
_CHECKPOINT = (
    CHECKPOINTS.c.folder,  # source_folder
    CHECKPOINTS.c.target_folder,
    CHECKPOINTS.c.source_uidvalidity,
    CHECKPOINTS.c.source_uidnext,
    CHECKPOINTS.c.source_modseq,
    CHECKPOINTS.c.target_uidvalidity,
    CHECKPOINTS.c.selection,
)


def _folder(table: Table, pair: str, folder: str) -> ColumnElement[bool]:
    return (table.c.pair == pair) & (table.c.folder == folder)


def _uncount(conn: Connection, pair: str, folder: str) -> None:
    """The folder's rows changed: its saved count no longer holds (``folder_records``)."""
    counted = _folder(CHECKPOINTS, pair, folder) & CHECKPOINTS.c.copied.is_not(None)
    conn.execute(update(CHECKPOINTS).where(counted).values(copied=None))


def _checkpoint(row: Sequence[Any]) -> Checkpoint:
    return Checkpoint(*row)


def _copied(row: Row[Any]) -> Copied:
    return Copied(
        row.source_uid, row.target_uid, decode_flags(row.flags), row.label, bool(row.elsewhere)
    )


def _copied_rows(pair: str, folder: str, messages: Sequence[Copied]) -> list[dict[str, object]]:
    return [
        {
            "pair": pair,
            "folder": folder,
            "source_uid": message.source_uid,
            "target_uid": message.target_uid,
            "flags": encode_flags(message.flags),
            "label": message.label,
            "elsewhere": int(message.elsewhere),
        }
        for message in messages
    ]


def _upsert_messages(conn: Connection, table: Table, rows: list[dict[str, object]]) -> None:
    # The last row for a UID wins, as in a dict; PostgreSQL's multi-row ON CONFLICT would
    # otherwise refuse to touch the same row twice in one statement.
    unique = list({row["source_uid"]: row for row in rows}.values())
    upsert(conn, table, unique, ("pair", "folder", "source_uid"))
