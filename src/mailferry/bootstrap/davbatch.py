"""The composition of a batch job's calendars and contacts (``BatchConnector.dav``).

Part of the one composition root: a job's ``DavRoute`` (its two expanded DAV URLs and their TLS)
and its IMAP logins become two discovered ``DavAccount``s and the item state in the service's
database (one ``SqlItemStateStore`` on the same Engine as the mail state). The login is the
mailbox's own, as for IMAP: the endpoint's token for the mailbox (Bearer), else its admin login
(Basic, on the mailbox's URL: servers that let an admin reach other users' collections), else the
mailbox's password. The item state's pair key is ``bootstrap.dav.dav_key``'s, so a batch and a
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
from mailferry.bootstrap.dav import dav_key
from mailferry.domain.errors import AccountError, FolderError, MailferryError
from mailferry.domain.model import Endpoint
from mailferry.service.scheduler import Job


@dataclass
class DavJobLink:
    """The scheduler's ``DavLink``: both accounts, the item state, the pair key."""

    source: DavAccount
    target: DavAccount
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
    """Both DAV accounts of ``job``, discovered (a wrong password or no DAV at the URL fails
    here, naming the side), and the item state; everything opened is closed on a failure."""
    route = job.dav
    if (
        route is None
        or not isinstance(job.source, Endpoint)
        or not isinstance(job.target, Endpoint)
    ):
        raise AccountError("the batch's endpoints carry no DAV URLs")
    sides = (
        ("source", route.source_url, job.source, job.source_creds, route.source_tls),
        ("target", route.target_url, job.target, job.target_creds, route.target_tls),
    )
    with contextlib.ExitStack() as stack:
        urls, accounts = [], []
        for name, text, endpoint, creds, tls in sides:
            url = parse_dav_url(text, allow_plaintext=True)  # checked when the endpoint was added
            accounts.append(_discovered(name, url, dav_login(url, endpoint, creds), tls, stack))
            urls.append(url)
        state = SqlItemStateStore(open_database(database))
        stack.callback(state.close)
        link = DavJobLink(accounts[0], accounts[1], state, dav_key(urls[0], urls[1]))
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
