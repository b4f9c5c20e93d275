"""Microsoft To Do lists and their tasks for ``GraphCollections`` (collections.py): the Graph
requests, the names and the source bytes kept beside each task.

todoTask and todoTaskList have no ``singleValueExtendedProperties`` in Graph v1.0 (resources/
todotask, todotasklist) and no ``transactionId``; both take **open extensions** (resources/
opentypeextension; api/opentypeextension-post-opentypeextension: "create an extension in a new
resource instance" with ``POST /users/{id}/todo/lists/{id}/tasks``; api/opentypeextension-get:
task and task list instances are listed "expanded with the open extension"). So:

    a list         extension ``Com.Mailferry.Collection`` {name}: the name the sync gave it
    a task         ``Com.Mailferry.Name`` {name, uid}, listed with every task (small), and
                   ``Com.Mailferry.Item`` {uid, fp, floating, data}: read with the one task

A create sends both extensions in its POST (one change: its answer's ETag is the task's). A retry
after a lost answer never POSTs blindly: a POST that got no answer marks the list's index stale,
so the next create (or the sync's look-up) lists the tasks again and finds the task by its name or
its UID (``ItemConflictError`` for the sync to resolve). An update PATCHes the task with
``If-Match``, then its ``Com.Mailferry.Item`` extension (opentypeextension-update): the task's ETag
moves with it, so the ETag is listed afterwards (``None``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailferry.adapters.graph import tasks
from mailferry.adapters.graph.session import GraphAnswerError, expect
from mailferry.domain.errors import FolderError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mailferry.adapters.graph.session import GraphSession

LIST_EXT = "Com.Mailferry.Collection"
NAME_EXT = "Com.Mailferry.Name"
ITEM_EXT = "Com.Mailferry.Item"
DEFAULT_NAME = "tasks"  # the built-in "Tasks" list (wellknownListName defaultList)
OPEN_TYPE = "microsoft.graph.openTypeExtension"


def expand(name: str) -> dict[str, str]:
    return {"$expand": f"extensions($filter=id eq '{name}')"}


def extension(resource: dict[str, Any], name: str) -> dict[str, Any] | None:
    """Our open extension ``name`` of a resource (Graph names it by extensionName, its id is
    ``microsoft.graph.openTypeExtension.{name}`` or Outlook's spelling of it)."""
    for found in resource.get("extensions") or []:
        if found.get("extensionName") == name or str(found.get("id", "")).endswith("." + name):
            return dict(found)
    return None


def new_extension(extension_name: str, **data: Any) -> dict[str, Any]:
    return {"@odata.type": OPEN_TYPE, "extensionName": extension_name, **data}


def etag_of(resource: dict[str, Any]) -> str | None:
    tag = resource.get("@odata.etag")
    return str(tag).removeprefix("W/").strip('"') if tag else None


class TodoLists:
    """The requests of one mailbox's To Do lists (``base``: ``/users/{id}``)."""

    def __init__(
        self,
        session: GraphSession,
        base: str,
        pages: Callable[..., Iterator[dict[str, Any]]],
    ) -> None:
        self.session, self.base, self.pages = session, base, pages

    def lists(self) -> list[tuple[str, str, str]]:
        """(name, display name, list id) of each list but the built-in "Flagged email" (flagged
        messages, which travel with the mail)."""
        out = []
        for found in self.pages(f"{self.base}/todo/lists", expand(LIST_EXT)):
            known = found.get("wellknownListName")
            if known == "flaggedEmails":
                continue
            ours = extension(found, LIST_EXT) or {}
            name = ours.get("name") or (DEFAULT_NAME if known == "defaultList" else found["id"])
            out.append((str(name), str(found.get("displayName") or name), str(found["id"])))
        return out

    def create_list(self, href: str, name: str, displayname: str) -> None:
        body = {"displayName": displayname, "extensions": [new_extension(LIST_EXT, name=name)]}
        try:
            expect(self.session.request("POST", f"{self.base}/todo/lists", json=body), 201)
        except GraphAnswerError as exc:
            raise FolderError(href, exc.reason) from None

    def tasks(self, list_id: str, folder: str) -> Iterator[tuple[str, str | None, str | None, str | None]]:  # fmt: skip
        """(task id, our name, its UID, ETag) of each task of a list."""
        path = f"{self.base}/todo/lists/{list_id}/tasks"
        for found in self.pages(path, expand(NAME_EXT), folder=folder):
            ours = extension(found, NAME_EXT) or {}
            yield found["id"], ours.get("name"), ours.get("uid"), etag_of(found)

    def read(self, list_id: str, task_id: str) -> tuple[bytes, str | None]:
        """The VCALENDAR of a task (the source's bytes while nobody changed it in To Do)."""
        path = f"{self.base}/todo/lists/{list_id}/tasks/{task_id}"
        found = expect(self.session.request("GET", path, params=expand(ITEM_EXT)), 200)
        meta = extension(found, ITEM_EXT) or {}
        original = str(meta.get("data") or "").encode() or None
        if original is not None and meta.get("fp") == tasks.fingerprint(found):
            return original, etag_of(found)
        uid = str(meta.get("uid") or task_id)
        data = tasks.with_residue(found, uid, original, bool(meta.get("floating")))
        return data, etag_of(found)

    def create(self, list_id: str, name: str, data: bytes) -> tuple[str, str | None, str | None]:
        """POST the task with both extensions: (task id, UID, ETag). A lost answer raises
        ConnectError: the caller lists again before any second create."""
        uid, task, floating = tasks.plan_task(data)
        item = self._item(uid, task, floating, data)
        body = dict(task, extensions=[new_extension(NAME_EXT, name=name, uid=uid), item])
        answer = self.session.request("POST", f"{self.base}/todo/lists/{list_id}/tasks", json=body)
        found = expect(answer, 201)
        return str(found["id"]), uid, etag_of(found)

    def update(self, list_id: str, task_id: str, data: bytes, etag: str) -> None:
        uid, task, floating = tasks.plan_task(data)
        path = f"{self.base}/todo/lists/{list_id}/tasks/{task_id}"
        cleared = {f: None for f in ("dueDateTime", "startDateTime", "recurrence",
                                     "completedDateTime", "reminderDateTime") if f not in task}  # fmt: skip
        answer = self.session.request(
            "PATCH", path, json={**cleared, **task}, headers={"If-Match": f'W/"{etag}"'}
        )
        expect(answer, 200)
        item = self._item(uid, task, floating, data)
        expect(self.session.request("PATCH", f"{path}/extensions/{ITEM_EXT}", json=item), 200)

    @staticmethod
    def _item(uid: str | None, task: dict[str, Any], floating: bool, data: bytes) -> dict[str, Any]:
        text = data.decode("utf-8", "replace")
        meta = {"uid": uid, "fp": tasks.fingerprint(task), "floating": floating, "data": text}
        return new_extension(ITEM_EXT, **meta)
