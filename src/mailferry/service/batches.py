"""The migration service API: endpoints, batches and their lifecycle, status and reports.

The CLI (``cli/batch.py``) and the web (``web/``) call this and nothing below it. Running the
mailboxes is ``service/scheduler.py``; the tables are ``adapters/store/``.

Mailbox lifecycle (``MailboxState``)::

    created --start--> syncing --> synced --sync--> syncing --> synced ...
                          |           '--complete--> completing --> completed
                          '--> failed (reason)      stop: stopped      start/resume: again

``pending`` on a mailbox row is the pass it still needs ("sync" or "complete"); it is cleared in
the same transaction that records the pass's end. A process killed mid-pass leaves ``pending``
set and its ``owner`` dead, so the next scheduler (``serve`` or ``batch start``) runs it again:
re-running is the recovery, since the sync itself never duplicates a message.

Why one module of 400+ lines: it is the service's whole API as one facade (endpoints, batches,
lifecycle, status, reports) over one store, so the CLI and the web call one object; CSV parsing,
reports and endpoint naming are already their own modules.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from mailferry.adapters.oauth.sources import TokenSource
from mailferry.adapters.secrets import Secret, SecretBox
from mailferry.adapters.store import mailbox_pages
from mailferry.adapters.store.batches import BatchStore
from mailferry.adapters.store.records import (
    BatchRecord,
    EndpointRecord,
    FailureRecord,
    FolderProgress,
    MailboxRecord,
)
from mailferry.config import Location, is_loopback, pair_key
from mailferry.domain.errors import ConfigError, NotFound
from mailferry.domain.labels import LabelMode
from mailferry.domain.model import AuthMethod, Endpoint, MailboxState, Security
from mailferry.domain.profiles import PROFILE_NAMES
from mailferry.domain.workloads import ALL, MailVia, Workload
from mailferry.logs import get_logger
from mailferry.service import batchpages
from mailferry.service.batchpages import BatchTotals, MailboxQuery
from mailferry.service.csvimport import CsvRow, CsvRules, parse_batch_csv
from mailferry.service.davjobs import ITEM_REPORT_COLUMNS, item_row
from mailferry.service.davroutes import dav_problems
from mailferry.service.endpoints import OPTION_NAMES, EndpointNames
from mailferry.service.fileroutes import expand_files, files_problems, target_problems, user_problem
from mailferry.service.jobs import JobControl
from mailferry.service.workers import WorkerView, worker_label, worker_row, worker_views
from mailferry.service.workloadrows import WORKLOAD_REPORT_COLUMNS, workload_row

log = get_logger("mailferry.batches")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SERVICE_FRESH = 30.0  # seconds: a service row older than this is a dead service
DEFAULT_PORTS = {Security.SSL: 993, Security.STARTTLS: 143, Security.NONE: 143}


S = MailboxState
STARTABLE = (S.CREATED, S.STOPPED, S.FAILED)
SYNCABLE = (S.CREATED, S.STOPPED, S.FAILED, S.SYNCED)
COMPLETABLE = (S.CREATED, S.STOPPED, S.FAILED, S.SYNCED)


# -- process identity: who runs a mailbox ------------------------------------------------------------
def new_owner() -> str:
    """``host:pid:started``: unique per process, and enough to tell whether it still lives."""
    return f"{socket.gethostname()}:{os.getpid()}:{time.time():.6f}"


def owner_alive(owner: str, heartbeat: float | None, now: float, fresh: float = 60.0) -> bool:
    """On this host a dead pid is dead at once; elsewhere, a heartbeat older than ``fresh`` is."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host == socket.gethostname() and pid_text.isdigit():
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return heartbeat is None or now - heartbeat < fresh * 10
    return heartbeat is not None and now - heartbeat < fresh


