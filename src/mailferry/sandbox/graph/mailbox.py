"""The FAKE Graph's mailbox API, read side: mailbox discovery, folders and items (delta rounds in
``mailboxdelta``, exportItems and import sessions in ``importexport``).

Written from Microsoft's Graph v1.0 pages (learn.microsoft.com/graph/api/..., the docs repository
microsoftgraph/microsoft-graph-docs-contrib, api-reference/v1.0/):
- usersettings-list-exchange (GET /users/{id}/settings/exchange -> exchangeSettings
  ``primaryMailboxId``; permission User.Read.All, higher User.ReadWrite.All),
- resources/mailboxfolder (``id``, ``displayName``, ``parentFolderId``, ``childFolderCount``,
  ``totalItemCount``, ``type`` = the folder class, ``wellKnownName``: ``inbox``, ``sentitems``, ...,
  null for folders a user made),
- mailbox-list-folders ("the mailboxFolder collection directly under the root folder", paged by
  ``@odata.nextLink``), mailboxfolder-get, mailboxfolder-list-childfolders (MailboxFolder.Read.All,
  higher MailboxFolder.ReadWrite.All),
- mailbox-post-folders (POST /folders and /folders/{id}/childFolders: ``displayName`` and ``type``
  required, 201 Created; MailboxFolder.ReadWrite.All); a duplicate name among siblings is refused
  with 409 ``ErrorFolderExists`` as Exchange does for mailFolders,
- resources/mailboxitem, mailboxfolder-list-items and mailboxitem-get (``$select``, ``$expand``;
  MailboxItem.Read.All, "Higher privileged permissions: Not supported"),
  resources/singlevaluelegacyextendedproperty
  (``$expand=singleValueExtendedProperties($filter=id eq '...')``).

A folder may be named by its id or its well-known name (``folders/inbox/childFolders`` in the
docs' examples). Extended properties shown (graph.md): PidTagInternetMessageId (String 0x1035),
PidLidCleanGlobalObjectId (Binary {6ED8DA90-450B-101B-98DA-00AA003F1305} Id 0x23) and
PidTagSearchKey (Binary 0x300B), binary values in base64 as Graph gives them.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, overload
from urllib.parse import quote, urlencode

from mailferry.sandbox.graph.server import Answer, Call, error, route
from mailferry.sandbox.graph.stream import encode_item

if TYPE_CHECKING:
    from mailferry.sandbox.graph.server import FakeGraph
    from mailferry.sandbox.graph.store import FakeFolder, FakeItem, FakeMailbox

MBX = r"/admin/exchange/mailboxes/(?P<mbx>[^/]+)"
FOLDER = MBX + r"/folders/(?P<folder>[^/]+)"
FOLDER_READ = ("MailboxFolder.Read.All", "MailboxFolder.ReadWrite.All")
FOLDER_WRITE = ("MailboxFolder.ReadWrite.All",)
ITEM_READ = ("MailboxItem.Read.All",)
LIST_OPTIONS = frozenset({"$select", "$top", "$skip", "$expand"})  # what the fake implements

# normalised id -> (id as Graph shows it, the store's prop, binary)
PROPERTIES = {
    "string 0x1035": ("String 0x1035", "internetMessageId", False),
    "binary {6ed8da90-450b-101b-98da-00aa003f1305} id 0x23": (
        "Binary {6ed8da90-450b-101b-98da-00aa003f1305} Id 0x23",
        "cleanGlobalObjectId",
        True,
    ),
    "binary 0x300b": ("Binary 0x300b", "searchKey", True),
}
_EXPAND = re.compile(r"singleValueExtendedProperties\(\$filter=(?P<filter>.+)\)\Z", re.IGNORECASE)
_TERM = re.compile(r"id eq '(?P<id>[^']+)'\Z", re.IGNORECASE)


# -- shared by the mailbox routes ----------------------------------------------------------------
def mailbox_of(call: Call) -> FakeMailbox:
    if call.mailbox is None:  # every route here names its mailbox
        raise RuntimeError("a mailbox route without a mailbox")
    return call.mailbox


def not_found() -> Answer:
    return error(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def find_folder(box: FakeMailbox, key: str) -> FakeFolder | None:
    """By id, or by well-known name (``inbox``, ``msgfolderroot``; any case)."""
    found = box.folders.get(key)
    if found is not None:
        return found
    return next((f for f in box.folders.values() if f.well_known == key.lower()), None)


def bad_query(call: Call, allowed: frozenset[str]) -> Answer | None:
    """Graph refuses a system query option it does not support for a route."""
    for name in call.query:
        if name.startswith("$") and name.lower() not in allowed:
            return error(400, "BadRequest", f"Query option '{name}' is not allowed.")
    return None


def unknown_fields(body: dict[str, Any], allowed: set[str], type_name: str) -> Answer | None:
    for name in body:
        if name not in allowed:
            return error(
                400,
                "RequestBodyRead",
                f"The property '{name}' does not exist on type '{type_name}'. Make sure to only "
                "use property names that are defined by the type.",
            )
    return None


def self_link(fake: FakeGraph, call: Call, query: dict[str, str]) -> str:
    return f"{fake.url}/v1.0{quote(call.path, safe='/:@')}?{urlencode(query)}"


def count(call: Call, name: str, default: int) -> int | Answer:
    text = call.query.get(name)
    if text is None:
        return default
    if not text.isdigit() or (name == "$top" and int(text) == 0):
        return error(400, "BadRequest", f"Invalid value '{text}' for {name}.")
    return int(text)


def select_fields(row: dict[str, Any], select: str | None) -> dict[str, Any]:
    if not select:
        return row
    keep = {name.strip() for name in select.split(",")} | {"id", "singleValueExtendedProperties"}
    return {k: v for k, v in row.items() if k in keep or k.startswith("@")}


def listing(fake: FakeGraph, call: Call, rows: Sequence[dict[str, Any]]) -> Answer:
    """One page of a collection (``$top``/``$skip``, ``$select``), with ``@odata.nextLink``."""
    top = count(call, "$top", fake.page_size)
    skip = count(call, "$skip", 0)
    if isinstance(top, Answer):
        return top
    if isinstance(skip, Answer):
        return skip
    select = call.query.get("$select")
    body: dict[str, Any] = {
        "@odata.context": f"{fake.url}/v1.0/$metadata#{call.path.lstrip('/')}",
        "value": [select_fields(row, select) for row in rows[skip : skip + top]],
    }
    if skip + top < len(rows):
        body["@odata.nextLink"] = self_link(fake, call, {**call.query, "$skip": str(skip + top)})
    return Answer(200, body)


# -- JSON of folders and items --------------------------------------------------------------------
def folder_json(fake: FakeGraph, box: FakeMailbox, folder: FakeFolder) -> dict[str, Any]:
    children = sum(1 for f in box.folders.values() if f.parent_id == folder.id)
    return {
        "@odata.type": "#microsoft.graph.mailboxFolder",
        "id": folder.id,
        "displayName": folder.display_name,
        "parentFolderId": folder.parent_id,
        "parentMailboxUrl": f"{fake.url}/v1.0/admin/exchange/mailboxes/{box.mailbox_id}",
        "childFolderCount": children,
        "totalItemCount": len(folder.items),
        "wellKnownName": folder.well_known,
        "type": folder.folder_class,
    }


def item_json(item: FakeItem, expand: list[str] | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.mailboxItem",
        "@odata.etag": f'W/"{item.change_key}"',
        "id": item.id,
        "createdDateTime": item.created,
        "lastModifiedDateTime": item.modified,
        "changeKey": item.change_key,
        "categories": list(item.props.get("categories", [])),
        "type": item.item_class,
        "size": len(encode_item(item.item_class, item.props)),
    }
    if expand is not None:
        row["singleValueExtendedProperties"] = extended_properties(item, expand)
    return row


def extended_properties(item: FakeItem, wanted: list[str]) -> list[dict[str, str]]:
    """The asked-for properties the item has (an absent one is simply not listed, as in Graph)."""
    shown = []
    for key in wanted:
        known = PROPERTIES.get(key)
        value = item.props.get(known[1]) if known else None
        if known is None or not isinstance(value, str):
            continue
        if known[2]:
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                raw = value.encode()
            value = base64.b64encode(raw).decode()
        shown.append({"id": known[0], "value": value})
    return shown


def parse_expand(call: Call) -> list[str] | Answer | None:
    """The normalised property ids of ``$expand=singleValueExtendedProperties($filter=...)``."""
    text = call.query.get("$expand")
    if text is None:
        return None
    match = _EXPAND.match(text.strip())
    if match is None:
        return error(400, "BadRequest", "Parsing OData Select and Expand failed.")
    wanted = []
    for term in re.split(r"\s+or\s+", match["filter"].strip(), flags=re.IGNORECASE):
        found = _TERM.match(term.strip())
        if found is None:
            return error(400, "ErrorInvalidUrlQueryFilter", "The filter expression is invalid.")
        wanted.append(" ".join(found["id"].lower().split()))
    return wanted


# -- mailbox discovery and folders ---------------------------------------------------------------
@route("GET", r"/users/(?P<mbx>[^/]+)/settings/exchange", "User.Read.All", "User.ReadWrite.All")
def exchange_settings(fake: FakeGraph, call: Call) -> Answer:
    """usersettings-list-exchange: the user's primary mailbox id (no OData options)."""
    if call.query:
        return error(400, "BadRequest", "This method does not support OData query parameters.")
    box = mailbox_of(call)
    return Answer(
        200,
        {
            "@odata.context": f"{fake.url}/v1.0/$metadata#users('{quote(box.upn)}')"
            "/settings/exchange/$entity",
            "primaryMailboxId": box.mailbox_id,
        },
    )


