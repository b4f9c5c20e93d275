"""FAKE Graph: Microsoft To Do lists and tasks (events: ``resources``; contacts: ``resourcebook``).

A list is a folder of class IPF.Task: the built-in "Tasks" list is the well-known ``tasks`` folder
(``wellknownListName: defaultList``), the others are task folders under it. A task is an IPM.Task
item of it whose ``props`` are its Graph JSON fields (``title``, ``status``, ``dueDateTime``, ...:
what ``mailboxfill.add_task`` makes too, so the mailbox API exports the same items) plus
``openExtensions`` (extensionName -> its data). Pages of Microsoft's documentation each route
follows are named in its docstring (learn.microsoft.com/graph/api/...); todoTask and todoTaskList
take open extensions (resources/opentypeextension), not extended properties.
"""

from __future__ import annotations

import re
from typing import Any

from mailferry.sandbox.graph import odata
from mailferry.sandbox.graph.server import Answer, Call, FakeGraph, error, route
from mailferry.sandbox.graph.store import FakeFolder, FakeItem, FakeMailbox

USER = r"/users/(?P<mbx>[^/]+)"
LISTS = USER + r"/todo/lists"
TASKS = LISTS + r"/(?P<list>[^/]+)/tasks"
TASK = TASKS + r"/(?P<id>[^/]+)"
READ, WRITE = "Tasks.Read.All", "Tasks.ReadWrite.All"
EXT = "extensions"
TASK_FIELDS = frozenset(
    {"title", "body", "categories", "completedDateTime", "dueDateTime", "startDateTime",
     "importance", "isReminderOn", "recurrence", "reminderDateTime", "status",
     "linkedResources", "checklistItems", EXT}
)  # fmt: skip
LIST_FIELDS = frozenset({"displayName", EXT})
STATUSES = frozenset({"notStarted", "inProgress", "completed", "waitingOnOthers", "deferred"})
IMPORTANCES = frozenset({"low", "normal", "high"})
TIMES = ("completedDateTime", "dueDateTime", "startDateTime", "reminderDateTime")
OPEN_TYPE = "microsoft.graph.openTypeExtension"
NOT_FOUND = ("ErrorItemNotFound", "The specified object was not found in the store.")
_EXT_FILTER = re.compile(r"extensions\(\$filter=id eq '([^']+)'\)\Z", re.IGNORECASE)


def _box(call: Call) -> FakeMailbox:
    if call.mailbox is None:  # every route here names one (the server resolved it)
        raise RuntimeError(call.path)
    return call.mailbox


def _lists(box: FakeMailbox) -> list[FakeFolder]:
    default = box.well_known("tasks")
    others = [f for f in box.folders.values() if f.parent_id == default.id and f.folder_class == "IPF.Task"]  # fmt: skip
    return [default, *others]


def _list(box: FakeMailbox, list_id: str) -> FakeFolder | None:
    return next((f for f in _lists(box) if f.id == list_id), None)