@dataclass(frozen=True)
class EndpointSpec:
    name: str
    host: str
    port: int | None = None
    security: Security = Security.SSL
    max_connections: int = 10
    auth_user: str | None = None
    auth_password: Secret | None = None
    ca_file: Path | None = None
    insecure: bool = False
    allow_plaintext: bool = False
    auth: str = "auto"  # an AuthMethod value
    tokens: TokenSource | None = None  # OAuth2: where the tokens come from (its secrets loaded)
    profile: str = "auto"  # a profile name, or "auto": by host
    dav: str | None = None  # calendars and contacts: a DAV URL template or "auto" (davroutes)
    dav_ca_file: Path | None = None
    dav_insecure: bool | None = None  # None: as ``insecure``
    files: str | None = None  # mail in files: a file URL template, no host (fileroutes)

    @property
    def token_source(self) -> TokenSource | None:
        """The token source if it names any (an empty one is none)."""
        return self.tokens if self.tokens is not None and self.tokens.kinds() else None


# The token source's fields that are secrets: stored only encrypted, never shown.
SECRET_FIELDS = ("m365_client_secret", "m365_certificate_pem", "google_service_account_json")


@dataclass(frozen=True)
class BatchOptions:
    since: dt.date | None = None
    before: dt.date | None = None
    include_deleted: bool = False
    neutralise_read_receipts: bool = False
    labels: LabelMode = LabelMode.ONCE  # a source whose folders are labels (Gmail)
    # What moves (None: all that both endpoints and the apps' permissions allow), and how mail
    # goes when both ends are Microsoft 365 (None: through Graph where the apps may)
    workloads: frozenset[Workload] | None = None
    mail_via: MailVia | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "before": self.before.isoformat() if self.before else None,
            "include_deleted": self.include_deleted,
            "neutralise_read_receipts": self.neutralise_read_receipts,
            "labels": self.labels.value,
            "workloads": [w.value for w in ALL if w in self.workloads] if self.workloads else None,
            "mail_via": self.mail_via.value if self.mail_via else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchOptions:
        since, before = data.get("since"), data.get("before")
        return cls(
            since=dt.date.fromisoformat(since) if since else None,
            before=dt.date.fromisoformat(before) if before else None,
            include_deleted=bool(data.get("include_deleted")),
            neutralise_read_receipts=bool(data.get("neutralise_read_receipts")),
            labels=LabelMode(data.get("labels") or LabelMode.ONCE.value),
            workloads=frozenset(Workload(w) for w in data["workloads"])
            if data.get("workloads")
            else None,
            mail_via=MailVia(data["mail_via"]) if data.get("mail_via") else None,
        )


@dataclass(frozen=True)
class MailboxView:
    """A mailbox as status and reports show it."""

    record: MailboxRecord
    running: bool
    eta: float | None  # seconds, when the rate and the remaining bytes are known

    @property
    def worker(self) -> str | None:
        """``host:pid`` of the process running it now (a worker, ``serve``, ``batch start``)."""
        return worker_label(self.record.owner) if self.running and self.record.owner else None

    @property
    def state(self) -> str:
        if self.record.pending and not self.running:
            return "queued"  # waiting for a slot, or its process died: the next scheduler runs it
        return self.record.state


@dataclass(frozen=True)
class BatchStatus:
    """A batch and its mailboxes: all of them, or (``totals`` set) one page of them, with the
    totals of the whole batch added up by the database (``status_page``)."""

    batch: BatchRecord
    mailboxes: list[MailboxView]
    totals: BatchTotals | None = None
    query: MailboxQuery | None = None
    running: list[MailboxView] = dataclasses.field(default_factory=list)  # paged: live ones

    @property
    def state(self) -> str:
        """The batch's own state, from its mailboxes'."""
        states = (
            set(self.counts()) if self.totals is not None else {m.state for m in self.mailboxes}
        )
        if states & {"syncing", "completing", "queued"}:
            return "completing" if "completing" in states else "syncing"
        for single in ("completed", "synced", "stopped", "created"):
            if states <= {single, "failed"} and single in states:
                return single
        return "failed" if states == {"failed"} else "mixed"

    def counts(self) -> dict[str, int]:
        if self.totals is not None:
            return dict(self.totals.counts)
        counts: dict[str, int] = {}
        for view in self.mailboxes:
            counts[view.state] = counts.get(view.state, 0) + 1
        return counts


