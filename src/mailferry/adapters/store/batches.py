"""The migration service's tables: endpoints, batches, mailboxes, runs, per-message failures.

They live in the same database as the sync state (one file to back up, one place to look), in
their own tables (``tables``), with their own row in ``meta`` (application ``mailferry.batches``,
see ``schema``) so their schema evolves apart from the sync state's. Every method is one
transaction on the file's shared ``Database``; passwords arrive here already encrypted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from mailferry.adapters.store import schema
from mailferry.adapters.store.engine import Database, open_database, sqlite_url
from mailferry.adapters.store.progress import folder_progress
from mailferry.adapters.store.records import (
    BatchRecord,
    EndpointRecord,
    FailureRecord,
    FolderProgress,
    MailboxRecord,
    Outcome,
    as_row,
    batch_record,
    endpoint_record,
    failure_record,
    mailbox_record,
    mailbox_row,
)
from mailferry.adapters.store.sqlstore import open_store
from mailferry.adapters.store.tables import BATCH_FAILURES as FAILURES
from mailferry.adapters.store.tables import BATCHES, ENDPOINTS, MAILBOXES, RUNS, SERVICES
from mailferry.adapters.store.workers import WorkerTable
from mailferry.domain.errors import Conflict, StateError
from mailferry.domain.model import MailboxState


class BatchStore:
    """The service's persistence; every method is one transaction and translates DB errors."""

    def __init__(self, db: Database) -> None:
        """Takes one use of ``db`` (released by ``close``)."""
        self.db = db
        self._closed = False
        open_store(db, schema.BATCHES)
        self.workers = WorkerTable(db)  # the workers on a shared database (``mailferry worker``)

    @classmethod
    def open_sqlite(cls, path: Path) -> BatchStore:
        """Open (creating it if need be) the state file, then this store's tables in it."""
        return cls(open_database(sqlite_url(path)))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.db.release()

    def _tx(self, *, write: bool = False) -> AbstractContextManager[Connection]:
        if self._closed:
            raise StateError(f"state database {self.db.where} is closed")
        return self.db.transaction(write=write)

    # -- endpoints ---------------------------------------------------------------------------------
    def add_endpoint(self, record: EndpointRecord, *, replace: bool = False) -> None:
        row = as_row(record)
        try:
            with self._tx(write=True) as conn:
                if replace:
                    conn.execute(
                        update(ENDPOINTS).where(ENDPOINTS.c.name == record.name).values(row)
                    )
                else:
                    conn.execute(ENDPOINTS.insert(), row)
        except StateError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise Conflict(f"endpoint {record.name!r} exists already") from None
            raise

    def endpoint(self, name: str) -> EndpointRecord | None:
        with self._tx() as conn:
            row = conn.execute(select(ENDPOINTS).where(ENDPOINTS.c.name == name)).one_or_none()
        return None if row is None else endpoint_record(row._asdict())

    def endpoints(self) -> list[EndpointRecord]:
        with self._tx() as conn:
            rows = conn.execute(select(ENDPOINTS).order_by(ENDPOINTS.c.name)).all()
        return [endpoint_record(row._asdict()) for row in rows]

    def remove_endpoint(self, name: str) -> bool:
        used = select(BATCHES.c.name).where((BATCHES.c.source == name) | (BATCHES.c.target == name))
        with self._tx(write=True) as conn:
            users = list(conn.scalars(used))
            if users:
                raise Conflict(f"endpoint {name!r} is used by batch(es) {', '.join(users)}")
            return conn.execute(delete(ENDPOINTS).where(ENDPOINTS.c.name == name)).rowcount > 0

    # -- batches -----------------------------------------------------------------------------------
    def create_batch(self, batch: BatchRecord, mailboxes: Sequence[MailboxRecord]) -> None:
        row = as_row(batch)
        row["options"] = json.dumps(batch.options, sort_keys=True)
        try:
            with self._tx(write=True) as conn:
                conn.execute(BATCHES.insert(), row)
                conn.execute(MAILBOXES.insert(), [mailbox_row(m) for m in mailboxes])
        except StateError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise Conflict(f"batch {batch.name!r} exists already") from None
            raise

    def batch(self, name: str) -> BatchRecord | None:
        with self._tx() as conn:
            row = conn.execute(select(BATCHES).where(BATCHES.c.name == name)).one_or_none()
        return None if row is None else batch_record(row._asdict())

    def batches(self) -> list[BatchRecord]:
        with self._tx() as conn:
            rows = conn.execute(select(BATCHES).order_by(BATCHES.c.created)).all()
        return [batch_record(row._asdict()) for row in rows]

    def delete_batch(self, name: str) -> None:
        with self._tx(write=True) as conn:
            for table in (FAILURES, RUNS, MAILBOXES):
                conn.execute(delete(table).where(table.c.batch == name))
            conn.execute(delete(BATCHES).where(BATCHES.c.name == name))

    def set_batch(self, name: str, **values: Any) -> None:
        with self._tx(write=True) as conn:
            conn.execute(update(BATCHES).where(BATCHES.c.name == name).values(**values))

    # -- mailboxes ---------------------------------------------------------------------------------
    def mailboxes(
        self,
        batch: str | None = None,
        *,
        pending_only: bool = False,
        email: str | None = None,
        after: tuple[str, int] | None = None,
        limit: int | None = None,
    ) -> list[MailboxRecord]:
        """Mailboxes in (batch, line) order; ``after`` (batch, line) and ``limit``: one page of
        them (keyset paging, so a scheduler's tick reads only as many as it can start)."""
        m = MAILBOXES.c
        query = select(MAILBOXES).order_by(m.batch, m.line)
        if batch is not None:
            query = query.where(m.batch == batch)
        if pending_only:
            query = query.where(m.pending.is_not(None))
        if email is not None:
            query = query.where(m.email == email)
        if after is not None:
            query = query.where(
                or_(m.batch > after[0], and_(m.batch == after[0], m.line > after[1]))
            )
        if limit is not None:
            query = query.limit(limit)
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return [mailbox_record(row._asdict()) for row in rows]

    def request(
        self,
        batch: str,
        pending: str | None,
        states: Sequence[str],
        *,
        state: str | None = None,
        emails: Sequence[str] | None = None,
    ) -> int:
        """Set ``pending`` (and ``state``) on the batch's mailboxes in ``states`` (and ``emails``)."""
        values: dict[str, Any] = {"pending": pending}
        if state is not None:
            values["state"] = state
        statement = (
            update(MAILBOXES)
            .where(MAILBOXES.c.batch == batch, MAILBOXES.c.state.in_(list(states)))
            .values(**values)
        )
        if emails is not None:
            statement = statement.where(MAILBOXES.c.email.in_(list(emails)))
        with self._tx(write=True) as conn:
            return int(conn.execute(statement).rowcount)

    def unowned_request(self, batch: str, pending: str | None, state: str, live: set[str]) -> int:
        """Like ``request`` for every mailbox not run by a live process (``stop``)."""
        with self._tx(write=True) as conn:
            rows = conn.execute(
                select(MAILBOXES.c.email, MAILBOXES.c.owner).where(
                    MAILBOXES.c.batch == batch, MAILBOXES.c.pending.is_not(None)
                )
            ).all()
            changed = 0
            for row in rows:
                if row.owner is not None and row.owner in live:
                    continue
                # Still the owner it was read with: on PostgreSQL (no BEGIN IMMEDIATE) a worker
                # may have claimed the mailbox since the SELECT, and keeps it.
                same_owner = (
                    MAILBOXES.c.owner.is_(None)
                    if row.owner is None
                    else MAILBOXES.c.owner == row.owner
                )
                result = conn.execute(
                    update(MAILBOXES)
                    .where(MAILBOXES.c.batch == batch, MAILBOXES.c.email == row.email, same_owner)
                    .values(pending=pending, state=state, owner=None)
                )
                changed += result.rowcount
        return changed

    def claim(self, batch: str, email: str, owner: str, previous: str | None, now: float) -> bool:
        """Take a pending mailbox for ``owner``; False if somebody else got it first."""
        mb = MAILBOXES.c
        taken = mb.owner.is_(None) if previous is None else mb.owner == previous
        with self._tx(write=True) as conn:
            pending = conn.scalar(
                select(mb.pending).where(mb.batch == batch, mb.email == email, taken)
            )
            if pending is None:
                return False
            result = conn.execute(
                update(MAILBOXES)
                .where(mb.batch == batch, mb.email == email, taken)
                .values(
                    owner=owner,
                    heartbeat=now,
                    state=MailboxState.COMPLETING
                    if pending == "complete"
                    else MailboxState.SYNCING,
                    reason=None,
                    started=now,
                    finished=None,
                    planned=0,
                    planned_bytes=0,
                    done=0,
                    done_bytes=0,
                )
            )
            return bool(result.rowcount == 1)

    def progress(self, batch: str, email: str, owner: str, now: float, **counts: int) -> bool:
        """Record a running mailbox's progress; True when it must stop: its batch was asked to,
        or ``owner`` no longer holds it (taken over by another worker while this one was cut off
        or frozen past the stall timeout: two writers on one mailbox must not go on)."""
        mb = MAILBOXES.c
        with self._tx(write=True) as conn:
            held = conn.execute(
                update(MAILBOXES)
                .where(mb.batch == batch, mb.email == email, mb.owner == owner)
                .values(heartbeat=now, **counts)
            ).rowcount
            stop = conn.scalar(select(BATCHES.c.stop_requested).where(BATCHES.c.name == batch))
        return bool(stop) or held == 0

    def finish(self, batch: str, email: str, owner: str, outcome: Outcome) -> bool:
        """Record a run's end on its mailbox (if ``owner`` still holds it), its run row and failures.
        True once committed; False when nothing was recorded (not held, or the batch deleted)."""
        mb = MAILBOXES.c
        summary = outcome.summary
        with self._tx(write=True) as conn:
            current = conn.execute(
                select(mb.copied, mb.bytes, mb.seconds, mb.pending, mb.items_copied, mb.workloads)
                .where(mb.batch == batch, mb.email == email, mb.owner == owner)
                .with_for_update()  # PostgreSQL: the totals below add to what no one else changes
            ).one_or_none()
            if current is None:
                return False  # the batch was deleted meanwhile, or another owner holds it
            values: dict[str, Any] = {
                "state": outcome.state,
                "reason": outcome.reason,
                "owner": None,
                "finished": outcome.finished,
                "copied": current.copied + int(summary.get("messages_copied", 0)),
                "bytes": current.bytes + int(summary.get("bytes_copied", 0)),
                "seconds": current.seconds + (outcome.finished - outcome.started),
                "folders": int(summary.get("folders", 0)),
                "existing": int(summary.get("messages_skipped_existing", 0)),
                "skipped": int(summary.get("messages_skipped_deleted", 0))
                + int(summary.get("messages_skipped_filtered", 0)),
                "errors": len(outcome.failures),
            }
            values.update(item_values(summary.get("dav"), current.items_copied))
            values.update(
                workload_values(summary.get("workloads"), current.workloads, summary.get("notes"))
            )
            if not outcome.keep_pending:
                values["pending"] = None
            if outcome.state in (MailboxState.SYNCED, MailboxState.COMPLETED):
                values["last_synced"] = outcome.finished
            conn.execute(
                update(MAILBOXES).where(mb.batch == batch, mb.email == email).values(**values)
            )
            conn.execute(
                RUNS.insert(),
                {
                    "batch": batch,
                    "email": email,
                    "kind": outcome.kind,
                    "started": outcome.started,
                    "finished": outcome.finished,
                    "outcome": outcome.state,
                    "summary": json.dumps(summary, ensure_ascii=False),
                },
            )
            if not outcome.keep_pending:
                conn.execute(
                    delete(FAILURES).where(FAILURES.c.batch == batch, FAILURES.c.email == email)
                )
                rows = [{"batch": batch, **as_row(f)} for f in outcome.failures]
                if rows:
                    conn.execute(FAILURES.insert(), rows)
        return True

    def failures(self, batch: str) -> list[FailureRecord]:
        f = FAILURES.c
        columns = (f.email, f.folder, f.uid, f.reason, f.kind, f.href, f.item_uid)
        query = select(*columns).where(f.batch == batch).order_by(f.id)
        with self._tx() as conn:
            return [failure_record(row._asdict()) for row in conn.execute(query)]

    def runs(self, batch: str) -> list[dict[str, Any]]:
        query = select(RUNS).where(RUNS.c.batch == batch).order_by(RUNS.c.id)
        with self._tx() as conn:
            return [row._asdict() for row in conn.execute(query)]

    # -- liveness ----------------------------------------------------------------------------------
    def heartbeat(self, owner: str, now: float, *, service: bool) -> None:
        """Refresh the owner's claims (and its service row, for ``mailferry serve``)."""
        with self._tx(write=True) as conn:
            conn.execute(update(MAILBOXES).where(MAILBOXES.c.owner == owner).values(heartbeat=now))
            if service:
                found = conn.execute(
                    update(SERVICES).where(SERVICES.c.owner == owner).values(heartbeat=now)
                ).rowcount
                if not found:
                    conn.execute(SERVICES.insert(), {"owner": owner, "heartbeat": now})

    def services(self) -> list[tuple[str, float]]:
        with self._tx() as conn:
            return [(r.owner, r.heartbeat) for r in conn.execute(select(SERVICES))]

    def forget_service(self, owner: str) -> None:
        with self._tx(write=True) as conn:
            conn.execute(delete(SERVICES).where(SERVICES.c.owner == owner))

    # -- the sync state's side of a mailbox ----------------------------------------------------------
    def folder_progress(self, pair: str) -> list[FolderProgress]:
        """Per-folder counts of the migration ``pair`` (``config.pair_key``) in the sync state."""
        return folder_progress(self.db, pair)


