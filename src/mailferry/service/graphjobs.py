"""Microsoft 365 in a batch job: which workload goes which way for one mailbox (its routes), the
pass over Graph's mailbox import/export, and how every workload shows in status and reports.

Routes (``job_routes``): each side of a batch is an IMAP endpoint; it is also Microsoft 365 through
Graph when its token source says so (``graph_url_of``; the connector's ``graph`` fetches the app
token once per endpoint and reads its roles), and it carries CalDAV/CardDAV when it has a DAV
template. ``domain.workloads.plan_routes`` then decides, as for ``mailferry sync``:

    both Microsoft 365, mailbox permissions   every workload through export/import, mail too
                                              unless the batch says mail_via imap (no IMAP pass)
    Microsoft 365 and DAV (or Graph resources  the collection pass (``davjobs``) with
    on both sides)                            GraphCollections on the Microsoft 365 side
    otherwise                                 as before: IMAP mail, DAV when both carry it

The mailbox's login on each side (the CSV's user) is its Microsoft 365 mailbox. The Graph pass
runs in the job like the others (same lease, same stop event: a heartbeat thread writes the
mailbox's progress row once a second, which is how a stop request reaches it); its state lives in
the service's database. What it gives is added to the job's outcome:

    the MailboxSummary       under "graph" in the run's summary (its folders with a target
                             are the row's folders when no IMAP pass counted any)
    each failed item         a failure of kind "item" (its folder, its item id, the reason)
    a failed folder          a failure of kind "item" without item id (its path, its note)
    an account error         (403 access policy, no such mailbox, connection lost after its
                             retries) fails the mailbox with "Microsoft 365 mailbox: REASON"
    every workload           under "workloads" (``workloadreport.merged_sections``; a route that
                             could not run: its reason), and its counters on the mailbox row

The copies that may be second ones (the summary's ``not_recognisable``) leave the mailbox state
only once that outcome is recorded (``forget_recorded``, called by the scheduler after
``BatchStore.finish`` wrote it): a worker killed before then leaves them to the next pass.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from mailferry.adapters.graph.roles import token_roles
from mailferry.adapters.oauth.sources import TokenSource, graph_tokens
from mailferry.adapters.store.records import EndpointRecord, FailureRecord, Outcome
from mailferry.adapters.tls import TlsOptions
from mailferry.domain.errors import ConfigError, MailferryError
from mailferry.domain.mailboxports import ExchangeMailbox, MailboxStateStore
from mailferry.domain.mailboxreport import MailboxSummary
from mailferry.domain.model import MailboxState, Summary
from mailferry.domain.ports import TokenProvider
from mailferry.domain.workloadreport import merged_sections
from mailferry.domain.workloads import ALL, MailVia, RoutePlan, SideKind, Workload, plan_routes
from mailferry.logs import get_logger
from mailferry.service.batches import BatchOptions, BatchService
from mailferry.service.davjobs import DavResult, Flushing
from mailferry.service.davroutes import dav_note
from mailferry.service.graphcontext import GraphSyncOptions
from mailferry.service.graphprobe import graph_url_of
from mailferry.service.graphsync import forget_reported, sync_mailboxes

log = get_logger("mailferry.scheduler")
BEAT_EVERY = 1.0  # seconds between progress writes (and stop checks) during a Graph pass


@dataclass(frozen=True)
class GraphAccess:
    """An endpoint's way into Microsoft 365 through Graph: its base URL, the app's token provider
    (one serves every mailbox of the tenant), TLS, and the roles its token carries."""

    graph_url: str
    tokens: TokenProvider = field(repr=False)
    tls: TlsOptions
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True)
class JobRoutes:
    """Which workload goes which way for one job, and each side's Graph access (None: not
    Microsoft 365 through Graph)."""

    plan: RoutePlan = field(default_factory=lambda: RoutePlan(mail=MailVia.IMAP))
    source: GraphAccess | None = None
    target: GraphAccess | None = None


def side_kind(record: EndpointRecord, access: GraphAccess | None) -> SideKind:
    """What an endpoint offers a mailbox: IMAP always; DAV with a template, or a PST's calendars,
    contacts and tasks (a ``pst://`` files template: a source only, as fileroutes checks);
    Graph with access."""
    return SideKind(
        imap=True,
        dav=bool(record.dav) or (record.files or "").lower().startswith("pst://"),
        graph=access is not None,
        roles=access.roles if access is not None else frozenset(),
    )


def job_routes(
    sides: tuple[EndpointRecord, EndpointRecord],
    access: tuple[GraphAccess | None, GraphAccess | None],
    workloads: frozenset[Workload] | None,
    mail_via: MailVia | None,
) -> JobRoutes:
    """The routes of one mailbox of a batch (a workload chosen by name that cannot move is a
    ConfigError naming why: the mailbox fails with it)."""
    source, target = (side_kind(r, a) for r, a in zip(sides, access, strict=True))
    try:
        plan = plan_routes(source, target, workloads, mail_via)
    except ConfigError as exc:  # plan_routes names the CLI's option; a batch has no such thing
        raise ConfigError(
            [_CHOSEN.sub(r"workload \1 cannot move: ", p) for p in exc.problems]
        ) from None
    return JobRoutes(plan, access[0], access[1])


_CHOSEN = re.compile(r"^--workloads (\w+): ")


class GraphAccesses:
    """Each endpoint's Graph access, made on first use and kept (a ``--replace``d endpoint has
    other settings, so another key: a new one).

    An endpoint that names Graph (``m365_graph_url``) and cannot get a Graph token fails its
    mailboxes with the reason. One that is Microsoft 365 by its host alone goes on by IMAP as
    before Graph came (the reason logged once, ``endpoint.graph_unavailable``): an app granted
    IMAP only, or a national cloud whose Graph URL was not given, must not stop its mail."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: dict[tuple[str, str], GraphAccess | None] = {}

    def get(self, record: EndpointRecord, source: TokenSource | None) -> GraphAccess | None:
        url = graph_url_of(source, record.host)
        if source is None or url is None:
            return None
        key = (record.name, record.oauth or "")
        with self._lock:  # one token fetch per endpoint, even when many jobs start at once
            if key not in self._found:
                self._found[key] = self._make(record, source, url)
            return self._found[key]

    @staticmethod
    def _make(record: EndpointRecord, source: TokenSource, url: str) -> GraphAccess | None:
        tls = TlsOptions(Path(record.ca_file) if record.ca_file else None, record.insecure)
        try:
            tokens = graph_tokens(source)
            return GraphAccess(url, tokens, tls, token_roles(tokens.token()))
        except MailferryError as exc:
            if source.m365_graph_url:
                raise
            log.warning("endpoint.graph_unavailable", endpoint=record.name, reason=str(exc))
            return None


