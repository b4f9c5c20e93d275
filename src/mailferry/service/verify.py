"""Compare a source and a target after mapping: folders, message counts, content hashes, flags and dates.

Independent of the state database: it reads both accounts and trusts nothing we recorded. What it
compares goes through a temporary file (see verifytally), so its memory does not grow with the
folders; the report lists the first differences of each folder in detail and counts the rest.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from mailferry.domain.errors import FolderError, MessageError
from mailferry.domain.folders import FolderMapping, FolderPlan
from mailferry.domain.identity import epoch
from mailferry.domain.labels import LabelPolicy
from mailferry.domain.plan import Selection, target_flags
from mailferry.domain.ports import MailAccount
from mailferry.service.verifytally import Difference, PrintTally, decode_flags, encode_flags

CHUNK = 1000  # messages per write to the tally, and per body fetch
DETAIL = 100  # differences of one folder listed one by one; the rest are counted

# A message as verify sees it: (sha256, INTERNALDATE in epoch seconds, flags as the target should
# hold them, one per line)
Fingerprint = tuple[str, int, str]


@dataclass
class FolderDiff:
    source: str
    target: str
    source_count: int = 0
    target_count: int = 0
    problems: list[str] = field(default_factory=list)
    elsewhere: int = 0  # source messages found in another target folder (labels copied once)


@dataclass
class VerifyReport:
    folders: list[FolderDiff] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not any(f.problems for f in self.folders)

    def lines(self) -> Iterator[str]:
        for diff in self.folders:
            mark = "ok  " if not diff.problems else "DIFF"
            also = f" (+{diff.elsewhere} in other label folders)" if diff.elsewhere else ""
            yield (
                f"{mark} {diff.source} -> {diff.target}: "
                f"{diff.source_count} source, {diff.target_count} target{also}"
            )
            for problem in diff.problems:
                yield f"     {problem}"


def verify(
    source: MailAccount,
    target: MailAccount,
    plan: FolderPlan,
    selection: Selection | None = None,
    labels: LabelPolicy | None = None,
) -> VerifyReport:
    """Compare every mapped folder of ``plan`` (see migrate.plan_folders) on both accounts.

    With ``labels`` (a source whose folders are labels), a folder that leaves out messages whose
    copy stands elsewhere may miss exactly those: a message it lacks must then be in another
    target folder of the plan.
    """
    selection = selection or Selection()
    existing = {f.name for f in target.list_folders()}
    report = VerifyReport()
    by_target: dict[str, list[FolderMapping]] = {}
    for folder in plan.mappings:
        by_target.setdefault(folder.target, []).append(folder)
    compared: list[tuple[int, FolderDiff, bool]] = []
    with PrintTally.open() as tally:
        for slot, (target_name, mappings) in enumerate(by_target.items()):
            diff = FolderDiff(" + ".join(m.source.name for m in mappings), target_name)
            report.folders.append(diff)
            if target_name not in existing and target_name.upper() != "INBOX":
                diff.problems.append("target folder is missing")
                continue
            try:
                _read_folder(tally, slot, (source, target), mappings, target_name, selection)
            except (
                FolderError
            ) as exc:  # reported as such: a folder that cannot be read is no empty one
                tally.forget(slot)
                diff.problems.append(f"not compared: {exc}")
                continue
            dedupes = labels is not None and any(labels.dedupes(m) for m in mappings)
            compared.append((slot, diff, dedupes))
        tally.count(elsewhere=any(dedupes for _, _, dedupes in compared))
        for slot, diff, dedupes in compared:
            diff.source_count, diff.target_count, diff.elsewhere = tally.totals(
                slot, elsewhere=dedupes
            )
            diff.problems.extend(_compare(tally.differences(slot, elsewhere=dedupes)))
    return report


def _read_folder(
    tally: PrintTally,
    slot: int,
    accounts: tuple[MailAccount, MailAccount],
    mappings: list[FolderMapping],
    target_name: str,
    selection: Selection,
) -> None:
    """Into ``tally``: what the source folders mapped to ``target_name`` hold, and what the target
    folder holds."""
    source, target = accounts
    permanent = target.permanent_flags(target_name)
    by_content = target.keeps_bytes
    for m in mappings:
        part = tally.part(slot, target=False)
        _read_side(tally, part, source, m.source.name, permanent, selection, by_content=by_content)
    part = tally.part(slot, target=True)
    every = frozenset({"\\*"})
    _read_side(
        tally, part, target, target_name, every, selection, by_content=by_content, whole=True
    )


def _read_side(
    tally: PrintTally,
    part: int,
    account: MailAccount,
    folder: str,
    permanent: frozenset[str],
    selection: Selection,
    *,
    by_content: bool,
    whole: bool = False,
) -> None:
    """(identity, date, flags) of every message of ``folder`` that ``selection`` takes (``whole``:
    every message, on the target). The identity is the SHA-256 of the bytes; for a target that
    stores rewritten copies (``by_content`` False) it is the Message-ID where there is one. Flags
    are those the target should hold, given its ``permanent`` flags and ``selection``.

    The whole listing is read before any body: a listing reads sequence ranges that must hold
    still (see the IMAP adapter), so no other command may come between its FETCHes."""
    rows = (
        (
            m.uid,
            m.size,
            epoch(m.internaldate),
            encode_flags(target_flags(m.flags, permanent, selection)[0]),
            None if by_content or not m.message_id else f"id:{m.message_id}",
        )
        for m in account.fetch_meta(folder, message_ids=not by_content)
        if whole or selection.skip_reason(m) is None
    )
    while chunk := list(itertools.islice(rows, CHUNK)):
        tally.add(part, chunk)
    for metas in tally.unhashed(part, CHUNK):
        hashes = []
        for fetched in account.fetch_messages(folder, metas):
            if isinstance(fetched, MessageError):
                continue  # unreadable: its sync reported it
            fetched.body.close()
            hashes.append((fetched.uid, fetched.sha256))
        tally.hashed(part, hashes)  # a message left without is not counted: expunged meanwhile


def _compare(differences: Iterable[Difference]) -> list[str]:
    """The report's lines for one folder: what the target misses (explained as a near miss when
    it holds the same content with another date or flags), then what it holds in excess; the
    first ``DETAIL`` one by one, the rest counted."""
    lines = _Lines()
    for _, same in itertools.groupby(differences, key=lambda d: d[0]):
        missing: list[tuple[Fingerprint, int]] = []
        extra: list[tuple[Fingerprint, int]] = []
        for key, date, flags, wanted, have in same:
            if wanted > have:
                missing.append(((key, date, flags), wanted - have))
            else:
                extra.append(((key, date, flags), have - wanted))
        _pair(missing, extra, lines)
    return lines.done()


def _pair(
    missing: list[tuple[Fingerprint, int]], extra: list[tuple[Fingerprint, int]], lines: _Lines
) -> None:
    """The differences of one identity: each missing copy paired with an extra one (a near miss)
    while there are any, then the rest."""
    for fp, count in missing:
        left = count
        while left and extra:
            twin, spare = extra.pop()
            paired = min(left, spare)
            if spare > paired:
                extra.append((twin, spare - paired))
            lines.add("near", _near_miss(fp, twin), paired)
            left -= paired
        lines.add("missing", f"missing on target: message sha256 {fp[0][:12]}… dated {fp[1]}", left)
    for twin, spare in extra:
        lines.add(
            "extra", f"extra on target: message sha256 {twin[0][:12]}… dated {twin[1]}", spare
        )


@dataclass
class _Lines:
    """A folder's differences: missing copies and near misses first, extra copies after, as far
    as ``DETAIL`` lines go; beyond, only counted (a folder of a million differences must not make
    a report of a million lines in memory)."""

    first: list[str] = field(default_factory=list)
    later: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("missing", "near", "extra"), 0)
    )

    def add(self, kind: str, line: str, times: int) -> None:
        self.counts[kind] += times
        into = self.later if kind == "extra" else self.first
        into.extend([line] * max(0, min(times, DETAIL - len(into))))

    def done(self) -> list[str]:
        shown = (self.first + self.later)[:DETAIL]
        rest = sum(self.counts.values()) - len(shown)
        if rest:
            c = self.counts
            shown.append(
                f"… and {rest} more not listed (in all: {c['missing']} missing on target, "
                f"{c['near']} with another date or flags, {c['extra']} extra on target)"
            )
        return shown


def _near_miss(want: Fingerprint, got: Fingerprint) -> str:
    parts = []
    if want[1] != got[1]:
        parts.append(f"date {got[1]} instead of {want[1]}")
    if want[2] != got[2]:
        parts.append(
            f"flags {sorted(decode_flags(got[2]))} instead of {sorted(decode_flags(want[2]))}"
        )
    return f"message sha256 {want[0][:12]}…: " + ", ".join(parts)
