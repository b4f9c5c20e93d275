"""A batch's mailboxes a page at a time, and their totals by aggregate queries.

A batch of 10,000 mailboxes read whole costs half a second before anything is shown (rows, then
records); the batch page, the API and ``batch status`` show one page, filtered, and totals that
SQL adds up. What a mailbox's *shown* state is depends on whether its owner process lives, which
the database cannot know: the caller passes the owners it judged alive (``live``), and a mailbox
is *queued* when a pass is pending and no live owner runs it (``service.batches.MailboxView``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, not_, or_, select, true

from mailferry.adapters.store.engine import Database
from mailferry.adapters.store.records import FailureRecord, MailboxRecord, failure_record
from mailferry.adapters.store.records import mailbox_record as to_record
from mailferry.adapters.store.tables import BATCH_FAILURES as FAILURES
from mailferry.adapters.store.tables import MAILBOXES

M = MAILBOXES.c
QUEUED = "queued"


@dataclass(frozen=True)
class MailboxGroup:
    """Mailboxes of one stored state, pending or not, with one owner (or none)."""

    state: str
    pending: bool
    owner: str | None
    heartbeat: float | None  # the latest of the group's
    count: int
    copied: int
    bytes: int
    items: int


@dataclass(frozen=True)
class MailboxFilter:
    """Which mailboxes a page shows; ``state`` is a shown state (``queued`` included)."""

    state: str | None = None
    errors: bool | None = None  # True: failed messages or items, or a failed state; False: none
    search: str = ""  # a part of the address, any case


def mailbox_groups(db: Database, batch: str) -> list[MailboxGroup]:
    """One aggregate query: a row per (state, pending, owner), a handful for any batch size."""
    pending = M.pending.is_not(None).label("is_pending")
    query = (
        select(
            M.state,
            pending,
            M.owner,
            func.max(M.heartbeat),
            func.count(),
            func.coalesce(func.sum(M.copied), 0),
            func.coalesce(func.sum(M.bytes), 0),
            func.coalesce(func.sum(M.items_copied), 0),
        )
        .where(M.batch == batch)
        .group_by(M.state, pending, M.owner)
    )
    with db.transaction() as conn:
        rows = conn.execute(query).all()
    return [
        MailboxGroup(r[0], bool(r[1]), r[2], r[3], int(r[4]), int(r[5]), int(r[6]), int(r[7]))
        for r in rows
    ]


def mailbox_page(
    db: Database,
    batch: str,
    chosen: MailboxFilter,
    live: Collection[str],
    *,
    offset: int,
    limit: int,
) -> tuple[int, list[MailboxRecord]]:
    """(how many match, the ``limit`` of them from ``offset``), in CSV line order."""
    where = and_(M.batch == batch, _condition(chosen, live))
    page = select(MAILBOXES).where(where).order_by(M.line).offset(offset).limit(limit)
    with db.transaction() as conn:
        total = int(conn.execute(select(func.count()).where(where)).scalar_one())
        rows = conn.execute(page).all()
    return total, [to_record(row._asdict()) for row in rows]


def owned_mailboxes(db: Database, batch: str, owners: Collection[str]) -> list[MailboxRecord]:
    """The mailboxes these owners hold (the running ones: their progress is shown)."""
    if not owners:
        return []
    query = select(MAILBOXES).where(M.batch == batch, M.owner.in_(list(owners))).order_by(M.line)
    with db.transaction() as conn:
        return [to_record(row._asdict()) for row in conn.execute(query)]


def mailbox_chunks(db: Database, batch: str, size: int = 500) -> Iterator[list[MailboxRecord]]:
    """Every mailbox in line order, ``size`` at a time (keyset: each chunk one short query),
    so that a report of any batch is written with flat memory."""
    after = -1
    while True:
        query = (
            select(MAILBOXES).where(M.batch == batch, M.line > after).order_by(M.line).limit(size)
        )
        with db.transaction() as conn:
            chunk = [to_record(row._asdict()) for row in conn.execute(query)]
        if not chunk:
            return
        yield chunk
        after = chunk[-1].line


def failures_of(db: Database, batch: str, emails: Collection[str]) -> list[FailureRecord]:
    """The per-message failures of these mailboxes of the batch, in the order recorded."""
    if not emails:
        return []
    f = FAILURES.c
    columns = (f.email, f.folder, f.uid, f.reason, f.kind, f.href, f.item_uid)
    query = select(*columns).where(f.batch == batch, f.email.in_(list(emails))).order_by(f.id)
    with db.transaction() as conn:
        return [failure_record(row._asdict()) for row in conn.execute(query)]


def _condition(chosen: MailboxFilter, live: Collection[str]) -> ColumnElement[bool]:
    queued = and_(M.pending.is_not(None), or_(M.owner.is_(None), M.owner.not_in(list(live))))
    parts: list[ColumnElement[bool]] = [true()]
    if chosen.state == QUEUED:
        parts.append(queued)
    elif chosen.state:
        parts.append(and_(M.state == chosen.state, not_(queued)))
    if chosen.errors is not None:
        failed = or_(M.errors > 0, func.coalesce(M.items_failed, 0) > 0, M.state == "failed")
        parts.append(failed if chosen.errors else not_(failed))
    if chosen.search:
        pattern = "%" + _escaped(chosen.search.strip().lower()) + "%"
        parts.append(func.lower(M.email).like(pattern, escape="\\"))
    return and_(*parts)


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