REPORT_COLUMNS = (
    "mailbox",
    "source_user",
    "target_user",
    "state",
    "reason",
    "folders",
    "messages_copied",
    "messages_existing",
    "messages_skipped",
    "messages_failed",
    "bytes_copied",
    "seconds",
    "started",
    "finished",
    "last_synced",
    *ITEM_REPORT_COLUMNS,  # calendars and contacts (empty: no DAV pass ran)
    *WORKLOAD_REPORT_COLUMNS,  # mail_route, mail_seen, ... per workload (empty: none recorded)
)
# A message: its folder and UID; an item (kind "item"): its collection, UID and href.
FAILURE_COLUMNS = ("mailbox", "folder", "uid", "reason", "kind", "href")


class BatchService:
    def __init__(self, store: BatchStore, box: SecretBox, state_path: Path) -> None:
        self.store = store
        self.box = box
        self.state_path = state_path  # the sync state lives in the same file
        self.jobs: JobControl | None = None  # a job queue's abort (bootstrap sets it on PostgreSQL)

    def close(self) -> None:
        if self.jobs is not None:
            self.jobs.close()
        self.store.close()

    # -- endpoints ---------------------------------------------------------------------------------
    def add_endpoint(
        self, spec: EndpointSpec, *, replace: bool = False, names: EndpointNames = OPTION_NAMES
    ) -> EndpointRecord:
        """Store the endpoint, its secrets encrypted; ``names``: what its problems call the
        settings (the CLI's options by default)."""
        problems = endpoint_problems(spec, names)
        if problems:
            raise ConfigError(problems)
        record = EndpointRecord(
            name=spec.name,
            host=spec.host,
            port=0 if spec.files else spec.port or DEFAULT_PORTS[spec.security],
            security=str(spec.security),
            max_connections=spec.max_connections,
            auth_user=spec.auth_user or None,
            auth_secret=self.box.encrypt(spec.auth_password) if spec.auth_password else None,
            ca_file=str(spec.ca_file) if spec.ca_file else None,
            insecure=spec.insecure,
            created=time.time(),
            auth=spec.auth,
            oauth=self._seal_tokens(spec.token_source),
            profile=spec.profile,
            dav=spec.dav or None,
            dav_ca_file=str(spec.dav_ca_file) if spec.dav_ca_file else None,
            dav_insecure=spec.dav_insecure,
            files=spec.files or None,
        )
        self.store.add_endpoint(record, replace=replace)
        return record

    def _seal_tokens(self, source: TokenSource | None) -> str | None:
        """The token source as JSON for the endpoint row, every secret in it encrypted."""
        if source is None:
            return None
        data: dict[str, str] = {}
        for name, value in dataclasses.asdict(source).items():
            if value is None or value is False:
                continue  # (rows stay as they were before a field was added)
            data[name] = self.box.encrypt(Secret(value)) if name in SECRET_FIELDS else value
        return json.dumps(data, sort_keys=True)

    def token_source(self, record: EndpointRecord) -> TokenSource | None:
        """The endpoint's token source with its secrets decrypted (None: password logins)."""
        if not record.oauth:
            return None
        data = json.loads(record.oauth)
        for name in SECRET_FIELDS:
            if name in data:
                data[name] = self.box.decrypt(data[name]).reveal()
        return TokenSource(**data)

    def endpoint(self, name: str) -> EndpointRecord:
        record = self.store.endpoint(name)
        if record is None:
            raise NotFound(f"no endpoint {name!r} (see `mailferry endpoint list`)")
        return record

    def endpoints(self) -> list[EndpointRecord]:
        return self.store.endpoints()

    def remove_endpoint(self, name: str) -> None:
        if not self.store.remove_endpoint(name):
            raise NotFound(f"no endpoint {name!r}")

    def capacity(self, name: str) -> int:
        record = self.store.endpoint(name)
        return record.max_connections if record else 0

    # -- batches -----------------------------------------------------------------------------------
    def create_batch(
        self, name: str, source: str, target: str, csv_data: bytes, options: BatchOptions
    ) -> BatchStatus:
        problems = [] if NAME.match(name) else [f"batch name {name!r}: use letters, digits, . _ -"]
        endpoints = []
        for side, ep_name in (("source", source), ("target", target)):
            record = self.store.endpoint(ep_name)
            if record is None:
                problems.append(f"no {side} endpoint {ep_name!r}")
            endpoints.append(record)
        if options.since and options.before and options.since >= options.before:
            problems.append("--since must be before --before")
        src, dst = endpoints
        if dst is not None and dst.files:
            problems += target_problems(dst.files, dst.name)
        if problems:
            raise ConfigError(problems)
        # An endpoint with an admin login, or with a token source (a token logs in as the
        # mailbox), needs no password per mailbox; nor do files.
        rules = CsvRules(
            source_password_required=not (src and (src.auth_user or src.oauth or src.files)),
            target_password_required=not (dst and (dst.auth_user or dst.oauth or dst.files)),
        )
        rows = parse_batch_csv(csv_data, rules)
        _check_file_users(rows, src, dst)
        now = time.time()
        mailboxes = [
            MailboxRecord(
                batch=name,
                email=row.email,
                line=row.line,
                source_user=row.source_user,
                target_user=row.target_user,
                state=S.CREATED,
                source_secret=self._seal(row.source_password),
                target_secret=self._seal(row.target_password),
                include=row.include,
                exclude=row.exclude,
            )
            for row in rows
        ]
        self.store.create_batch(
            BatchRecord(name, source, target, options.as_json(), created=now), mailboxes
        )
        log.info("batch.created", batch=name, source=source, target=target, mailboxes=len(rows))
        return self.status(name)

    def _seal(self, password: str) -> str | None:
        return self.box.encrypt(Secret(password)) if password else None

    def batch(self, name: str) -> BatchRecord:
        record = self.store.batch(name)
        if record is None:
            raise NotFound(f"no batch {name!r} (see `mailferry batch list`)")
        return record

    def batches(self) -> list[BatchStatus]:
        """Every batch with its totals (counts, state, sums), not its mailboxes: a page of one."""
        return [self.status_page(b.name, MailboxQuery(per_page=1)) for b in self.store.batches()]

    def start(self, name: str) -> int:
        """Queue an initial pass for mailboxes not yet synced (also: resume after stop/failure)."""
        self.batch(name)
        self.store.set_batch(name, stop_requested=False)
        return _queued(name, "start", self.store.request(name, "sync", STARTABLE))

    resume = start

    def sync(self, name: str, every: float | None = None) -> int:
        """Queue an incremental pass for every mailbox not completed; ``every`` keeps it going."""
        self.batch(name)
        self.store.set_batch(name, stop_requested=False, every=every)
        return _queued(name, "sync", self.store.request(name, "sync", SYNCABLE))

    def complete(self, name: str) -> int:
        """Queue the final pass: afterwards the mailboxes are Completed and never synced again."""
        self.batch(name)
        self.store.set_batch(name, stop_requested=False, every=None)
        return _queued(name, "complete", self.store.request(name, "complete", COMPLETABLE))

    def stop(self, name: str) -> int:
        """Queued mailboxes stop now; running ones after the burst in flight, on any worker:
        each learns it at its next progress write (the batch's flag) and from the queue's abort."""
        self.batch(name)
        self.store.set_batch(name, stop_requested=True)
        aborted = self.jobs.abort(name) if self.jobs is not None else 0
        stopped = self.store.unowned_request(name, None, S.STOPPED, self._live_owners(name))
        log.info("batch.stop_requested", batch=name, mailboxes_stopped=stopped, jobs=aborted)
        return stopped

    def delete(self, name: str) -> None:
        """Forget the batch. Its running mailboxes, on any worker, stop after their burst in
        flight (their rows gone, and the queue's abort); what they copied stays copied, and
        their end finds nothing to record (``BatchStore.finish``)."""
        self.batch(name)
        self.store.set_batch(name, stop_requested=True)
        aborted = self.jobs.abort(name) if self.jobs is not None else 0
        self.store.delete_batch(name)
        log.info("batch.deleted", batch=name, jobs=aborted)

    def schedule_due(self, now: float, default_every: float | None = None) -> int:
        """Queue an incremental pass for Synced mailboxes whose batch's ``every`` (else
        ``default_every``, from ``serve --every``) has passed since their last pass."""
        queued = 0
        for batch in self.store.batches():
            every = batch.every or default_every
            if every is None or batch.stop_requested:
                continue
            due = [
                m.email
                for m in self.store.mailboxes(batch.name)
                if m.state == S.SYNCED
                and m.pending is None
                and (m.last_synced or 0.0) + every <= now
            ]
            if due:
                count = self.store.request(batch.name, "sync", (S.SYNCED,), emails=due)
                queued += _queued(batch.name, "scheduled", count)
        return queued

    def _live_owners(self, name: str) -> set[str]:
        now = time.time()
        return {
            m.owner
            for m in self.store.mailboxes(name)
            if m.owner and owner_alive(m.owner, m.heartbeat, now)
        }

    def service_running(self) -> str | None:
        """The owner token of a live ``mailferry serve``, if any."""
        now = time.time()
        for owner, heartbeat in self.store.services():
            if now - heartbeat < SERVICE_FRESH and owner_alive(owner, heartbeat, now):
                return owner
        return None

    def workers(self) -> list[WorkerView]:
        """The workers on a shared database (none on SQLite), lost ones included."""
        return worker_views(self.store.workers)

    # -- status and reports ------------------------------------------------------------------------
    def status(self, name: str) -> BatchStatus:
        batch = self.batch(name)
        now = time.time()
        views = []
        for mailbox in self.store.mailboxes(name):
            running = bool(mailbox.owner) and owner_alive(
                mailbox.owner or "", mailbox.heartbeat, now
            )
            views.append(MailboxView(mailbox, running, _eta(mailbox, now) if running else None))
        return BatchStatus(batch, views)

    def status_page(self, name: str, query: MailboxQuery) -> BatchStatus:
        """One page of the batch's mailboxes, and the totals of all of them, in four queries
        whatever the batch's size (``batchpages``)."""
        batch = self.batch(name)
        now = time.time()
        groups, live = batchpages.live_owners(self.store, name, owner_alive, now)
        db = self.store.db
        matched, records = mailbox_pages.mailbox_page(
            db, name, query.filter, live, offset=query.offset, limit=query.per_page
        )
        totals = dataclasses.replace(batchpages.totals_of(groups, live), matched=matched)
        running = mailbox_pages.owned_mailboxes(db, name, live)
        return BatchStatus(
            batch,
            [_view(m, live, now) for m in records],
            totals,
            query,
            [_view(m, live, now) for m in running],
        )

    def mailbox(self, batch: str, email: str) -> MailboxView:
        view = next((v for v in self.status(batch).mailboxes if v.record.email == email), None)
        if view is None:
            raise NotFound(f"no mailbox {email!r} in batch {batch!r}")
        return view

    def folder_progress(self, batch: str, email: str) -> list[FolderProgress]:
        """What the sync state holds per folder for one mailbox of the batch: its migration pair
        keyed exactly as the scheduler keys it (``config.pair_key``). Counts only, no IMAP."""
        record = self.batch(batch)
        mailbox = self.mailbox(batch, email).record
        source = _pair_side(self.endpoint(record.source), mailbox.source_user, "source")
        target = _pair_side(self.endpoint(record.target), mailbox.target_user, "target")
        return self.store.folder_progress(pair_key(source, target))

    def report_json(self, name: str, query: MailboxQuery | None = None) -> dict[str, object]:
        """The report of one page of mailboxes (``batch status --json``), with their failures."""
        status = self.status_page(name, query or MailboxQuery())
        emails = [view.record.email for view in status.mailboxes]
        failures: dict[str, list[dict[str, object]]] = {}
        for failure in mailbox_pages.failures_of(self.store.db, name, emails):
            failures.setdefault(failure.email, []).append(_failure_row(failure))
        mailboxes = []
        for view in status.mailboxes:
            row = _report_row(view)
            row["failures"] = failures.get(view.record.email, [])
            row["workloads"] = view.record.workloads
            mailboxes.append(row)
        return {**self._report_head(status), **_page_fields(status), "mailboxes": mailboxes}

    def _report_head(self, status: BatchStatus) -> dict[str, object]:
        b = status.batch
        return {
            "batch": b.name,
            "source": b.source,
            "target": b.target,
            "state": status.state,
            "counts": status.counts(),
            "workers": [worker_row(view) for view in self.workers()],
        }

    def write_report(self, name: str, out: TextIO, kind: str = "csv") -> None:
        """The whole report (``csv``, ``json`` with each mailbox's failures, or ``failures``:
        those as CSV) written to ``out`` a chunk of mailboxes at a time: memory stays flat."""
        head = self._report_head(self.status_page(name, MailboxQuery(per_page=1)))
        now = time.time()
        _groups, live = batchpages.live_owners(self.store, name, owner_alive, now)

        def row(m: MailboxRecord) -> dict[str, object]:
            found = _report_row(_view(m, live, now))
            if kind == "json":  # each workload's section of the last pass (CSV: its columns)
                found["workloads"] = m.workloads
            return found

        chunks = batchpages.chunks_with_failures(self.store, name, row, _failure_row)
        if kind == "json":
            batchpages.write_json_report(out, head, chunks)
        elif kind == "failures":
            rows = (f for chunk in chunks for _row, failures in chunk for f in failures)
            batchpages.write_csv(out, FAILURE_COLUMNS, rows)
        else:
            rows = (r for chunk in chunks for r, _failures in chunk)
            batchpages.write_csv(out, REPORT_COLUMNS, rows)

    def report_text(self, name: str, kind: str = "csv") -> str:
        buffer = io.StringIO(newline="")
        self.write_report(name, buffer, kind)
        return buffer.getvalue()

    def report_csv(self, name: str) -> str:
        return self.report_text(name, "csv")

    def failures_csv(self, name: str) -> str:
        return self.report_text(name, "failures")


