"""Per-folder progress of one migration pair, read from the sync state (the same file).

The batch tables count per mailbox; what each folder holds lives in the sync state, keyed by the
migration pair (``config.pair_key``). A folder with a checkpoint has finished its last pass; one
with copied rows and no checkpoint is in its first pass. Read-only, and counts only.
"""

from __future__ import annotations

from sqlalchemy import select

from mailferry.adapters.store.engine import Database
from mailferry.adapters.store.records import FolderProgress
from mailferry.adapters.store.sqlstore import folder_counts
from mailferry.adapters.store.tables import CHECKPOINTS, COPIED, FAILURES


def folder_progress(db: Database, pair: str) -> list[FolderProgress]:
    """Every folder the sync state knows for ``pair``, by name (case-insensitively)."""
    with db.transaction() as conn:
        rows = conn.execute(
            select(CHECKPOINTS.c.folder, CHECKPOINTS.c.target_folder).where(
                CHECKPOINTS.c.pair == pair
            )
        )
        targets: dict[str, str] = {str(r[0]): str(r[1]) for r in rows}
        copied = folder_counts(conn, COPIED, pair)
        failed = folder_counts(conn, FAILURES, pair)
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
