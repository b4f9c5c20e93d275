"""A CalDAV/CardDAV account: its homes, its collections, their items; reads and writes.

Every method is one or a few requests over the account's one kept-alive connection
(``DavSession``). Collection-level failures are FolderError (the run goes on with the next
collection), item-level ones ItemError; login and transport failures come from the session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self
from urllib.parse import quote

from mailferry.adapters.dav.collections import collection_info, collection_props, mkcol_request
from mailferry.adapters.dav.discovery import discover
from mailferry.adapters.dav.multistatus import (
    a,
    c,
    d,
    multiget_body,
    propfind_body,
    refused_properties,
    sync_collection_body,
    sync_token,
)
from mailferry.adapters.dav.session import XML, read_multistatus
from mailferry.domain.davmodel import (
    Capabilities,
    CollectionInfo,
    CollectionKind,
    Homes,
    Item,
    ItemRef,
    NewCollection,
    SyncChanges,
)
from mailferry.domain.errors import (
    FolderError,
    ItemConflictError,
    ItemError,
    SyncTokenInvalidError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

    from mailferry.adapters.dav.multistatus import DavResponse
    from mailferry.adapters.dav.session import DavSession

MULTIGET_CHUNK = 100
CONTENT_TYPES = {CollectionKind.CALENDAR: "text/calendar", CollectionKind.ADDRESSBOOK: "text/vcard"}
MULTIGET = {
    CollectionKind.CALENDAR: (c("calendar-multiget"), c("calendar-data")),
    CollectionKind.ADDRESSBOOK: (a("addressbook-multiget"), a("address-data")),
}
# RFC 6578 s3.2: the DAV:valid-sync-token precondition is a 403 or 409 (Radicale); Xandikos
# answers 412.
SYNC_TOKEN_REFUSED = {403, 409, 412}


class DavAccount:
    def __init__(self, session: DavSession) -> None:
        self.session = session
        self._homes: Homes | None = None
        self._capabilities: Capabilities | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.session.close()

    def close(self) -> None:
        self.session.close()

    def capabilities(self) -> Capabilities:
        """OPTIONS on the calendar home (else the principal): the DAV header and the Server."""
        if self._capabilities is None:
            homes = self.homes()
            response = self.session.request("OPTIONS", homes.calendar_home or homes.principal)
            dav = {t.strip().lower() for t in response.headers.get("DAV", "").split(",")}
            server = response.headers.get("Server", "")
            if "X-Sabre-Version" in response.headers:
                server += " sabre/" + response.headers["X-Sabre-Version"]
            self._capabilities = Capabilities(
                auto_schedule="calendar-auto-schedule" in dav,
                server=server.strip().lower() or None,
            )
        return self._capabilities

    def homes(self) -> Homes:
        if self._homes is None:
            self._homes = discover(self.session)
        return self._homes

    def collections(self) -> list[CollectionInfo]:
        """Every collection directly under the calendar and address book homes."""
        homes = self.homes()
        found: dict[str, CollectionInfo] = {}
        for home in dict.fromkeys(h for h in (homes.calendar_home, homes.addressbook_home) if h):
            body = propfind_body(collection_props())
            for response in self.session.multistatus("PROPFIND", home, body, "1"):
                if response.href.rstrip("/") != home.rstrip("/"):
                    info = collection_info(response)
                    if info is not None:
                        found.setdefault(info.href, info)
        return list(found.values())

    def items(self, collection: str) -> list[ItemRef]:
        """Every item's href and ETag (PROPFIND Depth 1)."""
        body = propfind_body([d("getetag"), d("resourcetype")])
        responses = self.session.multistatus("PROPFIND", collection, body, "1")
        return [_ref(r) for r in responses if not _is_collection(r, collection)]

    def sync(self, collection: str, token: str | None) -> SyncChanges:
        """RFC 6578 ``sync-collection``: all items (no token) or the changes since ``token``."""
        body = sync_collection_body(token, [d("getetag")])
        headers = {"Depth": "0", "Content-Type": XML}
        response = self.session.request("REPORT", collection, body=body, headers=headers)
        if token and response.status_code in SYNC_TOKEN_REFUSED:
            raise SyncTokenInvalidError(collection, "the server no longer accepts this sync token")
        responses = read_multistatus(response, collection)
        new_token = sync_token(response.content)
        if new_token is None:
            raise FolderError(collection, "sync-collection answered without a sync-token")
        changed = [
            _ref(r) for r in responses if r.status != 404 and not _is_collection(r, collection)
        ]
        removed = [r.href for r in responses if r.status == 404]
        return SyncChanges(new_token, tuple(changed), tuple(removed))

    def read(
        self, collection: str, kind: CollectionKind, hrefs: list[str], chunk: int = MULTIGET_CHUNK
    ) -> Iterator[Item | ItemError]:
        """The items at ``hrefs``, ``chunk`` per multiget REPORT; an ItemError for each missing.

        The data is the text of an XML element, and XML parsers turn every CRLF into LF: line
        ends are put back as the CRLF that iCalendar and vCard require (RFC 5545 s3.1, RFC 6350
        s3.2). ``get`` returns the stored bytes exactly, whatever they are.
        """
        report, data = MULTIGET[kind]
        for start in range(0, len(hrefs), chunk):
            wanted = hrefs[start : start + chunk]
            body = multiget_body(report, data, [quote(h) for h in wanted])
            for response in self.session.multistatus("REPORT", collection, body, "1"):
                text = response.text(data)
                if text is None:
                    yield ItemError(collection, response.href, f"not readable ({response.status})")
                else:
                    data_bytes = text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
                    yield Item(response.href, response.text(d("getetag")), data_bytes)

    def get(self, href: str) -> Item:
        """One item, byte for byte as the server stores it."""
        response = self.session.request("GET", quote(href))
        if response.status_code != 200:
            raise ItemError(_parent(href), href, f"GET: HTTP {response.status_code}")
        return Item(href, response.headers.get("ETag"), response.content)

    def put(
        self, href: str, data: bytes, kind: CollectionKind, etag: str | None = None
    ) -> str | None:
        """Write one item: new (``If-None-Match: *``) or replacing ``etag`` (``If-Match``).

        Returns the new ETag when the server says it (a server may not, if it changed the data).
        What a crash leaves: the caller commits its intent (source href, UID, target href) to the
        state before calling; if the answer is lost (ConnectError, kill -9) the PUT may or may
        not have happened, and the next attempt's ``If-None-Match: *`` turns a second copy into
        ItemConflictError (412), resolved by looking the UID up, never by writing again. Some
        servers ignore the precondition: the sync looks first (issue #13 rule 4).
        """
        precondition = {"If-Match": etag} if etag else {"If-None-Match": "*"}
        headers = {"Content-Type": f"{CONTENT_TYPES[kind]}; charset=utf-8", **precondition}
        response = self.session.request("PUT", quote(href), body=data, headers=headers)
        if response.status_code in {409, 412}:
            raise ItemConflictError(_parent(href), href, response.status_code)
        if response.status_code not in {200, 201, 204}:
            said = f"PUT: HTTP {response.status_code} {response.reason_phrase}".rstrip()
            raise ItemError(_parent(href), href, said)  # 423 Locked: a stale lock (Xandikos)
        new_etag: str | None = response.headers.get("ETag")
        return new_etag

    def create_collection(self, href: str, new: NewCollection) -> tuple[str, ...]:
        """MKCALENDAR (RFC 4791) or extended MKCOL (RFC 5689), with the properties of ``new``.

        Returns the properties the server refused to set (Clark names) while creating the
        collection (Xandikos refuses ``addressbook-description``): the caller reports them.
        """
        method, body = mkcol_request(new)
        headers = {"Content-Type": XML}
        response = self.session.request(method, quote(href), body=body, headers=headers)
        if response.status_code != 201:
            raise FolderError(href, f"{method}: HTTP {response.status_code}")
        try:
            return refused_properties(response.content)
        except SyntaxError as exc:  # ET.ParseError: created, but the answer is unreadable
            raise FolderError(href, f"{method}: created, unreadable answer ({exc})") from exc


def _parent(href: str) -> str:
    return href.rstrip("/").rpartition("/")[0] + "/"


def _ref(response: DavResponse) -> ItemRef:
    return ItemRef(response.href, response.text(d("getetag")))


def _is_collection(response: DavResponse, collection: str) -> bool:
    if response.href.rstrip("/") == collection.rstrip("/"):
        return True
    return any(e.tag == d("collection") for e in response.children(d("resourcetype")))
