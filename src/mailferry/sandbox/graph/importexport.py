"""The FAKE Graph's mailbox API, write side: exportItems, createImportSession and the importUrl.

Written from Microsoft's pages (microsoftgraph/microsoft-graph-docs-contrib):
- api-reference/v1.0/api/mailbox-exportitems: POST /admin/exchange/mailboxes/{id}/exportItems,
  ``{"itemIds": [...]}`` of at most 20 ids of that mailbox, Content-Type application/json; 200
  with a collection of exportItemResponse (resources/exportitemresponse: ``itemId``, ``changeKey``,
  ``data`` = base64 opaque stream, or ``error`` = mailTipsError ``{code, message}``); permission
  MailboxItem.Export.All, higher MailboxItem.ImportExport.All.
- api-reference/v1.0/api/mailbox-createimportsession: POST .../createImportSession without a body;
  200 with a mailboxItemImportSession (``importUrl``, ``expirationDateTime``); permission
  MailboxItem.ImportExport.All only.
- concepts/import-exchange-mailbox-item: POST to the importUrl, pre-authenticated ("don't specify
  an Authorization request header"), body ``FolderId``, ``Mode`` (``create``: ItemId/ChangeKey
  are an error; ``update``: both required, "fails if the combination of ItemId and ChangeKey
  doesn't match with any existing item in the folder"), ``Data``; 200 with ``itemId`` and
  ``changeKey``. "After this time, the importUrl expires".

Not documented, chosen as Exchange answers the same faults elsewhere (EWS response codes):
an expired or unknown importUrl token -> 401 with ``WWW-Authenticate: Bearer error=
"invalid_token"`` (what Exchange Online answers any expired token); a stale ChangeKey -> 409
``ErrorIrresolvableConflict``; a folder not in the session's mailbox -> 404 ``ErrorFolderNotFound``;
data no export made -> 400 ``ErrorCorruptData``; an item class the folder class does not take ->
400 ``ErrorCannotCreate...InNon...Folder``; an item over ``fake.max_item_bytes`` (Exchange Online's
150 MB message limit) -> 413 ``ErrorMessageSizeExceeded``. The real importUrl lives on
outlook.office365.com; the fake's is on its own host under ``/api/gv1.0/``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets
import time
from typing import TYPE_CHECKING, Any

from mailferry.sandbox.graph.mailbox import MBX, mailbox_of, not_found, unknown_fields
from mailferry.sandbox.graph.server import Answer, Call, error, route
from mailferry.sandbox.graph.stream import decode_item, encode_item

if TYPE_CHECKING:
    from mailferry.sandbox.graph.server import FakeGraph
    from mailferry.sandbox.graph.store import FakeFolder, FakeMailbox

EXPORT_LIMIT = 20
IMPORT_PATH = r"/api/gv1\.0/Mailboxes\('(?P<mbx>[^']+)'\)/importItem"
IMPORT_KEYS = ("ItemId", "ChangeKey")
IMPORT_FIELDS = {"FolderId", "Mode", "Data", *IMPORT_KEYS}

# item class family -> the folder class that holds it, and Exchange's refusal elsewhere
_HOMES = (
    ("IPM.Appointment", "IPF.Appointment", "ErrorCannotCreateCalendarItemInNonCalendarFolder"),
    ("IPM.Contact", "IPF.Contact", "ErrorCannotCreateContactInNonContactFolder"),
    ("IPM.DistList", "IPF.Contact", "ErrorCannotCreateContactInNonContactFolder"),
    ("IPM.Task", "IPF.Task", "ErrorCannotCreateTaskInNonTaskFolder"),
    ("IPM.StickyNote", "IPF.StickyNote", "ErrorInvalidRequest"),
)


def _family(value: str, prefix: str) -> bool:
    return value == prefix or value.startswith(prefix + ".")


def misplaced(item_class: str, folder_class: str) -> str | None:
    """Exchange's error code when ``item_class`` may not live in a ``folder_class`` folder."""
    for item_prefix, home, code in _HOMES:
        if _family(item_class, item_prefix):
            return None if _family(folder_class, home) else code
    if any(_family(folder_class, home) for _, home, _ in _HOMES):
        return "ErrorInvalidRequest"  # a message in a calendar, contacts, tasks or notes folder
    return None


@route("POST", MBX + r"/exportItems", "MailboxItem.Export.All", "MailboxItem.ImportExport.All")
def export_items(fake: FakeGraph, call: Call) -> Answer:
    """mailbox-exportitems."""
    body = call.body
    if not isinstance(body, dict):
        return error(400, "BadRequest", "Empty Payload. JSON content expected.")
    refused = unknown_fields(body, {"itemIds"}, "microsoft.graph.exportItems")
    if refused is not None:
        return refused
    ids = body.get("itemIds")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        return error(400, "BadRequest", "itemIds must be a non-empty collection of strings.")
    if len(ids) > EXPORT_LIMIT:
        return error(
            400, "BadRequest", f"The itemIds collection may hold at most {EXPORT_LIMIT} ids."
        )
    box = mailbox_of(call)
    with fake.store.lock:
        value = [_exported(box, item_id) for item_id in ids]
    context = f"{fake.url}/v1.0/$metadata#Collection(microsoft.graph.exportItemResponse)"
    return Answer(200, {"@odata.context": context, "value": value})