def _view(mailbox: MailboxRecord, live: set[str], now: float) -> MailboxView:
    running = mailbox.owner is not None and mailbox.owner in live
    return MailboxView(mailbox, running, _eta(mailbox, now) if running else None)


def _page_fields(status: BatchStatus) -> dict[str, object]:
    query, totals = status.query, status.totals
    if query is None or totals is None:
        return {}
    return {"matched": totals.matched, "page": query.page, "per_page": query.per_page}


def _queued(batch: str, kind: str, count: int) -> int:
    log.info("batch.queued", batch=batch, kind=kind, mailboxes=count)
    return count


def _pair_side(record: EndpointRecord, user: str, side: str) -> Location:
    if record.files:
        return expand_files(record.files, user, side=side)
    return Endpoint(record.host, record.port, Security(record.security), user)


def _check_file_users(
    rows: list[CsvRow], src: EndpointRecord | None, dst: EndpointRecord | None
) -> None:
    """Every CSV user on a file side must be a path segment (``fileroutes.user_problem``)."""
    problems = []
    for row in rows:
        for record, user in ((src, row.source_user), (dst, row.target_user)):
            problem = user_problem(user) if record is not None and record.files else None
            if problem is not None:
                problems.append(f"line {row.line}: {problem}")
    if problems:
        raise ConfigError(problems)


