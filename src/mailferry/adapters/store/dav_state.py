"""The durable ``ItemStateStore``: the state of calendars and contacts, in the one state database.

Built like the mail state (``sync_state``), and able to share its file and its ``Database``: every
method is one explicit transaction (writes under ``BEGIN IMMEDIATE`` on SQLite, with
``synchronous=FULL``); batches are one executemany, deletions by href go in ``IN`` lists of at most
``HREF_CHUNK`` hrefs, so a collection of 100,000 items costs a few hundred statements, never one per
item. Every SQLAlchemy error becomes ``StateError`` at the boundary (``Database.transaction``).

What a crash leaves: an intent is written (``add_item_intents``, durable when it returns) before the
PUT it announces, and resolved into ``dav_items`` only once the target answered (``resolve_items``:
the intents' deletion and the rows' upsert are one transaction, so a crash leaves either the intent
or the row, never neither). A crash in between leaves the intent, with the target href and the
item's key, which the next pass settles against the target before it writes that item again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, Row, Table, delete, select

from mailferry.adapters.store import schema
from mailferry.adapters.store.sqlstore import SqlStore, of_source, upsert_unique
from mailferry.adapters.store.tables import (
    DAV_COLLECTIONS,
    DAV_FAILURES,
    DAV_IDENTITIES,
    DAV_INTENTS,
    DAV_ITEMS,
)
from mailferry.adapters.store.upserts import upsert
from mailferry.domain.davplan import Listed, Recorded
from mailferry.domain.davports import CollectionState, ItemIntent
from mailferry.domain.errors import StateError
from mailferry.domain.items import ItemKey

SCHEMA_VERSION = schema.ITEMS.version
HREF_CHUNK = 500  # hrefs per IN (...) list; SQLite allowed 999 variables before 3.32
SIDES = frozenset({"source", "target"})

_SOURCE_TABLES = (DAV_ITEMS, DAV_INTENTS, DAV_FAILURES, DAV_COLLECTIONS)
_ITEM_KEYS = ("pair", "source", "source_href")


class SqlItemStateStore(SqlStore):
    """``ItemStateStore`` on a shared ``Database``: ``open_sqlite(path)`` on the mail state's file
    gives the same Engine as its ``SqlStateStore`` (one ``Database`` per process and file)."""

    component = schema.ITEMS

    # -- collections ---------------------------------------------------------------------------

    def collection_state(self, pair: str, source: str) -> CollectionState | None:
        query = select(DAV_COLLECTIONS).where(of_source(DAV_COLLECTIONS, pair, source))
        with self._transaction() as conn:
            row = conn.execute(query).one_or_none()
        if row is None:
            return None
        return CollectionState(row.source, row.target, row.source_token, row.target_token)

    def save_collection_state(self, pair: str, state: CollectionState) -> None:
        row: dict[str, object] = {
            "pair": pair,
            "source": state.source,
            "target": state.target,
            "source_token": state.source_token,
            "target_token": state.target_token,
        }
        with self._transaction(write=True) as conn:
            upsert(conn, DAV_COLLECTIONS, [row], ("pair", "source"))

    def forget_collection(self, pair: str, source: str) -> None:
        """Every row of the source collection, and the identity caches of it (source side) and of
        the target collection it is mapped to (target side), in one transaction."""
        mapped = select(DAV_COLLECTIONS.c.target).where(of_source(DAV_COLLECTIONS, pair, source))
        with self._transaction(write=True) as conn:
            target = conn.scalar(mapped)
            conn.execute(delete(DAV_IDENTITIES).where(_of_side(pair, "source", source)))
            if target is not None:
                conn.execute(delete(DAV_IDENTITIES).where(_of_side(pair, "target", target)))
            for table in _SOURCE_TABLES:
                conn.execute(delete(table).where(of_source(table, pair, source)))

    # -- recorded items ------------------------------------------------------------------------

    def recorded(self, pair: str, source: str) -> list[Recorded]:
        query = (
            select(DAV_ITEMS)
            .where(of_source(DAV_ITEMS, pair, source))
            .order_by(DAV_ITEMS.c.source_href)
        )
        with self._transaction() as conn:
            rows = conn.execute(query).all()
        return [
            Recorded(row.source_href, row.source_etag, _key(row), row.target_href, row.target_etag)
            for row in rows
        ]

    def record(self, pair: str, source: str, rows: Sequence[Recorded]) -> None:
        """Upsert by source href; of one href repeated in ``rows`` the last wins."""
        items = _recorded_rows(pair, source, rows)
        with self._transaction(write=True) as conn:
            upsert_unique(conn, DAV_ITEMS, items, _ITEM_KEYS)

    # -- intents -------------------------------------------------------------------------------

    def add_item_intents(self, pair: str, source: str, intents: Sequence[ItemIntent]) -> None:
        """Durable when this returns (synchronous=FULL). An href's newer intent replaces the old."""
        rows = [
            {
                "pair": pair,
                "source": source,
                "source_href": intent.source_href,
                "source_etag": intent.source_etag,
                **_key_columns(intent.key),
                "target_href": intent.target_href,
                "if_match": intent.if_match,
            }
            for intent in intents
        ]
        with self._transaction(write=True) as conn:
            upsert_unique(conn, DAV_INTENTS, rows, _ITEM_KEYS)

    def item_intents(self, pair: str, source: str) -> list[ItemIntent]:
        query = (
            select(DAV_INTENTS)
            .where(of_source(DAV_INTENTS, pair, source))
            .order_by(DAV_INTENTS.c.source_href)
        )
        with self._transaction() as conn:
            rows = conn.execute(query).all()
        return [
            ItemIntent(row.source_href, row.source_etag, _key(row), row.target_href, row.if_match)
            for row in rows
        ]

    def resolve_items(
        self, pair: str, source: str, done: Sequence[Recorded], dropped: Sequence[str]
    ) -> None:
        """One transaction: the intents of ``done`` and ``dropped`` (source hrefs) go, ``done``
        is upserted into the recorded items; a failure anywhere leaves every intent in place."""
        rows = _recorded_rows(pair, source, done)  # validated before anything is written
        hrefs = [*(row.source_href for row in done), *dropped]
        with self._transaction(write=True) as conn:
            where = of_source(DAV_INTENTS, pair, source)
            _delete_in(conn, DAV_INTENTS, where, DAV_INTENTS.c.source_href, hrefs)
            upsert_unique(conn, DAV_ITEMS, rows, _ITEM_KEYS)

    # -- the identity caches -------------------------------------------------------------------

    def identities(self, pair: str, side: str, collection: str) -> list[Listed]:
        query = (
            select(DAV_IDENTITIES)
            .where(_of_side(pair, _checked(side), collection))
            .order_by(DAV_IDENTITIES.c.href)
        )
        with self._transaction() as conn:
            rows = conn.execute(query).all()
        return [Listed(row.href, row.etag, _key(row)) for row in rows]

    def save_identities(
        self,
        pair: str,
        side: str,
        collection: str,
        listed: Sequence[Listed],
        removed: Sequence[str],
    ) -> None:
        """Delete ``removed`` and upsert ``listed`` (an href in both stays: listed wins)."""
        side = _checked(side)
        rows = [
            {
                "pair": pair,
                "side": side,
                "collection": collection,
                "href": item.href,
                "etag": item.etag,
                **_key_columns(item.key),
            }
            for item in listed
        ]
        keys = ("pair", "side", "collection", "href")
        with self._transaction(write=True) as conn:
            where = _of_side(pair, side, collection)
            _delete_in(conn, DAV_IDENTITIES, where, DAV_IDENTITIES.c.href, removed)
            upsert_unique(conn, DAV_IDENTITIES, rows, keys)

    # -- failures ------------------------------------------------------------------------------

    def item_failures(self, pair: str, source: str) -> dict[str, str]:
        return self._failures(DAV_FAILURES, "source_href", pair, source)

    def set_item_failures(self, pair: str, source: str, failures: Mapping[str, str]) -> None:
        self._replace_failures(DAV_FAILURES, "source_href", pair, source, failures)


