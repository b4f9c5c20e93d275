"""The composition of a batch job's Microsoft 365 mailboxes (``BatchConnector.mailboxes``; the
Graph side of ``BatchConnector.dav`` is ``bootstrap.collections.open_graph``'s).

Part of the one composition root. Each endpoint's Graph access is ``service.graphjobs``'s
(``GraphAccesses``: made once per endpoint, like the IMAP token providers). A job's mailbox on each side is the CSV row's login
for that side; both mailboxes get a Graph session of their own (Graph's limits are per mailbox)
and the mailbox state is the service database's (one ``SqlMailboxStateStore`` on the same
Engine as the mail state). The pair key is ``bootstrap.graph.mailbox_pair_key``'s, so a batch and
a ``mailferry sync`` of the same two mailboxes share their state.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from sqlalchemy import URL

from mailferry.adapters.graph.mailbox import GraphMailbox
from mailferry.adapters.store.engine import open_database
from mailferry.adapters.store.graph_state import SqlMailboxStateStore
from mailferry.bootstrap.graph import GraphSide, mailbox_pair_key
from mailferry.domain.errors import AccountError, MailferryError
from mailferry.service.graphjobs import GraphAccess
from mailferry.service.scheduler import Job


def graph_sides(job: Job) -> tuple[GraphSide | None, GraphSide | None]:
    """The job's sides that are Microsoft 365 through Graph, each as its CSV login's mailbox."""
    users = (job.mailbox.source_user, job.mailbox.target_user)
    accesses = (job.routes.source, job.routes.target)
    return (
        _side("source", accesses[0], users[0]),
        _side("target", accesses[1], users[1]),
    )


def _side(name: str, access: GraphAccess | None, user: str) -> GraphSide | None:
    if access is None:
        return None
    return GraphSide(name, access.graph_url, user, access.tokens, access.tls, access.roles)


@dataclass
class GraphJobLink:
    """The scheduler's ``MailboxLink``: both mailboxes, the mailbox state, the pair key."""

    source: GraphMailbox
    target: GraphMailbox
    state: SqlMailboxStateStore
    key: str
    stack: contextlib.ExitStack

    def close(self) -> None:
        with contextlib.suppress(MailferryError, OSError):
            self.stack.close()


def open_mailbox_link(job: Job, database: URL) -> GraphJobLink:
    """Both mailboxes of ``job`` through Graph (the mailbox is resolved on first use: an access
    policy that keeps the app out fails the pass there, naming the mailbox) and the state."""
    source, target = graph_sides(job)
    if source is None or target is None:
        raise AccountError("the mailbox import/export API needs Microsoft 365 on both ends")
    with contextlib.ExitStack() as stack:
        sessions = [stack.enter_context(side.session()) for side in (source, target)]
        state = SqlMailboxStateStore(open_database(database))
        stack.callback(state.close)
        return GraphJobLink(
            GraphMailbox(sessions[0], source.mailbox),
            GraphMailbox(sessions[1], target.mailbox),
            state,
            mailbox_pair_key(source, target),
            stack.pop_all(),
        )