def _eta(mailbox: MailboxRecord, now: float) -> float | None:
    if not mailbox.started or mailbox.done_bytes <= 0:
        return None
    rate = mailbox.done_bytes / max(now - mailbox.started, 0.001)
    remaining = max(mailbox.planned_bytes - mailbox.done_bytes, 0)
    return remaining / rate


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="seconds")


def _report_row(view: MailboxView) -> dict[str, object]:
    m = view.record
    return {
        "mailbox": m.email,
        "worker": view.worker,
        "source_user": m.source_user,
        "target_user": m.target_user,
        "state": view.state,
        "reason": m.reason,
        "folders": m.folders,
        "messages_copied": m.copied,
        "messages_existing": m.existing,
        "messages_skipped": m.skipped,
        "messages_failed": m.errors,
        "bytes_copied": m.bytes,
        "seconds": round(m.seconds, 1),
        "started": _iso(m.started),
        "finished": _iso(m.finished),
        "last_synced": _iso(m.last_synced),
        **item_row(m),
        **workload_row(m),
    }


def _failure_row(failure: FailureRecord) -> dict[str, object]:
    item = failure.kind == "item"
    return {
        "mailbox": failure.email,
        "folder": failure.folder,
        "uid": failure.item_uid if item else failure.uid,
        "reason": failure.reason,
        "kind": failure.kind,
        "href": failure.href,
    }


