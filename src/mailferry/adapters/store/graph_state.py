"""The durable ``MailboxStateStore``: the state of Microsoft 365 mailboxes moved through Graph, in
the one state database (SQLite or PostgreSQL, through the same code).

Built like the calendar state (``dav_state``) and sharing its ``SqlStore`` base, its file and its
``Database``: every method is one explicit transaction (writes under ``BEGIN IMMEDIATE`` on SQLite,
with ``synchronous=FULL``); batches are one executemany, deletions by id go in ``IN`` lists of at
most ``ID_CHUNK`` ids. Every SQLAlchemy error becomes ``StateError`` at the boundary.

What a crash leaves: an intent is written (``add_import_intents``, durable when it returns) before
the import it announces, and resolved into ``mbx_items`` only once the target answered
(``resolve_imports``: the intents' deletion and the rows' upsert are one transaction, so a crash
leaves either the intent or the row, never neither). A crash in between leaves the intent, with
the item's key and size and, for an update, the change key it replaced: the next pass lists the
target folder and settles it (found by key with a size that fits, or changed: recorded; else
imported again) before anything else in that folder is written.

A doubt (a copy that may be a second one) is written in the transaction that learns of it (with
the intents of imports that may double an item, or dropping an intent that cannot be found), and
goes only once a run that finished has reported it (``forget_doubts``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Table, delete, exists, select, update

from mailferry.adapters.store import schema
from mailferry.adapters.store.sqlstore import SqlStore, of_source, upsert_unique
from mailferry.adapters.store.tables import (
    MBX_DOUBTS,
    MBX_FAILURES,
    MBX_FOLDERS,
    MBX_INTENTS,
    MBX_ITEMS,
    MBX_LISTED,
)
from mailferry.adapters.store.upserts import upsert
from mailferry.domain.errors import StateError
from mailferry.domain.mailboxmodel import Listing, MailboxEntry
from mailferry.domain.mailboxplan import Copy, ImportIntent, Mode
from mailferry.domain.mailboxports import MailboxFolderState
from mailferry.domain.mailboxreport import Doubt, EntryProblem
from mailferry.domain.workloads import Workload

SCHEMA_VERSION = schema.MAILBOX.version
ID_CHUNK = 500  # ids per IN (...) list; SQLite allowed 999 variables before 3.32

# Not MBX_DOUBTS: a doubt goes only once reported (a folder forgotten may leave a second copy).
_FOLDER_TABLES = (MBX_ITEMS, MBX_INTENTS, MBX_FAILURES, MBX_LISTED, MBX_FOLDERS)
_ITEM_KEYS = ("pair", "source", "source_id")
_LISTED_KEYS = ("pair", "source", "side", "item_id")


class SqlMailboxStateStore(SqlStore):
    """``MailboxStateStore`` on a shared ``Database`` (``open_sqlite(path)`` on the mail state's
    file gives the same Engine as its other stores)."""

    component = schema.MAILBOX

    # -- folders -------------------------------------------------------------------------------

    def folder_state(self, pair: str, source: str) -> MailboxFolderState | None:
        query = select(MBX_FOLDERS).where(of_source(MBX_FOLDERS, pair, source))
        with self._transaction() as conn:
            row = conn.execute(query).one_or_none()
        return None if row is None else MailboxFolderState(row.source, row.target, row.token)

    def folder_states(self, pair: str) -> list[MailboxFolderState]:
        query = select(MBX_FOLDERS).where(MBX_FOLDERS.c.pair == pair).order_by(MBX_FOLDERS.c.source)
        with self._transaction() as conn:
            rows = conn.execute(query).all()
        return [MailboxFolderState(row.source, row.target, row.token) for row in rows]

    def save_folder_state(self, pair: str, state: MailboxFolderState) -> None:
        row: dict[str, object] = {
            "pair": pair,
            "source": state.source,
            "target": state.target,
            "token": state.token,
        }
        with self._transaction(write=True) as conn:
            upsert(conn, MBX_FOLDERS, [row], ("pair", "source"))

    def forget_folder(self, pair: str, source: str) -> None:
        with self._transaction(write=True) as conn:
            for table in _FOLDER_TABLES:
                conn.execute(delete(table).where(of_source(table, pair, source)))

    # -- copies --------------------------------------------------------------------------------

    def copies(self, pair: str, source: str) -> list[Copy]:
        query = (
            select(MBX_ITEMS)
            .where(of_source(MBX_ITEMS, pair, source))
            .order_by(MBX_ITEMS.c.source_id)
        )
        with self._transaction() as conn:
            rows = conn.execute(query).all()
        return [_copy(r) for r in rows]

    def copies_of(self, pair: str, source: str, source_ids: Sequence[str]) -> dict[str, Copy]:
        wanted = list(dict.fromkeys(source_ids))
        found: dict[str, Copy] = {}
        with self._transaction() as conn:
            for start in range(0, len(wanted), ID_CHUNK):
                chunk = wanted[start : start + ID_CHUNK]
                query = select(MBX_ITEMS).where(
                    of_source(MBX_ITEMS, pair, source), MBX_ITEMS.c.source_id.in_(chunk)
                )
                found.update((r.source_id, _copy(r)) for r in conn.execute(query))
        return found

    def has_copies(self, pair: str, source: str) -> bool:
        query = select(MBX_ITEMS.c.source_id).where(of_source(MBX_ITEMS, pair, source)).limit(1)
        with self._transaction() as conn:
            return conn.execute(query).first() is not None

    def record_copies(self, pair: str, source: str, rows: Sequence[Copy]) -> None:
        """Upsert by source id; of one id repeated in ``rows`` the last wins."""
        items = _copy_rows(pair, source, rows)
        with self._transaction(write=True) as conn:
            upsert_unique(conn, MBX_ITEMS, items, _ITEM_KEYS)

    def forget_copies(self, pair: str, source: str, source_ids: Sequence[str]) -> None:
        with self._transaction(write=True) as conn:
            _delete_ids(conn, MBX_ITEMS, pair, source, source_ids)

    # -- intents -------------------------------------------------------------------------------

    def add_import_intents(
        self,
        pair: str,
        source: str,
        intents: Sequence[ImportIntent],
        doubts: Sequence[Doubt] = (),
    ) -> None:
        """Durable when this returns (synchronous=FULL), doubts too. A newer intent replaces."""
        rows: list[dict[str, object]] = [
            {
                "pair": pair,
                "source": source,
                "source_id": i.source_id,
                "source_change_key": i.source_change_key,
                "target_folder": i.target_folder,
                "key": i.key,
                "mode": str(i.mode),
                "target_id": i.target_id,
                "target_change_key": i.target_change_key,
                "size": i.size,
            }
            for i in intents
        ]
        with self._transaction(write=True) as conn:
            upsert_unique(conn, MBX_INTENTS, rows, _ITEM_KEYS)
            upsert_unique(conn, MBX_DOUBTS, _doubt_rows(pair, doubts), _ITEM_KEYS)

    def import_intents(self, pair: str, source: str) -> list[ImportIntent]:
        query = (
            select(MBX_INTENTS)
            .where(of_source(MBX_INTENTS, pair, source))
            .order_by(MBX_INTENTS.c.source_id)
        )
        with self._transaction() as conn:
            rows = conn.execute(query).all()
        return [_intent(row) for row in rows]

    def resolve_imports(
        self,
        pair: str,
        source: str,
        done: Sequence[Copy],
        dropped: Sequence[str],
        doubts: Sequence[Doubt] = (),
    ) -> None:
        """One transaction: the intents of ``done`` and ``dropped`` (source ids) go, ``done`` is
        upserted into the copies, ``doubts`` kept; a failure anywhere leaves every intent in
        place (no doubt is written: the next pass settles those intents again)."""
        rows = _copy_rows(pair, source, done)
        ids = [*(c.source_id for c in done), *dropped]
        written = _listed_rows(pair, source, Listing.WRITTEN, [(c.source_id, None) for c in done])
        with self._transaction(write=True) as conn:
            _delete_ids(conn, MBX_INTENTS, pair, source, ids)
            upsert_unique(conn, MBX_ITEMS, rows, _ITEM_KEYS)
            _upsert_listed(conn, written)
            upsert_unique(conn, MBX_DOUBTS, _doubt_rows(pair, doubts), _ITEM_KEYS)

    # -- doubts --------------------------------------------------------------------------------

    def doubts(self, pair: str) -> list[Doubt]:
        query = (
            select(MBX_DOUBTS)
            .where(MBX_DOUBTS.c.pair == pair)
            .order_by(MBX_DOUBTS.c.source, MBX_DOUBTS.c.source_id)
        )
        with self._transaction() as conn:
            rows = conn.execute(query).all()
        return [_doubt(row) for row in rows]

    def forget_doubts(self, pair: str, doubts: Sequence[Doubt]) -> None:
        with self._transaction(write=True) as conn:
            for source in sorted({d.source for d in doubts}):
                ids = [d.problem.item for d in doubts if d.source == source]
                _delete_ids(conn, MBX_DOUBTS, pair, source, ids)

    # -- scratch listings ------------------------------------------------------------------------

    def add_listed(
        self, pair: str, source: str, side: Listing, entries: Sequence[MailboxEntry]
    ) -> None:
        keep = side is Listing.TARGET  # the other lists are of ids only
        rows = _listed_rows(pair, source, side, [(e.id, e if keep else None) for e in entries])
        with self._transaction(write=True) as conn:
            _upsert_listed(conn, rows)

    def listed(
        self, pair: str, source: str, side: Listing, ids: Sequence[str]
    ) -> dict[str, MailboxEntry]:
        wanted = list(dict.fromkeys(ids))
        found: dict[str, MailboxEntry] = {}
        with self._transaction() as conn:
            for start in range(0, len(wanted), ID_CHUNK):
                query = select(MBX_LISTED).where(
                    _of_side(pair, source, side),
                    MBX_LISTED.c.item_id.in_(wanted[start : start + ID_CHUNK]),
                )
                found.update((r.item_id, _listed_entry(r)) for r in conn.execute(query))
        return found

    def free_copies(self, pair: str, source: str, keys: Collection[str]) -> list[MailboxEntry]:
        wanted = sorted(set(keys))
        found: list[MailboxEntry] = []
        with self._transaction() as conn:
            for start in range(0, len(wanted), ID_CHUNK):
                query = select(MBX_LISTED).where(
                    _of_side(pair, source, Listing.TARGET),
                    MBX_LISTED.c.claimed == 0,
                    MBX_LISTED.c.key.in_(wanted[start : start + ID_CHUNK]),
                    ~_recorded(pair, source),
                )
                found.extend(_listed_entry(r) for r in conn.execute(query))
        return sorted(found, key=lambda e: e.id)

    def claim_copies(self, pair: str, source: str, target_ids: Sequence[str]) -> None:
        wanted = list(dict.fromkeys(target_ids))
        with self._transaction(write=True) as conn:
            for start in range(0, len(wanted), ID_CHUNK):
                conn.execute(
                    update(MBX_LISTED)
                    .where(
                        _of_side(pair, source, Listing.TARGET),
                        MBX_LISTED.c.item_id.in_(wanted[start : start + ID_CHUNK]),
                    )
                    .values(claimed=1)
                )

    def has_strangers(self, pair: str, source: str) -> bool:
        query = (
            select(MBX_LISTED.c.item_id)
            .where(_of_side(pair, source, Listing.TARGET), ~_recorded(pair, source))
            .limit(1)
        )
        with self._transaction() as conn:
            return conn.execute(query).first() is not None

    def unlisted_copies(self, pair: str, source: str, limit: int) -> list[str]:
        listed = exists().where(
            _of_side(pair, source, Listing.SOURCE), MBX_LISTED.c.item_id == MBX_ITEMS.c.source_id
        )
        query = (
            select(MBX_ITEMS.c.source_id)
            .where(of_source(MBX_ITEMS, pair, source), ~listed)
            .order_by(MBX_ITEMS.c.source_id)
            .limit(limit)
        )
        with self._transaction() as conn:
            return [row.source_id for row in conn.execute(query)]

    def forget_listed(self, pair: str, source: str, sides: Collection[Listing]) -> None:
        with self._transaction(write=True) as conn:
            conn.execute(
                delete(MBX_LISTED).where(
                    of_source(MBX_LISTED, pair, source),
                    MBX_LISTED.c.side.in_([str(side) for side in sides]),
                )
            )

    # -- failures ------------------------------------------------------------------------------

    def mailbox_failures(self, pair: str, source: str) -> dict[str, str]:
        return self._failures(MBX_FAILURES, "source_id", pair, source)

    def set_mailbox_failures(self, pair: str, source: str, failures: Mapping[str, str]) -> None:
        self._replace_failures(MBX_FAILURES, "source_id", pair, source, failures)


def _of_side(pair: str, source: str, side: Listing) -> ColumnElement[bool]:
    return of_source(MBX_LISTED, pair, source) & (MBX_LISTED.c.side == str(side))


def _recorded(pair: str, source: str) -> ColumnElement[bool]:
    """The listed target entry is a row's copy (``mbx_items_target`` answers)."""
    return exists().where(
        of_source(MBX_ITEMS, pair, source), MBX_ITEMS.c.target_id == MBX_LISTED.c.item_id
    )