def item_values(dav: dict[str, Any] | None, copied_before: int | None) -> dict[str, Any]:
    """A mailbox row's calendar and contact counters from a run's ``DavSummary.as_json()``
    (none: the run had no calendar and contact pass, the row keeps what it had)."""
    if not dav:
        return {}
    return {
        "collections": len(dav.get("collections") or ()),
        "items_copied": (copied_before or 0) + int(dav.get("items_copied", 0)),
        "items_updated": int(dav.get("items_updated", 0)),
        "items_skipped": int(dav.get("items_skipped_existing", 0)),
        "items_failed": int(dav.get("items_failed", 0)),
        "item_conflicts": len(dav.get("item_conflicts") or ()),
    }


_LISTS = ("failures", "not_recognisable")  # kept with the run and as failure rows, not on the row


def workload_values(
    sections: dict[str, Any] | None, before: str | None, notes: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A mailbox row's per-workload sections from a run's ``workloads`` (none: the row keeps
    what it had): the run's counters, each with ``copied_total``, its copies over all passes.
    The failures themselves are the failure rows'. The run's ``notes`` (messages a file source
    handed out not as it holds them: rebuilt, dated from the last resort) go into the mail
    section, counted by reason over all folders."""
    if not sections:
        return {}
    old = json.loads(before) if before else {}
    found = {}
    for name, section in sections.items():
        total = int((old.get(name) or {}).get("copied_total", 0))
        counters = {k: v for k, v in section.items() if k not in _LISTS}
        found[name] = {**counters, "copied_total": total + int(section.get("copied", 0))}
    if notes and "mail" in found:
        counted: dict[str, int] = {}
        for note in notes:
            counted[note["reason"]] = counted.get(note["reason"], 0) + int(note["messages"])
        found["mail"]["notes"] = counted
    return {"workloads": json.dumps(found, ensure_ascii=False)}