def endpoint_problems(spec: EndpointSpec, names: EndpointNames = OPTION_NAMES) -> list[str]:
    """Every problem of the endpoint's settings, each naming the setting as ``names`` does."""
    n = names
    problems = []
    if not NAME.match(spec.name):
        problems.append(f"endpoint name {spec.name!r}: use letters, digits, . _ - (up to 64)")
    if spec.files is not None:
        return problems + _files_endpoint_problems(spec, names)
    if "@" in spec.host:  # USER[:PASSWORD]@HOST: never echoed, it may hold a password
        problems.append(
            f"{n.host}: a host name or address only, without USER@ or a password "
            f"(an admin login: {n.auth_user} and {n.auth_password})"
        )
    elif not spec.host or any(ch.isspace() or ch == "/" for ch in spec.host):
        problems.append(f"{n.host} {spec.host!r}: expected a host name or address")
    if spec.port is not None and not 0 < spec.port < 65536:
        problems.append(f"{n.port} {spec.port}: expected 1-65535")
    if spec.max_connections < 1:
        problems.append(f"{n.max_connections} must be at least 1")
    if spec.security is Security.NONE and not spec.allow_plaintext and not is_loopback(spec.host):
        problems.append(
            f"{n.security} none sends passwords unencrypted; allowed only to loopback, "
            f"or with {n.allow_plaintext}"
        )
    if spec.auth_user and spec.auth_password is None:
        problems.append(f"{n.auth_user} needs the admin's password (see {n.auth_password})")
    if spec.ca_file is not None and not spec.ca_file.is_file():
        problems.append(f"{n.ca_file} {spec.ca_file}: no such file")
    dav = dav_problems(
        spec.dav, spec.dav_ca_file, spec.dav_insecure, names, allow_plaintext=spec.allow_plaintext
    )
    return problems + _auth_problems(spec, names) + dav


