"""The snapshot a run starts from: both sides' STATUS of the mapped folders, read in a few round
trips (``MailAccount.statuses``), and the state's record of every folder, read in a few queries.

An account of 5,000 folders used to cost every pass a STATUS round trip per folder on each side
and half a dozen queries per folder, even when nothing had changed. With the snapshot, a folder
*unchanged* since its last complete pass costs nothing of its own: no round trip, no query, no
checkpoint rewritten.

Why a snapshot that may be stale is safe: it only ever decides that a folder is unchanged, and
only when its source STATUS equals the checkpoint of its last complete pass (UIDVALIDITY, UIDNEXT
and HIGHESTMODSEQ: no message arrived, none left, no flag changed; so CONDSTORE sources only), the
target folder still has the checkpoint's UIDVALIDITY, the selection is the same, and the state
holds no intent in flight and no failure for it. A change made after the snapshot was read is one
the pass would have missed too had it read STATUS a moment earlier; the checkpoint is not
rewritten, so the next pass sees it. Every other folder is planned as before, from a STATUS read
when its turn comes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mailferry.domain.folders import FolderMapping, FolderPlan
from mailferry.domain.model import FolderStatus
from mailferry.domain.ports import FolderRecord, MailAccount


@dataclass(frozen=True)
class Snapshot:
    source: Mapping[str, FolderStatus] = field(default_factory=dict)  # by source folder
    target: Mapping[str, FolderStatus] = field(default_factory=dict)  # by target folder
    records: Mapping[str, FolderRecord] = field(default_factory=dict)  # by source folder
    # Target folders whose status was read for a first pass: no record, one source folder each.
    fresh_targets: frozenset[str] = frozenset()

    def first_pass_target(self, mapping: FolderMapping) -> FolderStatus | None:
        """The target's status read for the first pass over ``mapping`` (see ``target_statuses``),
        or None: the pass reads it itself."""
        if mapping.source.name in self.records or mapping.target not in self.fresh_targets:
            return None
        return self.target.get(mapping.target)

    def unchanged(
        self, mapping: FolderMapping, selection: str
    ) -> tuple[FolderStatus, FolderStatus, int] | None:
        """(source status, target status, messages copied) of a folder that needs no pass, else
        None (see the module docstring for what "unchanged" takes)."""
        name = mapping.source.name
        record = self.records.get(name)
        src = self.source.get(name)
        tgt = self.target.get(mapping.target)
        if record is None or record.pending or src is None or tgt is None:
            return None
        point = record.checkpoint
        same = (
            point.complete
            and point.target_folder == mapping.target
            and point.selection == selection
            and point.source_uidvalidity == src.uidvalidity
            and point.source_uidnext == src.uidnext
            and src.highestmodseq is not None
            and point.source_modseq == src.highestmodseq
            and point.target_uidvalidity == tgt.uidvalidity
        )
        return (src, tgt, record.copied) if same else None


def source_statuses(source: MailAccount, plan: FolderPlan) -> dict[str, FolderStatus]:
    """Source STATUS of every mapped folder (its size orders the lanes of a first pass), read
    while the target's folders are created and their statuses read (``Migration._start``)."""
    mappings = plan.mappings
    return source.statuses([m.source.name for m in mappings]) if mappings else {}


def target_statuses(
    target: MailAccount,
    plan: FolderPlan,
    records: Mapping[str, FolderRecord],
    source_condstore: bool,
) -> tuple[dict[str, FolderStatus], frozenset[str]]:
    """Target STATUS, in one command, of the folders that may be unchanged (a CONDSTORE source,
    a complete pass) and of those a first pass goes to, read after they were created (a folder
    two source folders go to is left out: the second pass reads it after the first wrote); and
    the latter's names (``Snapshot.fresh_targets``). Nothing here waits for the source: the
    source's statuses are read at the same time, on its own session (``Migration._start``), so a
    no-op pass waits for the slower side, not for both in turn. ``records``:
    ``StateStore.folder_records``, read before the folders were mapped."""
    mappings = plan.mappings
    candidates = [
        m.target
        for m in mappings
        if source_condstore
        and (record := records.get(m.source.name)) is not None
        and record.checkpoint.complete
        and not record.pending
    ]
    fresh = frozenset(
        m.target
        for m in mappings
        if m.source.name not in records and len(plan.sharing(m.target)) == 1
    )
    wanted = list(dict.fromkeys([*candidates, *sorted(fresh)]))
    return (target.statuses(wanted) if wanted else {}), fresh