def _expanded(call: Call, resource: dict[str, Any], exts: dict[str, dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """opentypeextension-get: ``$expand=extensions($filter=id eq '{name}')`` adds the one named
    (by extensionName or fully qualified id); without it no extension is shown."""
    match = _EXT_FILTER.match(call.query.get("$expand", "").strip())
    if match:
        wanted = match.group(1).rsplit(".", 1)[-1] if match.group(1).startswith(OPEN_TYPE) else match.group(1)  # fmt: skip
        resource[EXT] = [
            {
                "@odata.type": "#" + OPEN_TYPE,
                "id": f"{OPEN_TYPE}.{name}",
                "extensionName": name,
                **data,
            }
            for name, data in exts.items()
            if name == wanted
        ]
    return resource


def _extensions(body: dict[str, Any], current: dict[str, Any]) -> Answer | dict[str, Any]:
    """opentypeextension-post-opentypeextension: each needs ``@odata.type`` openTypeExtension and
    an ``extensionName``; its data are primitive values or arrays of them."""
    merged = dict(current)
    for ext in body.get(EXT) or []:
        kind = str(ext.get("@odata.type", "")).lstrip("#")
        name = ext.get("extensionName")
        if kind != OPEN_TYPE or not name:
            return error(400, "InvalidModel", "An open extension needs @odata.type and extensionName.")  # fmt: skip
        data = {k: v for k, v in ext.items() if k not in {"@odata.type", "extensionName"}}
        if any(isinstance(v, dict) for v in data.values()):
            return error(400, "InvalidModel", "Open extension values must be primitive types or arrays of them.")  # fmt: skip
        merged[name] = data
    return merged


def _list_json(call: Call, folder: FakeFolder) -> dict[str, Any]:
    known = "defaultList" if folder.well_known == "tasks" else "none"
    out = {"@odata.etag": f'W/"{folder.seq}"', "id": folder.id, "displayName": folder.display_name,
           "isOwner": True, "isShared": False, "wellknownListName": known}  # fmt: skip
    return _expanded(call, out, folder.props.get("openExtensions", {}))


@route("GET", LISTS, READ, WRITE)
def list_lists(fake: FakeGraph, call: Call) -> Answer:
    """todo-list-lists (Tasks.Read.All, or Tasks.ReadWrite.All)."""
    with fake.store.lock:
        values = [_list_json(call, f) for f in _lists(_box(call))]
    return odata.page(fake, call, values)


@route("POST", LISTS, WRITE)
def create_list(fake: FakeGraph, call: Call) -> Answer:
    """todo-post-lists: ``displayName`` required; open extensions may come with it."""
    refused = odata.unknown_fields(call.body, LIST_FIELDS, "microsoft.graph.todoTaskList")
    if refused is not None:
        return refused
    name = call.body.get("displayName")
    if not name:
        return error(400, "ErrorInvalidRequest", "The list name is required.")
    exts = _extensions(call.body, {})
    if isinstance(exts, Answer):
        return exts
    box = _box(call)
    with fake.store.lock:
        if any(f.display_name == name for f in _lists(box)):
            return error(409, "ErrorFolderExists", "A folder with the specified name already exists.")  # fmt: skip
        folder = fake.store.add_folder(box, box.well_known("tasks").id, name, "IPF.Task")
        folder.props["openExtensions"] = exts
        return Answer(201, _list_json(call, folder))


def _task_json(call: Call, item: FakeItem) -> dict[str, Any]:
    out: dict[str, Any] = {"importance": "normal", "isReminderOn": False, "status": "notStarted",
                           "categories": [], "body": {"content": "", "contentType": "text"}}  # fmt: skip
    out.update({k: v for k, v in item.props.items() if k in TASK_FIELDS - {EXT}})
    out.update({"@odata.etag": odata.etag(item), "id": item.id, "createdDateTime": item.created,
                "lastModifiedDateTime": item.modified})  # fmt: skip
    return _expanded(call, out, item.props.get("openExtensions", {}))


def _bad_task(body: dict[str, Any]) -> Answer | None:
    """What todoTask's types refuse: an unknown status or importance, a dateTimeTimeZone
    without both its fields, a body whose contentType is neither text nor html."""
    if body.get("status", "notStarted") not in STATUSES:
        return error(400, "InvalidModel", f"Invalid status: {body.get('status')}")
    if body.get("importance", "normal") not in IMPORTANCES:
        return error(400, "InvalidModel", f"Invalid importance: {body.get('importance')}")
    for name in TIMES:
        value = body.get(name)
        if value is not None and not (isinstance(value, dict) and {"dateTime", "timeZone"} <= set(value)):  # fmt: skip
            return error(400, "InvalidModel", f"{name} needs dateTime and timeZone.")
    kind = str((body.get("body") or {}).get("contentType", "text")).lower()
    if kind not in {"text", "html"}:
        return error(400, "InvalidModel", f"Invalid contentType: {kind}")
    return None


@route("GET", TASKS, READ, WRITE)
def list_tasks(fake: FakeGraph, call: Call) -> Answer:
    """todotasklist-list-tasks (10 a page, like Outlook's other collections)."""
    with fake.store.lock:
        folder = _list(_box(call), call.match["list"])
        if folder is None:
            return error(404, *NOT_FOUND)
        values = [_task_json(call, i) for i in folder.items.values() if i.item_class == "IPM.Task"]  # fmt: skip
    return odata.page(fake, call, values)


@route("POST", TASKS, WRITE)
def create_task(fake: FakeGraph, call: Call) -> Answer:
    """todotasklist-post-tasks: 201 and the task; open extensions may come with it (a repeated
    POST makes a second task: todoTask has no ``transactionId``)."""
    refused = odata.unknown_fields(call.body, TASK_FIELDS, "microsoft.graph.todoTask")
    refused = refused or _bad_task(call.body)
    if refused is not None:
        return refused
    exts = _extensions(call.body, {})
    if isinstance(exts, Answer):
        return exts
    box = _box(call)
    with fake.store.lock:
        folder = _list(box, call.match["list"])
        if folder is None:
            return error(404, *NOT_FOUND)
        props = {k: v for k, v in call.body.items() if k != EXT and v is not None}
        item = fake.store.put_item(box, folder, "IPM.Task", {**props, "openExtensions": exts})
        return Answer(201, _task_json(call, item))


def _task(box: FakeMailbox, call: Call) -> tuple[FakeFolder, FakeItem] | None:
    folder = _list(box, call.match["list"])
    item = folder.items.get(call.match["id"]) if folder is not None else None
    if folder is None or item is None or item.item_class != "IPM.Task":
        return None
    return folder, item


@route("GET", TASK, READ, WRITE)
def get_task(fake: FakeGraph, call: Call) -> Answer:
    """todotask-get (and opentypeextension-get: expanded with the extension asked for)."""
    with fake.store.lock:
        found = _task(_box(call), call)
        if found is None:
            return error(404, *NOT_FOUND)
        return Answer(200, _task_json(call, found[1]), {"ETag": odata.etag(found[1])})


@route("PATCH", TASK, WRITE)
def update_task(fake: FakeGraph, call: Call) -> Answer:
    """todotask-update: the fields given replace the task's (null clears one); If-Match checked
    (412, graph/errors)."""
    refused = odata.unknown_fields(call.body, TASK_FIELDS - {EXT}, "microsoft.graph.todoTask")
    refused = refused or _bad_task(call.body)
    if refused is not None:
        return refused
    box = _box(call)
    with fake.store.lock:
        found = _task(box, call)
        if found is None:
            return error(404, *NOT_FOUND)
        folder, item = found
        stale = odata.precondition(call, item)
        if stale is not None:
            return stale
        props = {**item.props, **call.body}
        props = {k: v for k, v in props.items() if v is not None}
        updated = fake.store.put_item(box, folder, "IPM.Task", props, item.id)
        return Answer(200, _task_json(call, updated))


@route("DELETE", TASK, WRITE)
def delete_task(fake: FakeGraph, call: Call) -> Answer:
    """todotask-delete."""
    box = _box(call)
    with fake.store.lock:
        found = _task(box, call)
        if found is None:
            return error(404, *NOT_FOUND)
        fake.store.delete_item(box, found[0], found[1].id)
        return Answer(204)


@route("PATCH", TASK + r"/extensions/(?P<ext>[^/]+)", WRITE)
def update_extension(fake: FakeGraph, call: Call) -> Answer:
    """opentypeextension-update: the extension's data replaced; the task changes (its ETag)."""
    body = call.body if isinstance(call.body, dict) else None
    if body is None or str(body.get("@odata.type", "")).lstrip("#") != OPEN_TYPE:
        return error(400, "InvalidModel", "An open extension needs @odata.type openTypeExtension.")
    box = _box(call)
    name = call.match["ext"].rsplit(".", 1)[-1] if call.match["ext"].startswith(OPEN_TYPE) else call.match["ext"]  # fmt: skip
    with fake.store.lock:
        found = _task(box, call)
        if found is None or name not in found[1].props.get("openExtensions", {}):
            return error(404, *NOT_FOUND)
        folder, item = found
        exts = _extensions({EXT: [{**body, "extensionName": name}]}, item.props["openExtensions"])
        if isinstance(exts, Answer):
            return exts
        fake.store.put_item(box, folder, "IPM.Task", {**item.props, "openExtensions": exts}, item.id)  # fmt: skip
        data = dict(exts[name].items())
        return Answer(200, {"@odata.type": "#" + OPEN_TYPE, "id": f"{OPEN_TYPE}.{name}", "extensionName": name, **data})  # fmt: skip