def _files_endpoint_problems(spec: EndpointSpec, names: EndpointNames) -> list[str]:
    """Files have a place, not a server: no host, login, TLS or DAV settings beside it."""
    problems = files_problems(spec.files or "", names.files)
    server = {
        names.host: spec.host,
        names.port: spec.port,
        names.auth_user: spec.auth_user,
        names.ca_file: spec.ca_file,
        names.dav: spec.dav,
        names.oauth_sources: spec.token_source,
    }
    given = [name for name, value in server.items() if value]
    if given:
        problems.append(f"{names.files} names files, not a server: drop {', '.join(given)}")
    return problems


def _auth_problems(spec: EndpointSpec, names: EndpointNames) -> list[str]:
    """The login settings: a method that fits the token source (or its absence), a known profile."""
    n = names
    problems = []
    if spec.profile not in PROFILE_NAMES:
        problems.append(f"{n.profile} {spec.profile!r}: expected one of {', '.join(PROFILE_NAMES)}")
    try:
        method = AuthMethod(spec.auth)
    except ValueError:
        choices = ", ".join(m.value for m in AuthMethod)
        return [*problems, f"{n.auth} {spec.auth!r}: expected one of {choices}"]
    source = spec.token_source
    if source is None:
        if method in {AuthMethod.XOAUTH2, AuthMethod.OAUTHBEARER}:
            problems.append(f"{n.auth} {method.value} needs a token source: {n.oauth_sources}")
        return problems
    try:
        source.check(n.tokens)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if method is AuthMethod.PASSWORD:
        problems.append(f"{n.auth} password contradicts {source.kinds(n.tokens)[0]}")
    if spec.auth_user:
        problems.append(f"{n.auth_user} is for password logins; a token logs in as each mailbox")
    return problems
