"""A mailbox's per-workload counters (mail, calendar, contacts, tasks, notes) as reports and
``batch status`` show them, from its row's ``workloads``: the last pass's section of each
workload (``domain.workloadreport``: route, seen, copied, updated, already_there, unchanged,
failed; a workload not moved: route "none" and the reason; a route that could not run: its
reason) with ``copied_total``, its copies over all passes."""

from __future__ import annotations

from typing import Any

from mailferry.adapters.store.records import MailboxRecord
from mailferry.domain.workloads import ALL

# The report's columns per workload: mail_route, mail_seen, ..., notes_failed (empty: no pass
# recorded that workload). ``copied`` is the last pass's, like the run's summary.
WORKLOAD_FIELDS = ("route", "seen", "copied", "updated", "failed")
# ``mail_notes``: the last pass's messages handed out not as the source file holds them, by
# reason ("3 rebuilt from the PST's properties; 1 dated from ..."); empty: none.
WORKLOAD_REPORT_COLUMNS = (*(f"{w}_{f}" for w in ALL for f in WORKLOAD_FIELDS), "mail_notes")


def workload_row(record: MailboxRecord) -> dict[str, object]:
    """A mailbox's per-workload cells for reports, from its last pass's sections."""
    sections = record.workloads or {}
    row = {f"{w}_{f}": (sections.get(str(w)) or {}).get(f) for w in ALL for f in WORKLOAD_FIELDS}
    notes = (sections.get("mail") or {}).get("notes") or {}
    row["mail_notes"] = "; ".join(f"{n} {reason}" for reason, n in notes.items()) or None
    return row


def workload_line(name: str, section: dict[str, Any]) -> str:
    """One workload of a mailbox's last pass, as ``batch status`` prints it."""
    route = section.get("route")
    if route == "none":
        return f"{name}: not moved: {section.get('reason')}"
    if "seen" not in section:
        return f"{name} ({route}): not run: {section.get('reason')}"
    total = section.get("copied_total")
    line = f"{name} ({route}): {section.get('seen', 0)} seen, {section.get('copied', 0)} copied"
    line += f" ({total} in all)" if total is not None else ""
    line += (
        f", {section.get('updated', 0)} updated, {section.get('already_there', 0)} already "
        f"there, {section.get('unchanged', 0)} unchanged, {section.get('failed', 0)} failed"
    )
    return line
