"""Compare a source and a target after mapping: folders, message counts, content hashes, flags and dates.

Independent of the state database: it reads both accounts and trusts nothing we recorded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from mailferry.domain.errors import FolderError, MessageError
from mailferry.domain.folders import FolderMapping, FolderPlan
from mailferry.domain.identity import epoch
from mailferry.domain.labels import LabelPolicy
from mailferry.domain.model import MessageMeta
from mailferry.domain.plan import Selection, target_flags
from mailferry.domain.ports import MailAccount

# A message as verify sees it: (sha256, INTERNALDATE in epoch seconds, flags as the target should hold them)
Fingerprint = tuple[str, int, frozenset[str]]


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
    compared: list[tuple[FolderDiff, Counter[Fingerprint], Counter[Fingerprint], bool]] = []
    everywhere: Counter[Fingerprint] = Counter()
    for target_name, mappings in by_target.items():
        diff = FolderDiff(" + ".join(m.source.name for m in mappings), target_name)
        report.folders.append(diff)
        if target_name not in existing and target_name.upper() != "INBOX":
            diff.problems.append("target folder is missing")
            continue
        try:
            wanted, have = _folder_prints(source, target, mappings, target_name, selection)
        except FolderError as exc:  # reported as such: a folder that cannot be read is no empty one
            diff.problems.append(f"not compared: {exc}")
            continue
        everywhere += have
        dedupes = labels is not None and any(labels.dedupes(m) for m in mappings)
        compared.append((diff, wanted, have, dedupes))
    for diff, wanted, have, dedupes in compared:
        covered = (wanted - have) & (everywhere - have) if dedupes else Counter()
        diff.elsewhere = sum(covered.values())
        diff.source_count = sum(wanted.values())
        diff.target_count = sum(have.values())
        diff.problems.extend(_compare(wanted - covered, have))
    return report


def _folder_prints(
    source: MailAccount,
    target: MailAccount,
    mappings: list[FolderMapping],
    target_name: str,
    selection: Selection,
) -> tuple[Counter[Fingerprint], Counter[Fingerprint]]:
    """(what the source folders mapped to ``target_name`` hold, what the target folder holds)."""
    permanent = target.permanent_flags(target_name)
    by_content = target.keeps_bytes
    wanted: Counter[Fingerprint] = Counter()
    for m in mappings:
        wanted += _source_prints(source, m.source.name, permanent, selection, by_content=by_content)
    have = _target_prints(target, target_name, selection, by_content=by_content)
    return wanted, have


def _source_prints(
    account: MailAccount,
    folder: str,
    permanent: frozenset[str],
    selection: Selection,
    *,
    by_content: bool,
) -> Counter[Fingerprint]:
    metas = {m.uid: m for m in account.fetch_meta(folder, message_ids=not by_content)}
    chosen = [m for m in metas.values() if selection.skip_reason(m) is None]
    return _prints(account, folder, chosen, permanent, selection, by_content=by_content)


def _target_prints(
    account: MailAccount, folder: str, selection: Selection, *, by_content: bool
) -> Counter[Fingerprint]:
    metas = {m.uid: m for m in account.fetch_meta(folder, message_ids=not by_content)}
    every = frozenset({"\\*"})
    return _prints(account, folder, list(metas.values()), every, selection, by_content=by_content)


def _prints(
    account: MailAccount,
    folder: str,
    chosen: list[MessageMeta],
    permanent: frozenset[str],
    selection: Selection,
    *,
    by_content: bool,
) -> Counter[Fingerprint]:
    """(identity, date, flags) per message. The identity is the SHA-256 of the bytes; for a target that
    stores rewritten copies (``by_content`` False) it is the Message-ID where there is one."""
    prints: Counter[Fingerprint] = Counter()
    needs_body = [m for m in chosen if by_content or not m.message_id]
    hashes = {}
    for fetched in account.fetch_messages(folder, needs_body):
        if isinstance(fetched, MessageError):
            continue  # unreadable: its sync reported it
        fetched.body.close()
        hashes[fetched.uid] = fetched.sha256
    for meta in chosen:
        key = hashes.get(meta.uid) if by_content or not meta.message_id else f"id:{meta.message_id}"
        if key is None:
            continue  # expunged meanwhile
        flags, _ = target_flags(meta.flags, permanent, selection)
        prints[(key, epoch(meta.internaldate), flags)] += 1
    return prints


def _compare(wanted: Counter[Fingerprint], have: Counter[Fingerprint]) -> list[str]:
    missing = wanted - have
    extra = have - wanted
    problems: list[str] = []
    # Explain near misses: same content, different date or flags.
    extra_by_hash: dict[str, list[Fingerprint]] = {}
    for fp, count in extra.items():
        extra_by_hash.setdefault(fp[0], []).extend([fp] * count)
    for fp, count in sorted(missing.items()):
        for _ in range(count):
            twins = extra_by_hash.get(fp[0])
            if twins:
                twin = twins.pop()
                extra[twin] -= 1
                problems.append(_near_miss(fp, twin))
            else:
                problems.append(f"missing on target: message sha256 {fp[0][:12]}… dated {fp[1]}")
    for fp, count in sorted((+extra).items()):
        problems.extend(
            f"extra on target: message sha256 {fp[0][:12]}… dated {fp[1]}" for _ in range(count)
        )
    return problems


def _near_miss(want: Fingerprint, got: Fingerprint) -> str:
    parts = []
    if want[1] != got[1]:
        parts.append(f"date {got[1]} instead of {want[1]}")
    if want[2] != got[2]:
        parts.append(f"flags {sorted(got[2])} instead of {sorted(want[2])}")
    return f"message sha256 {want[0][:12]}…: " + ", ".join(parts)
