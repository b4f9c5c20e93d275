"""The outcome of one calendars-and-contacts pass; ``as_json`` is the documented ``--json`` shape.

Every source item ends in exactly one counter or list: copied, updated, skipped (already on the
target), unchanged, failed (with its reason), remaining (not written yet when a full target stopped
the run: no fault of the item's, left for the next run, as mail's ``messages_remaining``), or one
of the reported cases that are left alone on purpose (a conflict, an item deleted on one side, a
second item with the same UID).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ItemProblem:
    """One source item that was not copied, or was left alone, and why."""

    collection: str  # the source collection's name
    href: str | None  # the source item's href (None for a row known only to the state)
    uid: str | None
    reason: str

    def as_json(self) -> dict[str, object]:
        return {
            "collection": self.collection,
            "item": {"href": self.href, "uid": self.uid},
            "reason": self.reason,
        }


@dataclass(frozen=True)
class CollectionReport:
    source: str  # the source collection's href
    target: str | None  # the target collection's href (None: nowhere to put it)
    kind: str  # calendar, addressbook
    items: int  # items in the source collection
    created: bool = False
    note: str | None = None  # where it went instead, what the target refused, why it failed
    workload: str = ""  # calendar, contacts, tasks (domain/workloads.py)
    counts: tuple[tuple[str, int], ...] = ()  # this collection's share of the summary's counters

    def as_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "target": self.target,
            "kind": self.kind,
            "workload": self.workload,
            "items": self.items,
            "created": self.created,
            "note": self.note,
            **dict(self.counts),
        }


@dataclass
class DavSummary:
    collections: list[CollectionReport] = field(default_factory=list)
    items_copied: int = 0
    items_updated: int = 0
    items_skipped_existing: int = 0
    items_unchanged: int = 0
    items_remaining: int = 0  # not written yet when the run stopped early (a full target)
    failures: list[ItemProblem] = field(default_factory=list)
    conflicts: list[ItemProblem] = field(default_factory=list)
    deleted_on_source: list[ItemProblem] = field(default_factory=list)
    deleted_on_target: list[ItemProblem] = field(default_factory=list)
    attendees: str = "client"  # how ORGANIZER/ATTENDEE were written (see service/davsync.py)
    scheduling_changed: int = 0  # items whose ORGANIZER/ATTENDEE lines were rewritten
    throttled: int = 0
    retries: int = 0
    stopped: str | None = None  # why the run ended early (a full target, a stop request)
    target_full: bool = False  # stopped by a full (or failing) target: someone must act
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def items_failed(self) -> int:
        return len(self.failures)

    @property
    def failed(self) -> bool:
        """Anything an administrator must act on: a full target, a failed item or a collection
        that failed."""
        return (
            self.target_full
            or bool(self.failures)
            or any(
                c.target is None or (c.note or "").startswith("failed") for c in self.collections
            )
        )

    def counters(self) -> dict[str, int]:
        """The item counters, by their ``--json`` names (a collection's share is a difference)."""
        return {
            "items_copied": self.items_copied,
            "items_updated": self.items_updated,
            "items_skipped_existing": self.items_skipped_existing,
            "items_unchanged": self.items_unchanged,
            "items_failed": self.items_failed,
            "items_remaining": self.items_remaining,
        }

    def by_workload(self) -> dict[str, dict[str, object]]:
        """One section per workload: its collections, items seen, counters and failures."""
        counts: dict[str, dict[str, int]] = {}
        names: dict[str, set[str]] = {}
        for c in self.collections:
            key = c.workload or c.kind
            section = counts.setdefault(key, {"collections": 0, "items_seen": 0})
            section["collections"] += 1
            section["items_seen"] += c.items
            for name, value in c.counts:
                section[name] = section.get(name, 0) + value
            names.setdefault(key, set()).add(c.source.rstrip("/").rsplit("/", 1)[-1])
        return {
            key: {
                **section,
                "failures": [p.as_json() for p in self.failures if p.collection in names[key]],
            }
            for key, section in counts.items()
        }

    def as_json(self) -> dict[str, object]:
        return {
            "collections": [c.as_json() for c in self.collections],
            "items_copied": self.items_copied,
            "items_updated": self.items_updated,
            "items_skipped_existing": self.items_skipped_existing,
            "items_unchanged": self.items_unchanged,
            "items_failed": self.items_failed,
            "items_remaining": self.items_remaining,
            "item_failures": [p.as_json() for p in self.failures],
            "item_conflicts": [p.as_json() for p in self.conflicts],
            "items_deleted_on_source": [p.as_json() for p in self.deleted_on_source],
            "items_deleted_on_target": [p.as_json() for p in self.deleted_on_target],
            "attendees": self.attendees,
            "scheduling_changed": self.scheduling_changed,
            "throttled": self.throttled,
            "retries": self.retries,
            "stopped": self.stopped,
            "seconds": round(self.seconds, 3),
            "warnings": list(self.warnings),
        }
