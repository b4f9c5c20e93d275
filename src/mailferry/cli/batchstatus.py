"""What ``mailferry batch status`` (and a foreground ``batch start``) prints: a row per mailbox
(a table on a terminal, plain lines otherwise), a line per workload of each mailbox's last pass
when it moved more than mail by IMAP, and the workers on a shared database."""

from __future__ import annotations

import time

from rich.table import Table

from mailferry.adapters.store.records import MailboxRecord
from mailferry.cli.console import out
from mailferry.service.batches import BatchStatus
from mailferry.service.workers import WorkerView
from mailferry.service.workloadrows import workload_line


def print_status(status: BatchStatus) -> None:
    if out.is_terminal:
        out.print(status_table(status))
        for view in status.mailboxes:  # each workload of each mailbox's last pass
            for line in _workload_lines(view.record):
                out.print(f"{view.record.email}  {line.strip()}", markup=False, soft_wrap=True)
        return
    for line in _status_lines(status):
        out.print(line, markup=False, soft_wrap=True)


def _workload_lines(m: MailboxRecord) -> list[str]:
    """The workloads of the mailbox's last pass, a line each (none before a pass recorded them;
    a mail-only pass by IMAP says nothing the mailbox's row does not)."""
    sections = m.workloads or {}
    if set(sections) <= {"mail"} and (sections.get("mail") or {}).get("route") in (None, "imap"):
        return []
    lines, not_run = [], []
    for name, section in sections.items():
        if "seen" not in section and section.get("reason") == m.reason:
            not_run.append(name)  # the mailbox's own reason says why: once is enough
        else:
            lines.append(f"  {workload_line(name, section)}")
    if not_run:
        lines.append(f"  {', '.join(not_run)}: not run (the mailbox's reason)")
    return lines


def status_table(status: BatchStatus) -> Table:
    b = status.batch
    title = f"batch {b.name} ({b.source} → {b.target}): {status.state}"
    if status.totals is not None and status.query is not None:
        title += "\n" + _page_line(status)
    table = Table(title=title)
    columns = (
        "mailbox", "state", "folders", "messages", "bytes", "items", "errors", "ETA", "worker",
        "reason",
    )  # fmt: skip
    for column in columns:
        right = column in ("folders", "messages", "bytes", "errors", "ETA")
        table.add_column(column, justify="right" if right else "left", overflow="fold")
    for row in _rows(status):
        table.add_row(*row)
    return table


def _status_lines(status: BatchStatus) -> list[str]:
    b = status.batch
    lines = [f"batch {b.name} ({b.source} -> {b.target}): {status.state}"]
    if status.totals is not None and status.query is not None:
        lines.append(_page_line(status))
    for view, row in zip(status.mailboxes, _rows(status), strict=True):
        lines.append("  ".join(row))
        lines += _workload_lines(view.record)
    return lines


def _page_line(status: BatchStatus) -> str:
    """``mailboxes 101-200 of 9000 matching (10000 in the batch: 9000 synced, ...)``."""
    totals, query = status.totals, status.query
    if totals is None or query is None:  # an unpaged status has no page line
        return ""
    counts = ", ".join(f"{n} {s}" for s, n in sorted(totals.counts.items()))
    first = query.offset + 1 if status.mailboxes else 0
    shown = f"mailboxes {first}-{query.offset + len(status.mailboxes)} of {totals.matched}"
    return f"{shown} matching ({totals.mailboxes} in the batch: {counts})"


def _rows(status: BatchStatus) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for view in status.mailboxes:
        m = view.record
        if view.running:
            messages = f"{m.done}/{m.planned}"
            nbytes = f"{m.done_bytes}/{m.planned_bytes}"
        else:
            messages = _messages(m)
            nbytes = str(m.bytes)
        eta = f"{view.eta:.0f}s" if view.eta is not None else "-"
        rows.append(
            (
                m.email,
                view.state,
                str(m.folders),
                messages,
                nbytes,
                _items(m),
                str(m.errors),
                eta,
                view.worker or "-",
                m.reason or "",
            )
        )
    return rows


def _messages(m: MailboxRecord) -> str:
    """Mail copied: by IMAP from the row's counters; through Graph from its mail section."""
    mail = (m.workloads or {}).get("mail") or {}
    if mail.get("route") == "graph" and "seen" in mail:  # its workload line says the rest
        return f"{mail.get('copied_total', mail.get('copied', 0))} copied (Graph)"
    return f"{m.copied} copied, {m.existing} there"


def print_workers(workers: list[WorkerView]) -> None:
    """The workers on a shared database (nothing on SQLite): one line each."""
    if not workers:
        return
    now = time.time()
    out.print("workers:", markup=False)
    for view in workers:
        w = view.record
        state = "LOST" if view.lost else "alive"
        line = (
            f"  {view.label}  {state}  mailferry {w.version}  {w.running}/{w.concurrency} jobs"
            f"  started {_ago(now - w.started)} ago, last heartbeat {_ago(now - w.heartbeat)} ago"
        )
        out.print(line, markup=False, soft_wrap=True)


def _ago(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"


def _items(m: MailboxRecord) -> str:
    """Calendars and contacts of the last pass ("-": none ran)."""
    if m.collections is None:
        return "-"
    text = f"{m.collections} collections: {m.items_copied} copied, {m.items_skipped} there"
    if m.items_updated:
        text += f", {m.items_updated} updated"
    if m.items_failed:
        text += f", {m.items_failed} failed"
    if m.item_conflicts:
        text += f", {m.item_conflicts} conflicts"
    return text