def _copy(r: Row[Any]) -> Copy:
    return Copy(r.source_id, r.source_change_key, r.target_id, r.target_change_key, r.key)


def _listed_entry(r: Row[Any]) -> MailboxEntry:
    return MailboxEntry(r.item_id, r.change_key or "", r.item_class or "", r.size, r.key)


def _listed_rows(
    pair: str, source: str, side: Listing, entries: Sequence[tuple[str, MailboxEntry | None]]
) -> list[dict[str, object]]:
    return [
        {
            "pair": pair,
            "source": source,
            "side": str(side),
            "item_id": item_id,
            "change_key": e.change_key if e is not None else None,
            "item_class": e.item_class if e is not None else None,
            "size": e.size if e is not None else None,
            "key": e.key if e is not None else None,
            "claimed": 0,
        }
        for item_id, e in entries
    ]


def _upsert_listed(conn: Connection, rows: list[dict[str, object]]) -> None:
    unique = {tuple(row[k] for k in _LISTED_KEYS): row for row in rows}
    upsert(conn, MBX_LISTED, list(unique.values()), _LISTED_KEYS)


def _intent(row: Row[Any]) -> ImportIntent:
    try:
        mode = Mode(row.mode)
    except ValueError:
        raise StateError(f"an import intent of unknown mode {row.mode!r} in the state") from None
    return ImportIntent(
        row.source_id,
        row.source_change_key,
        row.target_folder,
        row.key,
        mode,
        row.target_id,
        row.target_change_key,
        row.size,
    )


