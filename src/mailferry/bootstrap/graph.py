"""The composition of Microsoft 365 through Graph: which side is Microsoft 365, its Graph session,
and which workload goes which way (``plan_routes``).

Part of the one composition root (``mailferry.bootstrap``). A side is Microsoft 365 through Graph
when it logs in app-only (``--…-m365-tenant``/``--…-m365-client-id`` with a secret or certificate)
and either names Graph (``--…-m365-graph-url``, or an ``m365://USER@DOMAIN`` URL: Graph only, no IMAP)
or its IMAP host is Exchange Online's (the ``microsoft365`` profile). Its mailbox is the URL's user.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote

from mailferry.adapters.oauth.app_only import GRAPH_URL
from mailferry.adapters.oauth.sources import SourceNames, graph_tokens, graph_url_of
from mailferry.adapters.tls import TlsOptions
from mailferry.bootstrap import Side, SyncRequest, token_source
from mailferry.bootstrap.dav import is_dav_url
from mailferry.config import default_state_path, is_file_url, parse_endpoint
from mailferry.domain.errors import ConfigError
from mailferry.domain.ports import TokenProvider
from mailferry.domain.workloads import MailVia, RoutePlan, SideKind, Workload, plan_routes

if TYPE_CHECKING:  # Graph's adapters (httpx, the mailbox state) are imported for a Graph side
    from mailferry.adapters.graph.mailbox import GraphMailbox
    from mailferry.adapters.graph.session import GraphLimits, GraphSession
    from mailferry.domain.mailboxports import MailboxStateStore

M365_SCHEME = "m365://"


def is_m365_url(url: str) -> bool:
    """``m365://alice@contoso.com``: a Microsoft 365 mailbox reached through Graph only."""
    return url.strip().lower().startswith(M365_SCHEME)


@dataclass(frozen=True)
class GraphSide:
    """One side that is Microsoft 365 through Graph: where, which mailbox, its tokens and roles."""

    name: str  # "source" or "target"
    graph_url: str
    mailbox: str  # the user principal name (alice@contoso.com)
    tokens: TokenProvider = field(repr=False)
    tls: TlsOptions
    roles: frozenset[str] = frozenset()

    def session(self, limits: GraphLimits | None = None) -> GraphSession:
        from mailferry.adapters.graph.session import GraphSession  # noqa: PLC0415

        return GraphSession(self.graph_url, self.mailbox, self.tokens, self.tls, limits=limits)


def _mailbox_and_host(side: Side, allow_plaintext: bool) -> tuple[str, str] | None:
    if is_m365_url(side.url):
        mailbox = unquote(side.url.strip()[len(M365_SCHEME) :].rstrip("/"))
        if "@" not in mailbox:
            raise ConfigError(f"{side.name} {side.url!r}: expected m365://USER@DOMAIN")
        return mailbox, ""
    if is_dav_url(side.url) or is_file_url(side.url):
        return None
    endpoint = parse_endpoint(side.url, allow_plaintext=allow_plaintext, side=side.name)
    return endpoint.user, endpoint.host


def graph_side(side: Side, *, allow_plaintext: bool = False) -> GraphSide | None:
    """The side as Microsoft 365 through Graph (its token fetched, its roles read), or None."""
    found = _mailbox_and_host(side, allow_plaintext)
    if found is None:
        return None
    mailbox, host = found
    source = token_source(side)
    url = graph_url_of(source, host) if host else None
    if not host:  # m365://: Graph is the only way in
        url = source.m365_graph_url or GRAPH_URL
    if url is None:
        return None
    from mailferry.adapters.graph.roles import token_roles  # noqa: PLC0415 - a Graph side

    names = SourceNames.options(f"--{side.name}-")
    try:
        tokens = graph_tokens(source, names)
    except ConfigError as exc:
        raise ConfigError([f"{side.name}: {p}" for p in exc.problems]) from None
    roles = token_roles(tokens.token())
    tls = TlsOptions(side.ca_file, side.insecure)
    return GraphSide(side.name, url, mailbox, tokens, tls, roles)


@dataclass(frozen=True)
class Routes:
    plan: RoutePlan
    source: GraphSide | None
    target: GraphSide | None


