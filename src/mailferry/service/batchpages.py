"""A batch shown a page at a time, and its reports written as they are read.

A batch of 10,000 mailboxes used to be read whole for every look at it: the batch page, the API
and ``batch status`` took a second or more and sent every mailbox; reports were built in memory.
Here the totals come from one aggregate query (``adapters/store/mailbox_pages.py``), the page from
one filtered query, the running mailboxes (whose progress and rate are shown) from one more; a
report is written in chunks of mailboxes, each with its own failures.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from mailferry.adapters.store import mailbox_pages as pages
from mailferry.adapters.store.mailbox_pages import QUEUED, MailboxFilter
from mailferry.domain.errors import ConfigError
from mailferry.service.reports import neutralise

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from mailferry.adapters.store.batches import BatchStore
    from mailferry.adapters.store.records import FailureRecord, MailboxRecord

MAX_PER_PAGE = 1000
SHOWN_STATES = (
    "created", QUEUED, "syncing", "synced", "completing", "completed", "stopped", "failed",
)  # fmt: skip


@dataclass(frozen=True)
class MailboxQuery:
    """A page of a batch's mailboxes: which (a shown state, with errors or not, a part of the
    address) and where (1-based page of ``per_page``)."""

    state: str | None = None
    errors: bool | None = None
    search: str = ""
    page: int = 1
    per_page: int = 100

    def check(self, names: Mapping[str, str] | None = None) -> MailboxQuery:
        """This query, or ConfigError naming each bad value as the caller spells it."""
        n = {"state": "state", "page": "page", "per_page": "per_page"} | dict(names or {})
        problems = []
        if self.state is not None and self.state not in SHOWN_STATES:
            problems.append(
                f"{n['state']} {self.state!r}: expected one of {', '.join(SHOWN_STATES)}"
            )
        if self.page < 1:
            problems.append(f"{n['page']} must be at least 1")
        if not 1 <= self.per_page <= MAX_PER_PAGE:
            problems.append(f"{n['per_page']} must be 1 to {MAX_PER_PAGE}")
        if problems:
            raise ConfigError(problems)
        return self

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def filter(self) -> MailboxFilter:
        return MailboxFilter(self.state, self.errors, self.search)


@dataclass(frozen=True)
class BatchTotals:
    """What the whole batch adds up to, whatever the page shows."""

    counts: dict[str, int]  # by shown state
    mailboxes: int
    messages_copied: int
    bytes_copied: int
    items_copied: int
    matched: int = 0  # mailboxes the query matched (the pages hold them all)


def live_owners(
    store: BatchStore, name: str, alive: Callable[[str, float | None, float], bool], now: float
) -> tuple[list[pages.MailboxGroup], set[str]]:
    """The batch's groups and the owners among them that ``alive`` judges running (a pid on
    this host, a fresh heartbeat elsewhere): a handful of calls, not one per mailbox."""
    groups = pages.mailbox_groups(store.db, name)
    live = {g.owner for g in groups if g.owner and alive(g.owner, g.heartbeat, now)}
    return groups, {owner for owner in live if owner}


def totals_of(groups: list[pages.MailboxGroup], live: set[str]) -> BatchTotals:
    counts: dict[str, int] = {}
    for g in groups:
        running = g.owner is not None and g.owner in live
        shown = QUEUED if g.pending and not running else g.state
        counts[shown] = counts.get(shown, 0) + g.count
    return BatchTotals(
        counts=dict(sorted(counts.items())),
        mailboxes=sum(g.count for g in groups),
        messages_copied=sum(g.copied for g in groups),
        bytes_copied=sum(g.bytes for g in groups),
        items_copied=sum(g.items for g in groups),
    )


# -- reports, written as they are read ------------------------------------------------------------
def write_csv(out: TextIO, columns: tuple[str, ...], rows: Iterator[Mapping[str, object]]) -> None:
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([neutralise(row.get(column)) for column in columns])


def write_json_report(
    out: TextIO,
    head: Mapping[str, object],
    chunks: Iterator[list[tuple[dict[str, object], list[dict[str, object]]]]],
) -> None:
    """``{...head, "mailboxes": [row + failures, ...]}`` one mailbox at a time, indented as
    ``json.dumps(indent=2)`` would write it whole."""
    text = json.dumps({**head, "mailboxes": []}, indent=2, ensure_ascii=False)
    opening, _, closing = text.rpartition("[]")
    out.write(opening + "[")
    first = True
    for chunk in chunks:
        for row, failures in chunk:
            item = json.dumps({**row, "failures": failures}, indent=2, ensure_ascii=False)
            out.write(("\n" if first else ",\n") + _indent(item, 4))
            first = False
    out.write(("\n  ]" if not first else "]") + closing)


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line for line in text.splitlines())


def chunks_with_failures(
    store: BatchStore, name: str, rows: Callable[[MailboxRecord], dict[str, object]],
    failure_row: Callable[[FailureRecord], dict[str, object]],
) -> Iterator[list[tuple[dict[str, object], list[dict[str, object]]]]]:  # fmt: skip
    """Report rows a chunk of mailboxes at a time, each with its per-message failures."""
    for chunk in pages.mailbox_chunks(store.db, name):
        failures: dict[str, list[dict[str, object]]] = {}
        for failure in pages.failures_of(store.db, name, [m.email for m in chunk]):
            failures.setdefault(failure.email, []).append(failure_row(failure))
        yield [(rows(m), failures.get(m.email, [])) for m in chunk]