class MailboxLink(Protocol):
    """Both Microsoft 365 mailboxes of one job, the mailbox state and the pair's key in it."""

    @property
    def source(self) -> ExchangeMailbox: ...

    @property
    def target(self) -> ExchangeMailbox: ...

    @property
    def state(self) -> MailboxStateStore: ...

    @property
    def key(self) -> str: ...

    def close(self) -> None:
        """Close both sessions and the state; a failure to close is no failure of the pass."""


@dataclass(frozen=True)
class GraphResult:
    """A Graph mailbox pass's summary, or the account error that ended it."""

    summary: MailboxSummary | None
    error: str | None = None


@contextlib.contextmanager
def beating(progress: Flushing, every: float = BEAT_EVERY) -> Iterator[None]:
    """Write the mailbox's progress row every ``every`` seconds while the body runs: its
    heartbeat, and how a stop request (batch stop, the queue's abort) sets the stop event."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(every):
            progress.flush(force=True)

    thread = threading.Thread(target=beat, name="graph-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def mailbox_pass(
    open_link: Callable[[], MailboxLink],
    progress: Flushing,
    stop: threading.Event,
    options: GraphSyncOptions,
) -> GraphResult:
    """Open both mailboxes, run one pass, close them. A ``MailferryError`` (403 access policy,
    no such mailbox, connection lost after its retries, state busy) is this part's failure."""
    try:
        link = open_link()
    except MailferryError as exc:
        return GraphResult(None, str(exc))
    try:
        with beating(progress):
            summary = sync_mailboxes(
                link.source, link.target, link.state, link.key, options, stop=stop
            )
    except MailferryError as exc:
        return GraphResult(None, str(exc))
    finally:
        link.close()
    log.info(
        "mailbox.graph_finished",
        workloads=sorted(summary.workloads),
        failed=summary.items_failed,
        throttled=summary.throttled,
    )
    return GraphResult(summary)