def _of_side(pair: str, side: str, collection: str) -> ColumnElement[bool]:
    c = DAV_IDENTITIES.c
    return (c.pair == pair) & (c.side == side) & (c.collection == collection)


def _checked(side: str) -> str:
    if side not in SIDES:
        raise ValueError(f"side must be 'source' or 'target', not {side!r}")
    return side


def _key_columns(key: ItemKey) -> dict[str, object]:
    if key.uid is not None:
        return {"key_kind": "uid", "key": key.uid}
    return {"key_kind": "content", "key": key.content}


def _key(row: Row[Any]) -> ItemKey:
    if row.key_kind == "uid":
        return ItemKey(uid=row.key)
    if row.key_kind == "content":
        return ItemKey(content=row.key)
    raise StateError(f"an item key of unknown kind {row.key_kind!r} in the state database")


def _recorded_rows(pair: str, source: str, rows: Sequence[Recorded]) -> list[dict[str, object]]:
    return [
        {
            "pair": pair,
            "source": source,
            "source_href": row.source_href,
            "source_etag": row.source_etag,
            **_key_columns(row.key),
            "target_href": row.target_href,
            "target_etag": row.target_etag,
        }
        for row in rows
    ]


def _delete_in(
    conn: Connection,
    table: Table,
    where: ColumnElement[bool],
    column: Column[str],
    hrefs: Sequence[str],
) -> None:
    """Delete the rows of ``where`` whose ``column`` is one of ``hrefs``, HREF_CHUNK at a time."""
    wanted = list(dict.fromkeys(hrefs))
    for start in range(0, len(wanted), HREF_CHUNK):
        conn.execute(delete(table).where(where, column.in_(wanted[start : start + HREF_CHUNK])))
