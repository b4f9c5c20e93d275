"""Per-folder progress of one mailbox, read from the sync state (the same file).

The batch tables count per mailbox; what each folder holds lives in the sync state, keyed by
the migration pair (``config.pair_key``, built from the endpoints exactly as the scheduler
builds them). A folder with a checkpoint has finished its last pass; one with copied rows and no
checkpoint is in its first pass. Read-only, and counts only: nothing here reaches IMAP.

TODO: this read model belongs in ``service/batches.py`` (``BatchService.folder_progress``); it
lives here while that module has another owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import URL, Connection, Engine, Table, create_engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from mailferry.adapters.batch_store import EndpointRecord, MailboxRecord
from mailferry.adapters.sqlite_state import CHECKPOINTS, COPIED, FAILURES
from mailferry.config import pair_key
from mailferry.domain.errors import StateError
from mailferry.domain.model import Endpoint, Security


@dataclass(frozen=True)
class FolderProgress:
    source: str
    target: str | None
    copied: int
    failed: int
    pass_finished: bool


class FolderReader:
    def __init__(self, state_path: Path) -> None:
        self._engine: Engine = create_engine(
            URL.create("sqlite+pysqlite", database=str(state_path)),
            connect_args={"timeout": 30},
        )

    def close(self) -> None:
        self._engine.dispose()

    def folders(
        self, source: EndpointRecord, target: EndpointRecord, mailbox: MailboxRecord
    ) -> list[FolderProgress]:
        pair = pair_key(
            _endpoint(source, mailbox.source_user), _endpoint(target, mailbox.target_user)
        )
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(CHECKPOINTS.c.folder, CHECKPOINTS.c.target_folder).where(
                        CHECKPOINTS.c.pair == pair
                    )
                )
                targets: dict[str, str] = {str(r[0]): str(r[1]) for r in rows}
                copied = _counts(conn, COPIED, pair)
                failed = _counts(conn, FAILURES, pair)
        except SQLAlchemyError as exc:
            raise StateError(f"state database: {exc}") from exc
        names = sorted(set(targets) | set(copied) | set(failed), key=str.casefold)
        return [
            FolderProgress(
                source=name,
                target=targets.get(name),
                copied=copied.get(name, 0),
                failed=failed.get(name, 0),
                pass_finished=name in targets,
            )
            for name in names
        ]


def _endpoint(record: EndpointRecord, user: str) -> Endpoint:
    return Endpoint(record.host, record.port, Security(record.security), user)


def _counts(conn: Connection, table: Table, pair: str) -> dict[str, int]:
    rows = conn.execute(
        select(table.c.folder, func.count()).where(table.c.pair == pair).group_by(table.c.folder)
    )
    return {str(row[0]): int(row[1]) for row in rows}
