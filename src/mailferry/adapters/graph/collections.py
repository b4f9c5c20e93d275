"""A Microsoft 365 mailbox's calendars, contacts and To Do lists as a ``CollectionAccount``
(domain/davports.py), so the CalDAV/CardDAV sync (service/davsync.py) reads from and writes to it
unchanged. To Do lists are calendars whose components are ("VTODO",) (the "tasks" workload); their
requests and what each task keeps are in todolists.py, the VTODO conversion in tasks.py.

(Over 400 lines: the port's ten methods over three kinds of Graph collection share one href index
and one lock; the conversions and the per-kind requests already live in their own modules.)

Hrefs (synthetic: Graph has none)
    homes           /graph/{user}/ (principal), .../calendars/, .../contacts/
    collections     home + name + "/": the name we gave it (our ``MailferryCollection`` extended
                    property, set by ``create_collection``; a To Do list's open extension), else
                    "calendar" / "contacts" / "tasks" for the default calendar / contact folder /
                    To Do list, else the Graph id (a list whose name a calendar has: its id)
    items           collection + name: the name the sync chose (our ``MailferryName`` property,
                    set at creation), else the Graph id + ".ics"/".vcf". An item created at href H
                    is listed at H afterwards (davsync's contract).
ETag: the item's ``changeKey`` (a series': its master's, which changes with any occurrence).

Writing (put): the iCalendar/vCard is converted (events.py, cards.py); our ``MailferryItem``
property keeps the UID, the source's bytes and a fingerprint of what was written, so an item
nobody changed in Outlook reads back as the bytes the source had (alarms, X- properties, photos
included); one changed there is converted from Graph and keeps the source's other properties.
A create is POSTed with a ``transactionId`` derived from the calendar and the UID: Graph answers
a repeated POST (after a lost answer) with the event it made the first time. An update is a
PATCH with ``If-Match`` (412: ``ItemConflictError``). Changed occurrences are PATCHed, cancelled
ones DELETEd, after the series is written.

Refused (ItemError, with the reason): an event with ORGANIZER/ATTENDEE (Graph mails attendees and
cannot be told not to: the sync parks them, domain/attendees.py), an RRULE Graph cannot hold, a
component other than VEVENT in a calendar (a VTODO there: "Microsoft 365 keeps tasks in To Do
lists, not in calendars"; a calendar holding both stays an event calendar), a VTODO To Do cannot
hold (tasks.py).
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mailferry.adapters.graph import cards, events
from mailferry.adapters.graph.recurrence import Unsupported
from mailferry.adapters.graph.seriesrequests import SeriesRequests
from mailferry.adapters.graph.session import GraphAnswerError, expect
from mailferry.adapters.graph.todolists import TodoLists
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
from mailferry.domain.errors import ConnectError, FolderError, ItemConflictError, ItemError
from mailferry.domain.items import identify

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mailferry.adapters.graph.session import GraphSession

# Our named properties (MAPI named properties in a GUID of ours: learn.microsoft.com/graph/api/
# resources/extended-properties-overview, "String {guid} Name name")
NAMESPACE = "{6f0b3a5c-1d2e-4c8f-9a7b-3e5d1c2b4a60}"
COLLECTION_PROP = f"String {NAMESPACE} Name MailferryCollection"
NAME_PROP = f"String {NAMESPACE} Name MailferryName"
ITEM_PROP = f"String {NAMESPACE} Name MailferryItem"
TRANSACTIONS = uuid.UUID("0b9a1f2e-6c4d-4e8a-b3f5-7d2c9e1a4b68")
TEXT_BODIES = {"Prefer": 'outlook.body-content-type="text"'}
SERVER = "microsoft-graph"


def _expand(*props: str) -> dict[str, str]:
    wanted = " or ".join(f"id eq '{p}'" for p in props)
    return {"$expand": f"singleValueExtendedProperties($filter={wanted})"}


def _prop(resource: dict[str, Any], prop: str) -> str | None:
    for found in resource.get("singleValueExtendedProperties") or []:
        if str(found.get("id", "")).lower() == prop.lower():
            return str(found.get("value"))
    return None


class _Where:
    """One collection: what it is on Graph and where its items are listed and created."""

    def __init__(self, info: CollectionInfo, kind: str, graph_id: str, items_path: str) -> None:
        self.info, self.kind, self.graph_id, self.items_path = info, kind, graph_id, items_path
        self.index: dict[str, str] | None = None  # href -> Graph id, once listed
        self.uids: dict[str, str] = {}  # To Do: UID -> href, as listed


class GraphCollections:
    def __init__(
        self,
        session: GraphSession,
        user: str,
        *,
        calendars: bool = True,
        contacts: bool = True,
        tasks: bool = False,
    ) -> None:
        self.session = session
        self.user = user
        # what the app may list: a workload it has no permission for is not asked for (403)
        self.listed = (calendars, contacts, tasks)
        self.base = f"/users/{quote(user)}"
        self.todo = TodoLists(session, self.base, self._pages)
        self.series = SeriesRequests(session, self.base, self._pages)
        self.root = f"/graph/{user}/"
        self._wheres: dict[str, _Where] = {}
        self._lock = threading.Lock()

    # -- account ---------------------------------------------------------------------------------
    def capabilities(self) -> Capabilities:
        return Capabilities(auto_schedule=True, can_create=True, server=SERVER)

    def homes(self) -> Homes:
        return Homes(self.root, self.root + "calendars/", self.root + "contacts/")

    def close(self) -> None:
        self.session.close()

    def collections(self) -> list[CollectionInfo]:
        calendars = self._calendars() if self.listed[0] else []
        wheres = (
            calendars
            + (self._todo_lists(calendars) if self.listed[2] else [])
            + (self._contact_folders() if self.listed[1] else [])
        )
        with self._lock:
            old = self._wheres
            self._wheres = {w.info.href: w for w in wheres}
            for href, where in self._wheres.items():
                if href in old:
                    where.index = old[href].index
        return [w.info for w in wheres]

    def _calendars(self) -> list[_Where]:
        out = []
        for cal in self._pages(f"{self.base}/calendars", _expand(COLLECTION_PROP)):
            name = _prop(cal, COLLECTION_PROP) or (
                "calendar" if cal.get("isDefaultCalendar") else cal["id"]
            )
            info = CollectionInfo(
                self.root + "calendars/" + name + "/",
                CollectionKind.CALENDAR,
                ("{DAV:}collection", "{urn:ietf:params:xml:ns:caldav}calendar"),
                displayname=cal.get("name"),
                color=cal.get("hexColor") or None,
                components=("VEVENT",),
            )
            out.append(
                _Where(info, "events", cal["id"], f"{self.base}/calendars/{cal['id']}/events")
            )
        return out

    def _todo_lists(self, calendars: list[_Where]) -> list[_Where]:
        taken = {w.info.href for w in calendars}
        out = []
        for name, displayname, list_id in self.todo.lists():
            href = self.root + "calendars/" + name + "/"
            if href in taken:
                href = self.root + "calendars/" + list_id + "/"
            taken.add(href)
            info = CollectionInfo(
                href,
                CollectionKind.CALENDAR,
                ("{DAV:}collection", "{urn:ietf:params:xml:ns:caldav}calendar"),
                displayname=displayname,
                components=("VTODO",),
            )
            out.append(_Where(info, "tasks", list_id, f"{self.base}/todo/lists/{list_id}/tasks"))
        return out

    def _contact_folders(self) -> list[_Where]:
        default = CollectionInfo(
            self.root + "contacts/contacts/",
            CollectionKind.ADDRESSBOOK,
            ("{DAV:}collection", "{urn:ietf:params:xml:ns:carddav}addressbook"),
            displayname="Contacts",
        )
        out = [_Where(default, "contacts", "", f"{self.base}/contacts")]
        for folder in self._pages(f"{self.base}/contactFolders", _expand(COLLECTION_PROP)):
            name = _prop(folder, COLLECTION_PROP) or folder["id"]
            info = CollectionInfo(
                self.root + "contacts/" + name + "/",
                CollectionKind.ADDRESSBOOK,
                default.resourcetype,
                displayname=folder.get("displayName"),
            )
            path = f"{self.base}/contactFolders/{folder['id']}/contacts"
            out.append(_Where(info, "contacts", folder["id"], path))
        return out

    def create_collection(self, href: str, new: NewCollection) -> tuple[str, ...]:
        name = href.rstrip("/").rsplit("/", 1)[-1]
        prop = [{"id": COLLECTION_PROP, "value": name}]
        refused: list[str] = []
        if new.kind is CollectionKind.CALENDAR and new.components and set(new.components) <= {"VTODO"}:  # fmt: skip
            self.todo.create_list(href, name, new.displayname or name)
            return tuple(n for n, v in (("calendar-color", new.color),
                         ("description", new.description), ("calendar-timezone", new.timezone)) if v)  # fmt: skip
        if new.kind is CollectionKind.CALENDAR:
            if new.components and "VEVENT" not in new.components:
                raise FolderError(href, "only event calendars and To Do lists are created on Microsoft 365")  # fmt: skip
            body: dict[str, Any] = {"name": new.displayname or name, "singleValueExtendedProperties": prop}  # fmt: skip
            if new.color:
                refused.append("calendar-color")  # Graph takes a colour name, not #RRGGBB
            path = f"{self.base}/calendars"
        elif new.kind is CollectionKind.ADDRESSBOOK:
            body = {"displayName": new.displayname or name, "singleValueExtendedProperties": prop}
            path = f"{self.base}/contactFolders"
        else:
            raise FolderError(href, f"cannot create a {new.kind}")
        if new.description:
            refused.append("description")
        if new.timezone:
            refused.append("calendar-timezone")
        try:
            expect(self.session.request("POST", path, json=body), 201)
        except GraphAnswerError as exc:
            raise FolderError(href, exc.reason) from None
        return tuple(refused)

    # -- items -----------------------------------------------------------------------------------
    def items(self, collection: str) -> list[ItemRef]:
        where = self._where(collection)
        if where.kind == "tasks":
            return self._tasks(where, collection)
        index: dict[str, str] = {}
        refs = []
        params = {"$select": "id,changeKey", **_expand(NAME_PROP)}
        suffix = ".ics" if where.kind == "events" else ".vcf"
        for found in self._pages(where.items_path, params, folder=collection):
            href = collection + (_prop(found, NAME_PROP) or found["id"] + suffix)
            index[href] = found["id"]
            refs.append(ItemRef(href, found.get("changeKey")))
        where.index = index
        return refs

    def _tasks(self, where: _Where, collection: str) -> list[ItemRef]:
        index: dict[str, str] = {}
        uids: dict[str, str] = {}
        refs = []
        for task_id, name, uid, etag in self.todo.tasks(where.graph_id, collection):
            href = collection + (name or task_id + ".ics")
            index[href] = task_id
            if uid:
                uids[uid] = href
            refs.append(ItemRef(href, etag))
        where.index, where.uids = index, uids
        return refs

    def sync(self, collection: str, token: str | None) -> SyncChanges:  # noqa: ARG002 - the port
        raise FolderError(collection, "no sync-collection on Microsoft 365 (listed whole)")

    def read(
        self,
        collection: str,
        kind: CollectionKind,  # noqa: ARG002 - the port's; the collection says it
        hrefs: list[str],
    ) -> Iterator[Item | ItemError]:
        where = self._where(collection)
        for href in hrefs:
            graph_id = self._id_of(where, collection, href)
            if graph_id is None:
                yield ItemError(collection, href, "not found (HTTP 404)")
                continue
            try:
                yield self._read_one(where, href, graph_id)
            except GraphAnswerError as exc:
                yield ItemError(collection, href, exc.reason)

    def _read_one(self, where: _Where, href: str, graph_id: str) -> Item:
        if where.kind == "tasks":
            data, etag = self.todo.read(where.graph_id, graph_id)
            return Item(href, etag, data)
        path = self._item_path(where, graph_id)
        params = _expand(NAME_PROP, ITEM_PROP)
        found = expect(self.session.request("GET", path, params=params, headers=TEXT_BODIES), 200)
        meta = json.loads(_prop(found, ITEM_PROP) or "{}")
        original = meta.get("data", "").encode() or None
        uid = meta.get("uid") or found.get("iCalUId") or graph_id
        if where.kind == "events":
            series = self.series.read(found, bool(meta.get("floating")))
            if original is not None and meta.get("fp") == events.fingerprint(series):
                return Item(href, found.get("changeKey"), original)
            converted = events.render_event(series, uid)
            return Item(href, found.get("changeKey"), events.with_residue(converted, original))
        if original is not None and meta.get("fp") == cards.fingerprint(found):
            return Item(href, found.get("changeKey"), original)
        rendered = cards.render_contact(found, uid, cards.version_of(original))
        return Item(href, found.get("changeKey"), cards.with_residue(rendered, original))

    def put(
        self,
        href: str,
        data: bytes,
        kind: CollectionKind,  # noqa: ARG002 - the port's; the collection says it
        etag: str | None = None,
    ) -> str | None:
        collection, _, name = href.rpartition("/")
        collection += "/"
        where = self._where(collection)
        try:
            if where.kind == "events":
                return self._put_event(where, collection, name, data, etag)
            if where.kind == "tasks":
                return self._put_task(where, collection, name, data, etag)
            return self._put_contact(where, collection, name, data, etag)
        except Unsupported as exc:
            raise ItemError(collection, href, str(exc)) from None
        except GraphAnswerError as exc:
            if exc.status == 412:
                raise ItemConflictError(collection, href, 412) from None
            raise ItemError(collection, href, exc.reason) from None

    def _put_event(
        self, where: _Where, collection: str, name: str, data: bytes, etag: str | None
    ) -> str | None:
        plan = events.plan_event(data)
        series = events.GraphSeries(plan.master, plan.exceptions, tuple(plan.cancelled), plan.floating)  # fmt: skip
        meta = {"uid": plan.uid, "floating": plan.floating, "fp": events.fingerprint(series)}
        body = dict(plan.master, singleValueExtendedProperties=self._props(name, meta, data))
        if etag is None:
            self._refuse_taken(where, collection + name)
            seed = f"{where.graph_id}/{plan.uid or name}"
            body["transactionId"] = str(uuid.uuid5(TRANSACTIONS, seed))
            answer = self.session.request("POST", where.items_path, json=body)
            event = expect(answer, 201, 200)
        else:
            graph_id = self._id_of(where, collection, collection + name) or ""
            answer = self.session.request(
                "PATCH",
                f"{self.base}/events/{graph_id}",
                json=body,
                headers={"If-Match": f'W/"{etag}"'},
            )
            event = expect(answer, 200)
        self._remember(where, collection + name, event["id"])
        if plan.exceptions or plan.cancelled:
            try:
                self.series.write_occurrences(event, plan)
            except (Unsupported, GraphAnswerError):
                if etag is None:  # not half a series: the next pass creates it whole again
                    self.session.request("DELETE", f"{self.base}/events/{event['id']}")
                    self._forget(where, collection + name)
                raise
            return None  # the series' changeKey moved with its occurrences: listed afterwards
        return str(event.get("changeKey")) or None

    def _put_task(
        self, where: _Where, collection: str, name: str, data: bytes, etag: str | None
    ) -> str | None:
        if etag is not None:
            graph_id = self._id_of(where, collection, collection + name) or ""
            self.todo.update(where.graph_id, graph_id, data, etag)
            return None  # the extension's PATCH moved the task's ETag: listed afterwards
        self._refuse_taken(where, collection + name, identify(data).uid)
        try:
            task_id, uid, new_etag = self.todo.create(where.graph_id, name, data)
        except ConnectError:
            with self._lock:  # no answer: it may be there; list again before creating again
                where.index = None
            raise
        self._remember(where, collection + name, task_id)
        if uid:
            with self._lock:
                where.uids[uid] = collection + name
        return new_etag

    def _put_contact(
        self, where: _Where, collection: str, name: str, data: bytes, etag: str | None
    ) -> str | None:
        uid, contact = cards.plan_contact(data)
        meta = {"uid": uid, "fp": cards.fingerprint(contact)}
        body = dict(contact, singleValueExtendedProperties=self._props(name, meta, data))
        if etag is None:
            self._refuse_taken(where, collection + name)
            found = expect(self.session.request("POST", where.items_path, json=body), 201)
        else:
            graph_id = self._id_of(where, collection, collection + name) or ""
            answer = self.session.request(
                "PATCH",
                f"{self.base}/contacts/{graph_id}",
                json=body,
                headers={"If-Match": f'W/"{etag}"'},
            )
            found = expect(answer, 200)
        self._remember(where, collection + name, found["id"])
        return str(found.get("changeKey")) or None

    # -- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _props(name: str, meta: dict[str, Any], data: bytes) -> list[dict[str, str]]:
        text = json.dumps({**meta, "data": data.decode("utf-8", "replace")})
        return [{"id": NAME_PROP, "value": name}, {"id": ITEM_PROP, "value": text}]

    def _refuse_taken(self, where: _Where, href: str, uid: str | None = None) -> None:
        """``If-None-Match: *``: an item listed at ``href`` already is a 412; so is a task whose
        UID another name holds (a To Do list has no ``transactionId``: the sync finds it)."""
        if where.index is None:
            self.items(where.info.href)
        if where.index is not None and href in where.index:
            raise ItemConflictError(where.info.href, href, 412)
        if uid is not None and uid in where.uids:
            raise ItemConflictError(where.info.href, href, 412)

    def _remember(self, where: _Where, href: str, graph_id: str) -> None:
        with self._lock:
            if where.index is not None:
                where.index[href] = graph_id

    def _forget(self, where: _Where, href: str) -> None:
        with self._lock:
            if where.index is not None:
                where.index.pop(href, None)

    def _id_of(self, where: _Where, collection: str, href: str) -> str | None:
        if where.index is None or href not in where.index:
            self.items(collection)
        return (where.index or {}).get(href)

    def _item_path(self, where: _Where, graph_id: str) -> str:
        return f"{self.base}/{'events' if where.kind == 'events' else 'contacts'}/{graph_id}"

    def _where(self, collection: str) -> _Where:
        if collection not in self._wheres:
            self.collections()
        where = self._wheres.get(collection)
        if where is None:
            raise FolderError(collection, "no such collection (HTTP 404)")
        return where

    def _pages(
        self,
        path: str,
        params: dict[str, str],
        headers: dict[str, str] | None = None,
        *,
        folder: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        url: str | None = path
        query: dict[str, str] | None = params
        while url is not None:
            try:
                body = expect(self.session.request("GET", url, params=query, headers=headers), 200)
            except GraphAnswerError as exc:
                raise FolderError(folder or path, exc.reason) from None
            yield from body.get("value", [])
            url, query = body.get("@odata.nextLink"), None