def forget_recorded(open_link: Callable[[], MailboxLink], result: GraphResult) -> None:
    """The doubts ``result`` reported leave the state: call it only once the job's outcome with
    this summary is recorded. The link is opened again for this one write (its sessions send
    nothing): the pass's link is closed before the other passes and the recording, which should
    not hold two Graph sessions. A failure here fails nothing: the doubts are reported again by
    the next pass (twice, never zero times)."""
    if result.summary is None or not result.summary.reported:
        return
    try:
        link = open_link()
    except MailferryError as exc:
        log.warning("mailbox.doubts_kept", reason=str(exc))
        return
    try:
        forget_reported(link.state, link.key, result.summary)
    except MailferryError as exc:
        log.warning("mailbox.doubts_kept", reason=str(exc))
    finally:
        link.close()


def graph_failures(email: str, summary: MailboxSummary) -> list[FailureRecord]:
    """Failed items, then folders that failed, as the mailbox's failures of kind "item"."""
    found = [
        FailureRecord(email, p.folder, None, p.reason, "item", None, p.item)
        for report in summary.workloads.values()
        for p in report.failures
    ]
    found += [
        FailureRecord(email, f.source, None, f.note or "failed", "item")
        for f in summary.folders
        if (f.note or "").startswith("failed")
    ]
    return found


def with_graph(outcome: Outcome, result: GraphResult, email: str) -> Outcome:
    """The job's outcome with its Graph pass added (see the module docstring)."""
    summary = dict(outcome.summary)
    failures = list(outcome.failures)
    if result.summary is not None:
        summary["graph"] = result.summary.as_json()
        failures += graph_failures(email, result.summary)
        if not summary.get("folders"):  # no IMAP pass: the row's folders are the Graph pass's
            summary["folders"] = sum(1 for f in result.summary.folders if f.target is not None)
    merged = replace(outcome, summary=summary, failures=failures)
    if outcome.state not in (MailboxState.SYNCED, MailboxState.COMPLETED):
        return merged  # failed, stopped or interrupted: its reason stands
    if result.error is not None:
        said = result.error.startswith("Microsoft 365")  # GraphMailbox names the mailbox
        reason = result.error if said else f"Microsoft 365 mailbox: {result.error}"
        return replace(merged, state=MailboxState.FAILED, reason=reason)
    if failures:
        return replace(merged, reason=f"{len(failures)} errors; first: {failures[0].reason}")
    return merged


def with_workloads(
    outcome: Outcome,
    plan: RoutePlan,
    mail: Summary | None,
    dav: DavResult | None,
    graph: GraphResult | None,
) -> Outcome:
    """The run's summary with one section per workload, whichever way it went; a workload whose
    route did not run (its account error) has that route and the reason."""
    mailbox = graph.summary if graph is not None else None
    sections = merged_sections(
        plan,
        mail,
        dav.summary if dav is not None else None,
        {str(w): r.as_json() for w, r in mailbox.workloads.items()} if mailbox else None,
    )
    for result, route, workloads in (
        (graph, "graph", plan.mailbox),
        (dav, "collections", plan.collections),
    ):
        if result is not None and result.error is not None:
            for workload in workloads:
                sections.setdefault(str(workload), {"route": route, "reason": result.error})
    ordered = {str(w): sections[str(w)] for w in ALL if str(w) in sections}
    return replace(outcome, summary={**outcome.summary, "workloads": ordered})


def batch_note(
    service: BatchService, source: str, target: str, options: BatchOptions
) -> str | None:
    """What a batch between two endpoints does beyond IMAP mail, said when it is created (from
    the endpoints' settings: no token is fetched here; the apps' permissions decide per job)."""
    src, dst = service.endpoint(source), service.endpoint(target)
    graph = [graph_url_of(service.token_source(r), r.host) is not None for r in (src, dst)]
    if all(graph):
        mail = "mail by IMAP" if options.mail_via is MailVia.IMAP else "mail too"
        return (
            "Microsoft 365 on both ends: every workload through Graph's mailbox import/export "
            f"({mail}) where the apps' permissions allow; each job says what did not move"
        )
    if any(graph) and (src.dav or dst.dav):
        return (
            "calendars, contacts and tasks between CalDAV/CardDAV and Microsoft 365 through "
            "Graph; mail by IMAP"
        )
    return dav_note(src, dst)
