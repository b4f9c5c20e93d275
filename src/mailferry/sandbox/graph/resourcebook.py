"""FAKE Graph: contact folders and contacts (events: ``resources``).

The default contact folder is the well-known ``contacts`` folder (``/users/{id}/contacts``); the
others are IPF.Contact folders under it (graph/api/user-list-contactfolders: "the contact folder
collection in the default Contacts folder"). A contact is an IPM.Contact item whose ``props`` are
its Graph JSON (``ext``: its extended properties). Pages of Microsoft's documentation each route
follows are named in its docstring.
"""

from __future__ import annotations

from typing import Any

from mailferry.sandbox.graph import odata
from mailferry.sandbox.graph.server import Answer, Call, FakeGraph, error, route
from mailferry.sandbox.graph.store import FakeFolder, FakeItem, FakeMailbox

USER = r"/users/(?P<mbx>[^/]+)"
READ, WRITE = "Contacts.Read", "Contacts.ReadWrite"
CONTACT_FIELDS = frozenset(
    {"displayName", "givenName", "surname", "middleName", "title", "generation", "nickName",
     "emailAddresses", "homePhones", "businessPhones", "mobilePhone", "companyName",
     "department", "jobTitle", "personalNotes", "categories", "birthday", "homeAddress",
     "businessAddress", "otherAddress", "imAddresses", "initials", "manager", "officeLocation",
     "profession", "spouseName", "assistantName", "children", "fileAs", "yomiGivenName",
     "yomiSurname", "yomiCompanyName", "businessHomePage", odata.PROPS}
)  # fmt: skip
FOLDER_FIELDS = frozenset({"displayName", "parentFolderId", odata.PROPS})
NOT_FOUND = ("ErrorItemNotFound", "The specified object was not found in the store.")


def _box(call: Call) -> FakeMailbox:
    if call.mailbox is None:  # every route here names one (the server resolved it)
        raise RuntimeError(call.path)
    return call.mailbox


def _folders(box: FakeMailbox) -> list[FakeFolder]:
    default = box.well_known("contacts")
    return [f for f in box.folders.values() if f.parent_id == default.id and f.folder_class == "IPF.Contact"]  # fmt: skip


def _folder_json(folder: FakeFolder) -> dict[str, Any]:
    return {"id": folder.id, "displayName": folder.display_name, "parentFolderId": folder.parent_id}


def _contact_json(item: FakeItem) -> dict[str, Any]:
    out = {k: v for k, v in item.props.items() if k not in {"ext", "searchKey"}}
    out.update(id=item.id, changeKey=item.change_key, createdDateTime=item.created)
    return out


@route("GET", USER + r"/contactFolders", READ, WRITE)
def list_folders(fake: FakeGraph, call: Call) -> Answer:
    """graph/api/user-list-contactfolders."""
    with fake.store.lock:
        values = [odata.shown(call, _folder_json(f), f.props.get("ext", {})) for f in _folders(_box(call))]  # fmt: skip
    return odata.page(fake, call, values)


@route("POST", USER + r"/contactFolders", WRITE)
def create_folder(fake: FakeGraph, call: Call) -> Answer:
    """graph/api/user-post-contactfolders: 409 ErrorFolderExists for a name taken."""
    refused = odata.unknown_fields(call.body, FOLDER_FIELDS, "microsoft.graph.contactFolder")
    if refused is not None:
        return refused
    name = call.body.get("displayName")
    if not name:
        return error(400, "ErrorInvalidRequest", "The folder name is required.")
    ext = odata.extended(call.body, {})
    if isinstance(ext, Answer):
        return ext
    box = _box(call)
    with fake.store.lock:
        if any(f.display_name == name for f in _folders(box)):
            return error(409, "ErrorFolderExists", "A folder with the specified name already exists.")  # fmt: skip
        folder = fake.store.add_folder(box, box.well_known("contacts").id, name, "IPF.Contact")
        folder.props["ext"] = ext
        return Answer(201, _folder_json(folder))


