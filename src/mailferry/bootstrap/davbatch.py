"""The composition of a batch job's calendars and contacts (``BatchConnector.dav``).

Part of the one composition root: a job's ``DavRoute`` (its two expanded DAV URLs and their TLS)
and its IMAP logins become two discovered ``DavAccount``s and the item state in the service's
database (one ``SqlItemStateStore`` on the same Engine as the mail state). The login is the
mailbox's own, as for IMAP: the endpoint's token for the mailbox (Bearer), else its admin login
(Basic, on the mailbox's URL: servers that let an admin reach other users' collections), else the
mailbox's password. A side without a DAV URL that is Microsoft 365 through Graph is reached through
Graph's calendar, contact and To Do resources (``graphbatch``). The item state's pair key is
``mailferry sync``'s (``bootstrap.dav.dav_key``, ``bootstrap.collections``), so a batch and a
``mailferry sync`` of the same two accounts share their state, as they do for mail.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from sqlalchemy import URL

from mailferry.adapters.dav import DavAccount, DavLogin, DavSession, DavUrl, parse_dav_url
from mailferry.adapters.imap import Credentials
from mailferry.adapters.store.dav_state import SqlItemStateStore
from mailferry.adapters.store.engine import open_database
from mailferry.adapters.tls import TlsOptions
from mailferry.bootstrap.collections import open_graph, open_pst
from mailferry.bootstrap.graphbatch import graph_sides
from mailferry.config import FileStore
from mailferry.domain.davports import CollectionAccount
from mailferry.domain.errors import AccountError, FolderError, MailferryError
from mailferry.domain.model import Endpoint
from mailferry.service.davroutes import DavRoute
from mailferry.service.scheduler import Job


@dataclass
class DavJobLink:
    """The scheduler's ``DavLink``: both accounts, the item state, the pair key."""

    source: CollectionAccount
    target: CollectionAccount
    state: SqlItemStateStore
    key: str

    def close(self) -> None:
        for closing in (self.source, self.target, self.state):
            with contextlib.suppress(MailferryError, OSError):
                closing.close()


def dav_login(url: DavUrl, endpoint: Endpoint, creds: Credentials) -> DavLogin:
    """The IMAP side's credentials, used for its DAV URL."""
    if creds.tokens is not None:
        return DavLogin(url.user, tokens=creds.tokens)
    return DavLogin(endpoint.authuser or url.user, creds.password)


def open_dav_link(job: Job, database: URL) -> DavJobLink:
    """Both collection accounts of ``job``: a DAV URL's, discovered (a wrong password or no DAV
    at the URL fails here, naming the side), else Microsoft 365 through Graph's resources
    (``graphbatch``), or a PST's calendars, contacts and tasks (a ``pst://`` source); and the item
    state. Everything opened is closed on a failure. Other files (maildir://, mbox://, ...) have
    no calendars or contacts to reach."""
    if not isinstance(job.target, Endpoint) or not (
        isinstance(job.source, Endpoint) or job.source.kind == "pst"
    ):
        raise AccountError("files have no calendars or contacts to reach")
    route = job.dav or DavRoute(None, None, TlsOptions(), TlsOptions())
    sides = (
        ("source", route.source_url, job.source, job.source_creds, route.source_tls),
        ("target", route.target_url, job.target, job.target_creds, route.target_tls),
    )
    graphs = graph_sides(job)
    with contextlib.ExitStack() as stack:
        names, accounts = [], []
        for (name, text, endpoint, creds, tls), graph in zip(sides, graphs, strict=True):
            account: CollectionAccount
            if isinstance(endpoint, FileStore):  # a PST's (checked above)
                account, pst_name = open_pst(endpoint.display())
                stack.callback(account.close)
                names.append(pst_name)
            elif text is not None:
                url = parse_dav_url(text, allow_plaintext=True)  # checked when it was added
                account = _discovered(name, url, dav_login(url, endpoint, creds), tls, stack)
                names.append(f"{url.user}@{url.base}{url.path}")  # as bootstrap.dav.dav_key
            elif graph is not None:
                account, graph_name = open_graph(graph, job.routes.plan.collections)
                stack.callback(account.close)
                names.append(graph_name)
            else:
                raise AccountError(f"the {name} endpoint has no calendars or contacts to reach")
            accounts.append(account)
        state = SqlItemStateStore(open_database(database))
        stack.callback(state.close)
        link = DavJobLink(accounts[0], accounts[1], state, f"dav {names[0]} -> {names[1]}")
        stack.pop_all()
        return link


def _discovered(
    name: str, url: DavUrl, login: DavLogin, tls: TlsOptions, stack: contextlib.ExitStack
) -> DavAccount:
    account = DavAccount(DavSession(url, login, tls))
    stack.callback(account.close)
    try:
        account.homes()
    except FolderError as exc:
        raise AccountError(f"{name} DAV {url.base}{url.path}: {exc.reason}") from None
    except AccountError as exc:
        raise type(exc)(f"{name} DAV {url.base}{url.path}: {exc}") from None
    return account