def is_pst_url(url: str) -> bool:
    """``pst:///path``: mail folders (as a mail source) and calendars, contacts and tasks (as a
    collection source, adapters/files/pstcollections.py)."""
    return url.strip().lower().startswith("pst://")


def side_kind(side: Side, dav: str | None, graph: GraphSide | None) -> SideKind:
    imap = not (is_dav_url(side.url) or is_m365_url(side.url))
    pst = is_pst_url(side.url) and side.name == "source"  # a PST is never written
    return SideKind(
        imap=imap,
        dav=dav is not None or is_dav_url(side.url) or pst,
        graph=graph is not None,
        roles=graph.roles if graph is not None else frozenset(),
    )


def route_request(
    request: SyncRequest,
    source_dav: str | None,
    target_dav: str | None,
    workloads: frozenset[Workload] | None,
    mail_via: MailVia | None,
) -> Routes:
    """Which workload goes which way for this request (a Graph side's token is fetched here)."""
    graphs = [
        graph_side(s, allow_plaintext=request.allow_plaintext)
        for s in (request.source, request.target)
    ]
    if (source_dav is None) != (target_dav is None) and not any(graphs):
        raise ConfigError("--source-dav and --target-dav go together")
    kinds = (
        side_kind(request.source, source_dav, graphs[0]),
        side_kind(request.target, target_dav, graphs[1]),
    )
    plan = plan_routes(kinds[0], kinds[1], workloads, mail_via)
    return Routes(plan, graphs[0], graphs[1])


def mailbox_pair_key(source: GraphSide, target: GraphSide) -> str:
    """The identity of a Microsoft 365 mailbox pair in the state database."""
    return f"graph {source.mailbox}@{source.graph_url} -> {target.mailbox}@{target.graph_url}"


@dataclass
class MailboxPair:
    source: GraphMailbox
    target: GraphMailbox
    state: MailboxStateStore
    key: str


@contextlib.contextmanager
def open_graph_mailboxes(
    routes: Routes, request: SyncRequest, *, read_only: bool = False
) -> Iterator[MailboxPair]:
    """Both mailboxes through Graph (one session each: Graph's limits are per mailbox) and the
    mailbox state in the state database (``--database``, else the state file)."""
    if routes.source is None or routes.target is None:
        raise ConfigError("the mailbox import/export API needs Microsoft 365 on both ends")
    from mailferry.adapters.graph.mailbox import GraphMailbox  # noqa: PLC0415 - a Graph side

    with contextlib.ExitStack() as stack:
        state = _open_state(stack, request, read_only=read_only)
        sessions = [stack.enter_context(side.session()) for side in (routes.source, routes.target)]
        yield MailboxPair(
            GraphMailbox(sessions[0], routes.source.mailbox),
            GraphMailbox(sessions[1], routes.target.mailbox),
            state,
            mailbox_pair_key(routes.source, routes.target),
        )


@contextlib.contextmanager
def open_mailbox_state(
    routes: Routes, request: SyncRequest
) -> Iterator[tuple[MailboxStateStore, str]]:
    """The mailbox state alone and the pair's key in it, no Graph session: for a write after the
    pass, once its summary is delivered (``cli.graph.forget_delivered``)."""
    if routes.source is None or routes.target is None:
        raise ConfigError("the mailbox import/export API needs Microsoft 365 on both ends")
    with contextlib.ExitStack() as stack:
        yield _open_state(stack, request), mailbox_pair_key(routes.source, routes.target)


def _open_state(
    stack: contextlib.ExitStack, request: SyncRequest, *, read_only: bool = False
) -> MailboxStateStore:
    """``--database``, else the state file (a dry run without one: an empty memory state)."""
    from mailferry.adapters.memory.mailboxstate import MemoryMailboxStateStore  # noqa: PLC0415
    from mailferry.adapters.store.graph_state import SqlMailboxStateStore  # noqa: PLC0415

    path = request.state_path or default_state_path()
    if request.database:
        sql = SqlMailboxStateStore.open(request.database)
    elif read_only and not path.exists():
        return MemoryMailboxStateStore()
    else:
        sql = SqlMailboxStateStore.open_sqlite(path)
    stack.callback(sql.close)
    return sql