def _folder(box: FakeMailbox, call: Call) -> FakeFolder | None:
    folder_id = call.match.groupdict().get("folder")
    if folder_id is None:
        return box.well_known("contacts")
    return next((f for f in _folders(box) if f.id == folder_id), None)


CONTACTS = USER + r"(?:/contactFolders/(?P<folder>[^/]+))?/contacts"


@route("GET", CONTACTS, READ, WRITE)
def list_contacts(fake: FakeGraph, call: Call) -> Answer:
    """graph/api/user-list-contacts, graph/api/contactfolder-list-contacts (10 a page)."""
    with fake.store.lock:
        folder = _folder(_box(call), call)
        if folder is None:
            return error(404, *NOT_FOUND)
        values = [odata.shown(call, _contact_json(i), i.props.get("ext", {})) for i in folder.items.values()]  # fmt: skip
    return odata.page(fake, call, values)


@route("POST", CONTACTS, WRITE)
def create_contact(fake: FakeGraph, call: Call) -> Answer:
    """graph/api/user-post-contacts, graph/api/contactfolder-post-contacts."""
    refused = odata.unknown_fields(call.body, CONTACT_FIELDS, "microsoft.graph.contact")
    if refused is not None:
        return refused
    ext = odata.extended(call.body, {})
    if isinstance(ext, Answer):
        return ext
    box = _box(call)
    with fake.store.lock:
        folder = _folder(box, call)
        if folder is None:
            return error(404, *NOT_FOUND)
        props = {k: v for k, v in call.body.items() if k != odata.PROPS}
        item = fake.store.put_item(box, folder, "IPM.Contact", {**props, "ext": ext})
        return Answer(201, _contact_json(item))


def _contact(box: FakeMailbox, contact_id: str) -> tuple[FakeFolder, FakeItem] | None:
    found = box.find_item(contact_id)
    return found if found is not None and found[1].item_class == "IPM.Contact" else None


@route("GET", USER + r"/contacts/(?P<id>[^/]+)", READ, WRITE)
def get_contact(fake: FakeGraph, call: Call) -> Answer:
    """graph/api/contact-get."""
    with fake.store.lock:
        found = _contact(_box(call), call.match["id"])
        if found is None:
            return error(404, *NOT_FOUND)
        item = found[1]
        return Answer(200, odata.shown(call, _contact_json(item), item.props.get("ext", {})))


@route("PATCH", USER + r"/contacts/(?P<id>[^/]+)", WRITE)
def update_contact(fake: FakeGraph, call: Call) -> Answer:
    """graph/api/contact-update (If-Match: 412 when the change key moved)."""
    refused = odata.unknown_fields(call.body, CONTACT_FIELDS, "microsoft.graph.contact")
    if refused is not None:
        return refused
    box = _box(call)
    with fake.store.lock:
        found = _contact(box, call.match["id"])
        if found is None:
            return error(404, *NOT_FOUND)
        folder, item = found
        stale = odata.precondition(call, item)
        if stale is not None:
            return stale
        ext = odata.extended(call.body, item.props.get("ext", {}))
        if isinstance(ext, Answer):
            return ext
        props = {**item.props, **{k: v for k, v in call.body.items() if k != odata.PROPS}}
        updated = fake.store.put_item(box, folder, "IPM.Contact", {**props, "ext": ext}, item.id)
        return Answer(200, _contact_json(updated))


@route("DELETE", USER + r"/contacts/(?P<id>[^/]+)", WRITE)
def delete_contact(fake: FakeGraph, call: Call) -> Answer:
    """graph/api/contact-delete."""
    box = _box(call)
    with fake.store.lock:
        found = _contact(box, call.match["id"])
        if found is None:
            return error(404, *NOT_FOUND)
        fake.store.delete_item(box, found[0], found[1].id)
        return Answer(204)
