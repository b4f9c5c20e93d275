"""Testing an endpoint's Microsoft Graph set-up: which application permissions the app's token
carries (its ``roles``), which workloads that allows on each side and through which route, what is
missing (one line naming each missing permission), and, given a mailbox, whether the app may open it
(an application access policy that leaves it out answers 403).

``endpoint test`` (CLI, web, API) calls ``probe_graph`` after the IMAP probe when the endpoint is
Microsoft 365 through Graph (``graph_url_of``, kept with the token sources in
adapters/oauth/sources.py so that a sync of two IMAP sides asks it without importing Graph's
HTTP). No token is ever part of the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mailferry.adapters.graph.roles import token_roles
from mailferry.adapters.graph.session import GraphLimits, GraphSession
from mailferry.adapters.oauth.sources import TokenSource, graph_tokens, graph_url_of
from mailferry.adapters.tls import TlsOptions
from mailferry.domain.errors import AccountError, ConfigError
from mailferry.domain.ports import TokenProvider
from mailferry.domain.workloads import ALL, Route, Workload, allowed, missing

if TYPE_CHECKING:  # the batch service's types only: `mailferry sync` does not load it
    from mailferry.adapters.store.records import EndpointRecord
    from mailferry.service.batches import BatchService

ROUTE_NAMES = {
    Route.MAILBOX: "Microsoft 365 <-> Microsoft 365 (mailbox import/export)",
    Route.RESOURCES: "CalDAV/CardDAV <-> Microsoft 365 (calendars, contacts, To Do)",
}


@dataclass(frozen=True)
class RouteReport:
    route: str
    source: tuple[str, ...]  # workloads this app may read through the route
    target: tuple[str, ...]  # workloads it may write
    missing: tuple[str, ...]  # "tasks as target: Tasks.ReadWrite.All", ...


@dataclass(frozen=True)
class GraphProbe:
    graph_url: str
    roles: tuple[str, ...] = ()
    routes: tuple[RouteReport, ...] = ()
    mailbox: str | None = None  # the mailbox tried
    mailbox_ok: bool | None = None  # None: none tried
    error: str | None = None  # no token, or the mailbox refused
    notes: list[str] = field(default_factory=list)


def route_reports(roles: frozenset[str]) -> tuple[RouteReport, ...]:
    reports = []
    for route in Route:
        lacking = [
            f"{workload} as {side}: {', '.join(absent)}"
            for workload in ALL
            for side in ("source", "target")
            if (absent := missing(roles, workload, route, side))
        ]
        reports.append(
            RouteReport(
                ROUTE_NAMES[route],
                tuple(allowed(roles, route, "source")),
                tuple(allowed(roles, route, "target")),
                tuple(lacking),
            )
        )
    return tuple(reports)


def probe_graph(
    source: TokenSource, graph_url: str, user: str | None, tls: TlsOptions, timeout: float = 30.0
) -> GraphProbe:
    """Get a Graph token, read its roles, and (``user`` given) open that mailbox once."""
    found = GraphProbe(graph_url)
    try:
        tokens = graph_tokens(source)
        roles = token_roles(tokens.token())
    except (AccountError, ConfigError) as exc:
        return GraphProbe(graph_url, error=f"Microsoft Graph token: {exc}")
    found = GraphProbe(graph_url, tuple(sorted(roles)), route_reports(roles))
    if not roles:
        found.notes.append(
            "the token carries no application permission (roles): grant them and give admin "
            "consent (docs/microsoft365.md)"
        )
    if not user:
        return found
    return _try_mailbox(found, tokens, user, tls, timeout)


def _try_mailbox(
    found: GraphProbe, tokens: TokenProvider, user: str, tls: TlsOptions, timeout: float
) -> GraphProbe:
    path = _mailbox_path(frozenset(found.roles), user)
    if path is None:
        return found
    limits = GraphLimits(max_throttled=2, retries=1)
    try:
        with GraphSession(
            found.graph_url, user, tokens, tls, limits=limits, timeout=timeout
        ) as session:
            response = session.request("GET", path)
    except AccountError as exc:
        return _with(found, user, ok=False, error=str(exc))
    if response.status_code == 200:
        return _with(found, user, ok=True)
    reason = _refusal(response.status_code, response.text)
    return _with(found, user, ok=False, error=f"mailbox {user}: {reason}")


def _mailbox_path(roles: frozenset[str], user: str) -> str | None:
    if "Calendars.Read" in roles or "Calendars.ReadWrite" in roles:
        return f"/users/{user}/calendars?$top=1"
    if any(role.startswith(("MailboxItem.", "MailboxFolder.")) for role in roles):
        return f"/users/{user}/settings/exchange"
    if "Contacts.Read" in roles or "Contacts.ReadWrite" in roles:
        return f"/users/{user}/contactFolders?$top=1"
    return None


def _refusal(status: int, text: str) -> str:
    if status == 403 and "AccessPolicy" in text:
        return "HTTP 403: an application access policy keeps this app out of the mailbox"
    if status == 404:
        return "HTTP 404: no such user or mailbox"
    return f"HTTP {status}"


def _with(found: GraphProbe, user: str, *, ok: bool, error: str | None = None) -> GraphProbe:
    return GraphProbe(
        found.graph_url, found.roles, found.routes, user, ok, error, list(found.notes)
    )


def workloads_line(report: RouteReport) -> str:
    def names(found: tuple[str, ...]) -> str:
        return ", ".join(found) or "none"

    return f"{report.route}: as source {names(report.source)}; as target {names(report.target)}"


__all__ = ["GraphProbe", "Workload", "graph_url_of", "probe_graph", "probe_record", "report_lines"]


def probe_record(
    service: BatchService, record: EndpointRecord, user: str | None, timeout: float
) -> GraphProbe | None:
    """``probe_graph`` for an endpoint whose mailboxes are Microsoft 365 through Graph."""
    source = service.token_source(record)
    url = graph_url_of(source, record.host)
    if source is None or url is None:
        return None
    tls = TlsOptions(Path(record.ca_file) if record.ca_file else None, record.insecure)
    return probe_graph(source, url, user, tls, timeout)


def report_lines(found: GraphProbe) -> list[str]:
    """What ``endpoint test`` prints of it, a line each."""
    lines = [f"Microsoft Graph {found.graph_url}: roles " + (", ".join(found.roles) or "none")]
    for route in found.routes:
        lines.append("  " + workloads_line(route))
        lines.extend(f"  missing for {gap}" for gap in route.missing)
    lines.extend(f"  note: {note}" for note in found.notes)
    if found.mailbox_ok:
        lines.append(f"mailbox {found.mailbox}: reachable through Graph")
    return lines
