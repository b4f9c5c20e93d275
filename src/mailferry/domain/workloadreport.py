"""One ``--json`` section per workload, whichever way it went: the same counters for mail by IMAP,
calendars and contacts by CalDAV/CardDAV or Graph's resources, and every workload by Graph's
mailbox import/export (whose own summary already has this shape: ``mailboxreport``).

    route          imap | collections (the collection sync: CalDAV/CardDAV or Graph resources) |
                   graph (mailbox import/export) | none (not moved: see reason)
    seen           source items looked at in this pass
    copied, updated, already_there (recognised on the target), unchanged, failed, failures
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailferry.domain.model import Summary
from mailferry.domain.workloads import ALL, RoutePlan, Workload

if TYPE_CHECKING:  # made by a calendar and contact pass, which imports it
    from mailferry.domain.davreport import DavSummary

Section = dict[str, object]


def mail_section(summary: Summary) -> Section:
    """Mail copied by IMAP (``Summary``: the mail keys of ``--json`` stay as they were)."""
    seen = (
        summary.messages_copied
        + summary.messages_skipped_existing
        + summary.messages_skipped_deleted
        + summary.messages_skipped_filtered
        + summary.messages_skipped_labels
        + summary.messages_failed
        + summary.messages_remaining
    )
    return {
        "route": "imap",
        "seen": seen,
        "copied": summary.messages_copied,
        "updated": summary.flags_updated,  # messages whose flags were brought up to date
        "already_there": summary.messages_skipped_existing,
        "unchanged": 0,
        "failed": summary.messages_failed,
        "failures": [
            {"folder": f.folder, "item": f.uid, "reason": f.reason} for f in summary.failures
        ],
    }


def collection_sections(summary: DavSummary) -> dict[str, Section]:
    """Calendars, contacts and tasks copied by the collection sync."""
    found: dict[str, Section] = {}
    for name, part in summary.by_workload().items():
        found[name] = {
            "route": "collections",
            "collections": part["collections"],
            "seen": part["items_seen"],
            "copied": part.get("items_copied", 0),
            "updated": part.get("items_updated", 0),
            "already_there": part.get("items_skipped_existing", 0),
            "unchanged": part.get("items_unchanged", 0),
            "failed": part.get("items_failed", 0),
            "failures": part["failures"],
        }
    return found


def merged_sections(
    plan: RoutePlan,
    mail: Summary | None = None,
    collections: DavSummary | None = None,
    mailbox: dict[str, Section] | None = None,
) -> dict[str, Section]:
    """Every workload of the plan: its section from the route it took, or why it did not move."""
    found: dict[str, Section] = {}
    if mail is not None:
        found[Workload.MAIL] = mail_section(mail)
    if collections is not None:
        found.update(collection_sections(collections))
    for name, section in (mailbox or {}).items():
        found[name] = {"route": "graph", **section}
    for workload, reason in plan.skipped:
        found[workload] = {"route": "none", "reason": reason}
    return {str(w): found[w] for w in ALL if w in found}