@route("GET", MBX + r"/folders", *FOLDER_READ)
def list_folders(fake: FakeGraph, call: Call) -> Answer:
    """mailbox-list-folders: the folders directly under the root folder."""
    return bad_query(call, LIST_OPTIONS - {"$expand"}) or _children(fake, call, None)


@route("GET", MBX + r"/folders/(?P<folder>(?!delta\Z)[^/]+)", *FOLDER_READ)
def get_folder(fake: FakeGraph, call: Call) -> Answer:
    """mailboxfolder-get."""
    refused = bad_query(call, frozenset({"$select"}))
    if refused is not None:
        return refused
    box = mailbox_of(call)
    folder = find_folder(box, call.match["folder"])
    if folder is None:
        return not_found()
    return Answer(200, select_fields(folder_json(fake, box, folder), call.query.get("$select")))


@route("GET", FOLDER + r"/childFolders", *FOLDER_READ)
def list_child_folders(fake: FakeGraph, call: Call) -> Answer:
    """mailboxfolder-list-childfolders."""
    return bad_query(call, LIST_OPTIONS - {"$expand"}) or _children(
        fake, call, call.match["folder"]
    )


def _children(fake: FakeGraph, call: Call, key: str | None) -> Answer:
    box = mailbox_of(call)
    with fake.store.lock:
        parent = find_folder(box, key if key is not None else box.root_id)
        if parent is None:
            return not_found()
        rows = [folder_json(fake, box, f) for f in box.folders.values() if f.parent_id == parent.id]
    return listing(fake, call, rows)


