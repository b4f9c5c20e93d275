"""The rows the stores hand out: plain frozen records, secrets in them still encrypted."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EndpointRecord:
    name: str
    host: str
    port: int
    security: str
    max_connections: int
    auth_user: str | None = None
    auth_secret: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    insecure: bool = False
    created: float = 0.0
    auth: str = "auto"
    oauth: str | None = field(default=None, repr=False)  # JSON, secrets encrypted
    profile: str = "auto"
    dav: str | None = None  # a DAV URL template ("https://dav.host/{user}/") or "auto"
    dav_ca_file: str | None = None  # None: the endpoint's ``ca_file``
    dav_insecure: bool | None = None  # None: the endpoint's ``insecure``
    files: str | None = None  # mail in files: a file URL template (service/fileroutes.py)


@dataclass(frozen=True)
class BatchRecord:
    name: str
    source: str
    target: str
    options: dict[str, Any]
    every: float | None = None
    stop_requested: bool = False
    created: float = 0.0


@dataclass(frozen=True)
class MailboxRecord:
    batch: str
    email: str
    line: int
    source_user: str
    target_user: str
    state: str
    source_secret: str | None = field(default=None, repr=False)
    target_secret: str | None = field(default=None, repr=False)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    pending: str | None = None
    reason: str | None = None
    owner: str | None = None
    heartbeat: float | None = None
    folders: int = 0
    copied: int = 0
    bytes: int = 0
    existing: int = 0
    skipped: int = 0
    errors: int = 0
    planned: int = 0
    planned_bytes: int = 0
    done: int = 0
    done_bytes: int = 0
    seconds: float = 0.0
    started: float | None = None
    finished: float | None = None
    last_synced: float | None = None
    collections: int | None = None  # calendars and address books (None: no DAV pass yet)
    items_copied: int = 0  # all runs
    items_updated: int = 0  # the others: the last run
    items_skipped: int = 0  # already on the target
    items_failed: int = 0
    item_conflicts: int = 0
    # Per workload, the last pass's section (``domain.workloadreport``) with ``copied_total`` (all
    # passes); None: no pass recorded one yet.
    workloads: dict[str, dict[str, Any]] | None = None


ITEM_COUNTERS = ("items_copied", "items_updated", "items_skipped", "items_failed", "item_conflicts")


@dataclass(frozen=True)
class FailureRecord:
    """A message (``folder``, ``uid``) or, ``kind`` "item", a calendar or contact item: ``folder``
    is its collection, ``href`` and ``item_uid`` name it."""

    email: str
    folder: str
    uid: int | None
    reason: str
    kind: str = "message"
    href: str | None = None
    item_uid: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What a finished run leaves on its mailbox row."""

    state: str
    reason: str | None
    kind: str
    started: float
    finished: float
    summary: dict[str, Any]
    failures: Sequence[FailureRecord] = ()
    keep_pending: bool = False  # the process is shutting down: run it again on the next start


@dataclass(frozen=True)
class FolderProgress:
    """One folder of one mailbox, as the sync state counts it (``progress.folder_progress``)."""

    source: str
    target: str | None
    copied: int
    failed: int
    pass_finished: bool


def endpoint_record(row: dict[str, Any]) -> EndpointRecord:
    row["auth"] = row.get("auth") or "auto"
    row["profile"] = row.get("profile") or "auto"
    return EndpointRecord(**row)


def failure_record(row: dict[str, Any]) -> FailureRecord:
    row["kind"] = row.get("kind") or "message"
    return FailureRecord(**row)


def as_row(record: object) -> dict[str, Any]:
    return dict(record.__dict__)


def mailbox_row(record: MailboxRecord) -> dict[str, Any]:
    row = as_row(record)
    row["include"] = json.dumps(list(record.include))
    row["exclude"] = json.dumps(list(record.exclude))
    row["workloads"] = None if record.workloads is None else json.dumps(record.workloads)
    return row


def mailbox_record(row: dict[str, Any]) -> MailboxRecord:
    row["include"] = tuple(json.loads(row["include"]))
    row["exclude"] = tuple(json.loads(row["exclude"]))
    for name in ITEM_COUNTERS:  # NULL in a row from before calendars and contacts
        row[name] = row.get(name) or 0
    workloads = row.get("workloads")
    row["workloads"] = json.loads(workloads) if workloads else None
    return MailboxRecord(**row)


def batch_record(row: dict[str, Any]) -> BatchRecord:
    row["options"] = json.loads(row["options"])
    return BatchRecord(**row)
