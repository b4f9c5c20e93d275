"""The only place that speaks WebDAV/CalDAV/CardDAV (over httpx): the account URL (url.py), the
connection and its error translation (session.py), the XML (multistatus.py), discovery
(discovery.py), collection properties (collections.py) and the account itself (account.py)."""

from mailferry.adapters.dav.account import DavAccount
from mailferry.adapters.dav.session import DavLogin, DavSession
from mailferry.adapters.dav.url import DavUrl, parse_dav_url
from mailferry.domain.davmodel import (
    CollectionInfo,
    CollectionKind,
    Homes,
    Item,
    ItemRef,
    NewCollection,
    SyncChanges,
)

__all__ = [
    "CollectionInfo",
    "CollectionKind",
    "DavAccount",
    "DavLogin",
    "DavSession",
    "DavUrl",
    "Homes",
    "Item",
    "ItemRef",
    "NewCollection",
    "SyncChanges",
    "parse_dav_url",
]