def _doubt(row: Row[Any]) -> Doubt:
    try:
        workload = Workload(row.workload)
    except ValueError:
        raise StateError(f"a doubt of unknown workload {row.workload!r} in the state") from None
    return Doubt(row.source, workload, EntryProblem(row.folder, row.source_id, row.reason))


def _doubt_rows(pair: str, doubts: Sequence[Doubt]) -> list[dict[str, object]]:
    """Each under its own source folder."""
    return [
        {
            "pair": pair,
            "source": d.source,
            "source_id": d.problem.item,
            "folder": d.problem.folder,
            "workload": str(d.workload),
            "reason": d.problem.reason,
        }
        for d in doubts
    ]


def _copy_rows(pair: str, source: str, rows: Sequence[Copy]) -> list[dict[str, object]]:
    return [
        {
            "pair": pair,
            "source": source,
            "source_id": c.source_id,
            "source_change_key": c.source_change_key,
            "target_id": c.target_id,
            "target_change_key": c.target_change_key,
            "key": c.key,
        }
        for c in rows
    ]


def _delete_ids(conn: Connection, table: Table, pair: str, source: str, ids: Sequence[str]) -> None:
    wanted = list(dict.fromkeys(ids))
    for start in range(0, len(wanted), ID_CHUNK):
        chunk = wanted[start : start + ID_CHUNK]
        conn.execute(
            delete(table).where(of_source(table, pair, source), table.c.source_id.in_(chunk))
        )
