"""The two collection accounts of a calendars-and-contacts pass: each side a CalDAV/CardDAV account
(a DAV URL, or ``--…-dav`` beside an IMAP URL) or Microsoft 365 through Graph's calendar, contact
and To Do resources (``GraphCollections``), and the item state they share.

Part of the one composition root (``mailferry.bootstrap``): ``bootstrap.dav`` opens DAV accounts,
``bootstrap.graph`` says which side is Microsoft 365; this module puts either kind on either side.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mailferry.adapters.dav import DavAccount, DavSession, parse_dav_url
from mailferry.adapters.files.pstcollections import PstCollections
from mailferry.adapters.graph.collections import GraphCollections
from mailferry.adapters.memory.davstate import MemoryItemStateStore
from mailferry.adapters.store.dav_state import SqlItemStateStore
from mailferry.adapters.tls import TlsOptions
from mailferry.bootstrap import SyncRequest
from mailferry.bootstrap.dav import DavSide, dav_key, request_login, request_sides
from mailferry.bootstrap.graph import GraphSide, Routes, is_pst_url
from mailferry.config import default_state_path, parse_file_store
from mailferry.domain.davports import CollectionAccount, ItemStateStore
from mailferry.domain.errors import AccountError, ConfigError, FolderError
from mailferry.domain.workloads import Workload


@dataclass
class CollectionPair:
    source: CollectionAccount
    target: CollectionAccount
    state: ItemStateStore
    key: str


def _dav_sides(request: SyncRequest, kw: dict[str, Any]) -> list[DavSide | None]:
    """Each side's DAV account if it has one (a DAV URL, or ``--…-dav``)."""
    source_dav, target_dav = kw.get("source_dav"), kw.get("target_dav")
    if source_dav is not None and target_dav is not None:
        sides = request_sides(request, source_dav, target_dav)
        assert sides is not None  # noqa: S101 - both options given
        return list(sides)
    both = request_sides(request, None, None)  # both URLs DAV
    if both is not None:
        return list(both)
    found: list[DavSide | None] = [None, None]
    for index, (side, url) in enumerate(
        ((request.source, source_dav), (request.target, target_dav))
    ):
        dav_url = url or (
            side.url if side.url.lower().startswith(("http://", "https://")) else None
        )
        if dav_url is not None:
            env = f"MAILFERRY_{side.name.upper()}_DAV_PASSWORD" if url else side.password_env
            password_file = None if url else side.password_file
            found[index] = DavSide(
                dav_url, side.name, env, password_file, side.ca_file, side.insecure
            )
    return found


def _open_dav(request: SyncRequest, side: DavSide) -> tuple[DavAccount, str]:
    url = parse_dav_url(side.url, allow_plaintext=request.allow_plaintext)
    login = request_login(request)(side, url)
    account = DavAccount(DavSession(url, login, TlsOptions(side.ca_file, side.insecure)))
    try:  # discovery now: login and "no DAV here" errors before any work
        account.homes()
    except FolderError as exc:
        account.close()
        raise AccountError(f"{side.name} {side.url}: {exc.reason}") from None
    return account, f"{url.user}@{url.base}{url.path}"


def open_graph(side: GraphSide, workloads: frozenset[Workload]) -> tuple[GraphCollections, str]:
    """Only the resources of the workloads that move are listed (the app may lack the others):
    calendars for events, To Do lists for tasks, contact folders for contacts. Its name in the
    item state's pair key comes with it (a batch's jobs use both: ``davbatch``)."""
    account = GraphCollections(
        side.session(),
        side.mailbox,
        calendars=Workload.CALENDAR in workloads,
        contacts=Workload.CONTACTS in workloads,
        tasks=Workload.TASKS in workloads,
    )
    return account, f"m365 {side.mailbox}@{side.graph_url}"


def open_pst(url: str) -> tuple[PstCollections, str]:
    """A PST's calendars, contacts and tasks (read-only); named in the pair key by its path,
    as its mail is (``FileStore.display``)."""
    store = parse_file_store(url, side="source")
    return PstCollections(store.path), store.display()


@contextlib.contextmanager
def open_collection_pair(
    request: SyncRequest, kw: dict[str, Any], routes: Routes, *, read_only: bool = False
) -> Iterator[CollectionPair]:
    """Both collection accounts, logged in and discovered, and the item state."""
    davs = _dav_sides(request, kw)
    graphs = (routes.source, routes.target)
    path = request.state_path or default_state_path()
    with contextlib.ExitStack() as stack:
        state: ItemStateStore
        if read_only and not path.exists():
            state = MemoryItemStateStore()
        else:
            sql = SqlItemStateStore.open_sqlite(path)
            stack.callback(sql.close)
            state = sql
        accounts: list[CollectionAccount] = []
        names: list[str] = []
        for dav, graph, side in zip(davs, graphs, (request.source, request.target), strict=True):
            account: CollectionAccount
            if is_pst_url(side.url) and side.name == "source":
                account, name = open_pst(side.url)
            elif dav is not None:
                account, name = _open_dav(request, dav)
            elif graph is not None:
                account, name = open_graph(graph, routes.plan.collections)
            else:
                raise ConfigError(f"the {side.name} has no calendars or contacts to reach")
            stack.callback(account.close)
            accounts.append(account)
            names.append(name)
        key = f"dav {names[0]} -> {names[1]}"
        yield CollectionPair(accounts[0], accounts[1], state, key)


__all__ = ["CollectionPair", "dav_key", "open_collection_pair", "open_graph", "open_pst"]