@route("POST", MBX + r"/folders", *FOLDER_WRITE)
def create_folder(fake: FakeGraph, call: Call) -> Answer:
    """mailbox-post-folders: a folder under the root."""
    return _create(fake, call, None)


@route("POST", FOLDER + r"/childFolders", *FOLDER_WRITE)
def create_child_folder(fake: FakeGraph, call: Call) -> Answer:
    """mailbox-post-folders (its second form): a folder under another."""
    return _create(fake, call, call.match["folder"])


def _create(fake: FakeGraph, call: Call, key: str | None) -> Answer:
    fields = _folder_fields(call.body)
    if isinstance(fields, Answer):
        return fields
    name, folder_class = fields
    box = mailbox_of(call)
    with fake.store.lock:
        parent = find_folder(box, key if key is not None else box.root_id)
        if parent is None:
            return not_found()
        siblings = (f for f in box.folders.values() if f.parent_id == parent.id)
        if any(f.display_name.lower() == name.lower() for f in siblings):
            return error(
                409, "ErrorFolderExists", "A folder with the specified name already exists."
            )
        folder = fake.store.add_folder(box, parent.id, name, folder_class)
        return Answer(201, folder_json(fake, box, folder))


def _folder_fields(body: Any) -> tuple[str, str] | Answer:
    """(displayName, type) of a new folder, or the refusal."""
    if not isinstance(body, dict):
        return error(400, "BadRequest", "Empty Payload. JSON content expected.")
    refused = unknown_fields(
        body, {"displayName", "type", "singleValueExtendedProperties"}, "mailboxFolder"
    )
    if refused is not None:
        return refused
    name, folder_class = body.get("displayName"), body.get("type")
    if not isinstance(name, str) or not name.strip():
        return error(400, "ErrorInvalidRequest", "displayName is required.")
    if not isinstance(folder_class, str) or not folder_class.startswith("IPF"):
        return error(400, "ErrorInvalidRequest", "type (the folder class) is required.")
    return name, folder_class


# -- items ---------------------------------------------------------------------------------------
@route("GET", FOLDER + r"/items", *ITEM_READ)
def list_items(fake: FakeGraph, call: Call) -> Answer:
    """mailboxfolder-list-items (``$expand`` of the recognition properties)."""
    refused = bad_query(call, LIST_OPTIONS)
    expand = parse_expand(call)
    if refused is not None or isinstance(expand, Answer):
        return refused or expand  # type: ignore[return-value]
    box = mailbox_of(call)
    with fake.store.lock:
        folder = find_folder(box, call.match["folder"])
        if folder is None:
            return not_found()
        # only the asked-for page is rendered (a 20,000-item folder is listed in 200 pages)
        rows = _Rendered(list(folder.items.values()), lambda item: item_json(item, expand))
        return listing(fake, call, rows)


class _Rendered(Sequence[dict[str, Any]]):
    """Items as their JSON, rendered when a page is sliced out."""

    def __init__(self, items: list[FakeItem], render: Callable[[FakeItem], dict[str, Any]]) -> None:
        self._items = items
        self._render = render

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self._render(item) for item in self._items[index]]
        return self._render(self._items[index])


@route("GET", FOLDER + r"/items/(?P<item>(?!delta\Z)[^/]+)", *ITEM_READ)
def get_item(fake: FakeGraph, call: Call) -> Answer:
    """mailboxitem-get (``$select``, ``$expand``)."""
    refused = bad_query(call, frozenset({"$select", "$expand"}))
    expand = parse_expand(call)
    if refused is not None or isinstance(expand, Answer):
        return refused or expand  # type: ignore[return-value]
    box = mailbox_of(call)
    with fake.store.lock:
        folder = find_folder(box, call.match["folder"])
        item = folder.items.get(call.match["item"]) if folder is not None else None
        if item is None:
            return not_found()
        return Answer(200, select_fields(item_json(item, expand), call.query.get("$select")))