def _exported(box: FakeMailbox, item_id: str) -> dict[str, Any]:
    found = box.find_item(item_id)
    if found is None:
        return {
            "itemId": item_id,
            "error": {
                "code": "ErrorItemNotFound",
                "message": "The specified object was not found in the store.",
            },
        }
    item = found[1]
    data = base64.b64encode(encode_item(item.item_class, item.props)).decode()
    return {"itemId": item.id, "changeKey": item.change_key, "data": data}


@route("POST", MBX + r"/createImportSession", "MailboxItem.ImportExport.All")
def create_import_session(fake: FakeGraph, call: Call) -> Answer:
    """mailbox-createimportsession: a pre-authenticated importUrl for this mailbox."""
    if call.size:
        return error(400, "BadRequest", "Don't supply a request body for this method.")
    box = mailbox_of(call)
    token = secrets.token_urlsafe(24)
    expires = time.time() + fake.import_lifetime
    with fake.lock:
        fake.import_sessions[token] = (box.mailbox_id, expires)
    stamp = dt.datetime.fromtimestamp(expires, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    return Answer(
        200,
        {
            "@odata.context": f"{fake.url}/v1.0/$metadata#microsoft.graph.mailboxItemImportSession",
            "importUrl": f"{fake.url}/api/gv1.0/Mailboxes('{box.mailbox_id}')/importItem"
            f"?authtoken={token}",
            "expirationDateTime": stamp,
        },
    )


def _session_refused(fake: FakeGraph, call: Call, box: FakeMailbox) -> Answer | None:
    with fake.lock:
        session = fake.import_sessions.get(call.query.get("authtoken", ""))
    if session is None or session[0] != box.mailbox_id or session[1] <= time.time():
        answer = error(401, "InvalidAuthenticationToken", "The import session token expired.")
        answer.headers["WWW-Authenticate"] = (
            'Bearer error="invalid_token", error_description="The token has expired"'
        )
        return answer
    return None


@route("POST", IMPORT_PATH, authorized=False)
def import_item(fake: FakeGraph, call: Call) -> Answer:
    """import-exchange-mailbox-item, step 2: one item into one folder of the session's mailbox."""
    box = mailbox_of(call)
    refused = _session_refused(fake, call, box) or _body_refused(call.body)
    if refused is not None:
        return refused
    body: dict[str, Any] = call.body
    decoded = _decoded(fake, body["Data"])
    if isinstance(decoded, Answer):
        return decoded
    with fake.store.lock:
        folder = box.folders.get(body["FolderId"])
        if folder is None:
            return error(404, "ErrorFolderNotFound", "The specified folder could not be found.")
        code = misplaced(decoded[0], folder.folder_class)
        if code is not None:
            return error(400, code, f"A {decoded[0]} item cannot go in a {folder.folder_class}.")
        return _store(fake, box, folder, body, decoded)


def _decoded(fake: FakeGraph, text: str) -> tuple[str, dict[str, Any]] | Answer:
    """(item class, props) of an importItem's ``Data``, or the refusal."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return error(400, "ErrorInvalidRequest", "Data is not base64.")
    decoded = decode_item(data)
    if decoded is None:
        return error(400, "ErrorCorruptData", "The data is not a valid item stream.")
    if len(data) > fake.max_item_bytes:
        return error(413, "ErrorMessageSizeExceeded", "The item exceeds the maximum size.")
    return decoded


def _body_refused(body: Any) -> Answer | None:
    if not isinstance(body, dict):
        return error(400, "BadRequest", "Empty Payload. JSON content expected.")
    refused = unknown_fields(body, IMPORT_FIELDS, "microsoft.graph.importItem")
    if refused is not None:
        return refused
    mode = body.get("Mode")
    keys = [name for name in ("ItemId", "ChangeKey") if name in body]
    checks = (
        (
            not all(isinstance(body.get(name), str) for name in ("FolderId", "Mode", "Data")),
            "FolderId, Mode and Data are required.",
        ),
        (mode not in {"create", "update"}, "Mode must be create or update."),
        (mode == "create" and bool(keys), "ItemId and ChangeKey are not allowed in create mode."),
        (
            mode == "update" and not all(isinstance(body.get(k), str) for k in IMPORT_KEYS),
            "ItemId and ChangeKey are required in update mode.",
        ),
    )
    problem = next((text for failed, text in checks if failed), None)
    return None if problem is None else error(400, "ErrorInvalidRequest", problem)


def _store(
    fake: FakeGraph,
    box: FakeMailbox,
    folder: FakeFolder,
    body: dict[str, Any],
    decoded: tuple[str, dict[str, Any]],
) -> Answer:
    item_id = None
    if body["Mode"] == "update":
        item = folder.items.get(body["ItemId"])
        if item is None:
            return not_found()
        if item.change_key != body["ChangeKey"]:
            return error(
                409,
                "ErrorIrresolvableConflict",
                "The change key passed in the request does not match the current change key "
                "for the item.",
            )
        item_id = item.id
    stored = fake.store.put_item(box, folder, decoded[0], decoded[1], item_id)
    context = f"{fake.url}/api/gv1.0/$metadata#microsoft.graph.importMailboxItemResponse"
    return Answer(
        200, {"@odata.context": context, "itemId": stored.id, "changeKey": stored.change_key}
    )
