"""``GraphMailbox``: the ``ExchangeMailbox`` port over Graph's mailbox import/export API
(learn.microsoft.com/graph/mailbox-import-export-concept-overview; the pages cited below are in
microsoftgraph/microsoft-graph-docs-contrib, api-reference/v1.0/).

- The mailbox id (``MBX:...``) is resolved once from ``GET /users/{id}/settings/exchange``
  (usersettings-list-exchange: ``primaryMailboxId``; needs User.Read.All).
- ``folders``: ``GET .../folders`` (the root's children) then ``childFolders`` of each folder with
  ``childFolderCount`` > 0, paged, deduplicated by id (should ``/folders`` list every folder, as
  its description says, nothing is listed twice). The root is the parent no listed folder is;
  its children get ``parent_id`` None. ``wellKnownName`` (resources/mailboxfolder) names inbox,
  sentitems, calendar, ... directly: no lookup through /mailFolders is needed.
- ``entries``: pages of entries. Delta (mailboxitem-delta; the token is the whole
  ``@odata.deltaLink``, as the docs say to keep it) takes no ``$expand``, so the recognition keys
  come from ``.../items`` with ``$expand=singleValueExtendedProperties($filter=...)``. A whole
  folder: a delta round for its deltaLink alone, then the ``items`` listing streamed page by page
  (flat in folder size). A delta round: held (its ``@removed`` entries are the removed ids), the
  keys of many changes from one ``items`` listing, of a few from one GET each. A token Graph no
  longer accepts (410, syncStateNotFound) is ``SyncTokenInvalidError``.
- ``export``: ``exportItems`` in calls of at most 20 ids (mailbox-exportitems), up to the session's
  concurrency at once, at most that many calls ahead of the consumer (memory stays flat).
- ``import_item``: one import session per target folder (mailbox-createimportsession), reused
  until a minute before its ``expirationDateTime``, and renewed once when its importUrl answers
  401 (expired: the item was not imported, so sending it again is safe). The importUrl is
  pre-authenticated: no Authorization header (import-exchange-mailbox-item).

Errors: 403 anywhere (an application access policy or a missing permission) is ``AuthError``
naming the mailbox; a folder's failure ``FolderError``, an item's ``ItemError`` with Graph's code
in the reason; a stale ChangeKey ``ItemConflictError``. An import whose answer is lost raises the
session's ``ConnectError`` and is never sent again here: the caller's intent decides.
"""

from __future__ import annotations

import base64
import binascii
import collections
import datetime as dt
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mailferry.adapters.graph.mailboxkeys import EXPAND, listed_entry, properties
from mailferry.adapters.graph.session import GraphAnswerError, expect
from mailferry.domain.errors import (
    AccountError,
    AuthError,
    FolderError,
    ItemConflictError,
    ItemError,
    SyncTokenInvalidError,
)
from mailferry.domain.mailboxmodel import (
    EntryPage,
    Exported,
    Imported,
    MailboxFolder,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    import httpx

    from mailferry.adapters.graph.session import GraphSession

EXPORT_CHUNK = 20  # mailbox-exportitems: "The maximum size of this collection is 20 strings."
KEY_LOOKUPS = 50  # changed items up to which keys are read one by one, not by a listing
RENEW_BEFORE = 60.0  # seconds before its expirationDateTime an import session is replaced
PAGE = "100"


class GraphMailbox:
    """``GraphMailbox(session, "alice@contoso.com")``; thread-safe (the session bounds requests)."""

    def __init__(
        self, session: GraphSession, user: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._session = session
        self._user = user
        self._clock = clock
        self._lock = threading.Lock()
        self._mailbox_id: str | None = None
        self._imports: dict[str, tuple[str, float]] = {}  # folder id -> (importUrl, expiry)
        self._gates: dict[str, threading.Lock] = {}  # folder id -> who makes its session

    # -- mailbox ---------------------------------------------------------------------------------
    @property
    def base(self) -> str:
        """``/admin/exchange/mailboxes/{id}``, the mailbox id resolved on first use."""
        with self._lock:
            if self._mailbox_id is None:
                self._mailbox_id = self._resolve()
            return f"/admin/exchange/mailboxes/{quote(self._mailbox_id, safe=':@')}"

    def _resolve(self) -> str:
        path = f"/users/{quote(self._user, safe='@')}/settings/exchange"
        response = self._get(path)
        if response.status_code == 404:
            raise AccountError(f"Microsoft 365 mailbox {self._user}: no such user")
        mailbox_id = self._json(response, 200).get("primaryMailboxId")
        if not isinstance(mailbox_id, str) or not mailbox_id:
            raise AccountError(f"Microsoft 365 user {self._user} has no Exchange mailbox")
        return mailbox_id

    def close(self) -> None:
        """Nothing of its own to release: the session belongs to whoever made it."""

    def throttling(self) -> tuple[int, float]:
        """``Metered``: the 429/503 answers its session waited out, and the seconds waited."""
        stats = self._session.stats
        return stats.throttled, stats.waited

    # -- HTTP helpers ----------------------------------------------------------------------------
    def _get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        return self._checked(self._session.request("GET", path, params=params))

    def _checked(self, response: httpx.Response) -> httpx.Response:
        """403 is the account's: an access policy keeps the app out, or a permission lacks."""
        if response.status_code == 403:
            problem = GraphAnswerError(response).reason
            raise AuthError(
                f"Microsoft 365 mailbox {self._user}: Graph refuses access ({problem}); an "
                "application access policy or a missing application permission"
            )
        return response

    def _json(self, response: httpx.Response, *ok: int) -> dict[str, Any]:
        return expect(self._checked(response), *ok)

    def _pages(
        self, path: str, params: dict[str, str] | None = None
    ) -> Iterator[tuple[dict[str, Any], str | None]]:
        """Every object of a collection with the deltaLink that ended it (None until the last
        page; the session's ``pages`` keeps it on the session, shared between threads)."""
        url: str | None = path
        while url is not None:
            body = self._json(self._session.request("GET", url, params=params), 200)
            params = None
            url = body.get("@odata.nextLink")
            delta = None if url is not None else body.get("@odata.deltaLink")
            values = body.get("value", [])
            for position, value in enumerate(values):
                yield value, delta if position == len(values) - 1 else None
            if not values and delta is not None:
                yield {}, delta

    # -- folders ---------------------------------------------------------------------------------
    def folders(self) -> list[MailboxFolder]:
        base = self.base
        try:
            found = {f["id"]: f for f, _ in self._pages(f"{base}/folders", {"$top": PAGE}) if f}
            waiting = collections.deque(f for f in found.values() if f.get("childFolderCount"))
            while waiting:
                parent = waiting.popleft()
                path = f"{base}/folders/{quote(parent['id'], safe='')}/childFolders"
                for child, _ in self._pages(path, {"$top": PAGE}):
                    if child and child["id"] not in found:
                        found[child["id"]] = child
                        if child.get("childFolderCount"):
                            waiting.append(child)
        except GraphAnswerError as exc:
            raise FolderError("(folder list)", exc.reason) from exc
        return _ordered(found)

    def create_folder(self, parent_id: str | None, name: str, folder_class: str) -> MailboxFolder:
        path = f"{self.base}/folders"
        if parent_id is not None:
            path += f"/{quote(parent_id, safe='')}/childFolders"
        response = self._session.request(
            "POST", path, json={"displayName": name, "type": folder_class}
        )
        try:
            body = self._json(response, 201, 200)
        except GraphAnswerError as exc:
            raise FolderError(name, exc.reason) from exc
        return MailboxFolder(
            body["id"], parent_id, body.get("displayName", name), body.get("type", folder_class)
        )

    # -- entries ---------------------------------------------------------------------------------
    def entries(self, folder_id: str, token: str | None) -> Iterator[EntryPage]:
        path = f"{self.base}/folders/{quote(folder_id, safe='')}/items"
        try:
            if token is None:
                yield from self._listing(path, folder_id)
            else:
                yield from self._changes(path, token, folder_id)
        except GraphAnswerError as exc:
            if exc.status == 410 or exc.code.lower() == "syncstatenotfound":
                raise SyncTokenInvalidError(folder_id, exc.reason) from exc
            raise FolderError(folder_id, exc.reason) from exc

    def _listing(self, path: str, folder_id: str) -> Iterator[EntryPage]:
        """A whole folder, a page at a time: a delta round first, for its deltaLink only (its
        entries are not kept), then the items with their keys. What changes after the round
        comes again in the next one, so nothing is missed; a page is all that is held. The
        round's ``$select`` is every later round's too (the token carries it): what an
        incremental pass must know of an item (its class, change key and size) is asked here."""
        delta = None
        for _row, last in self._pages(f"{path}/delta", {"$select": "type,changeKey,size"}):
            delta = last or delta
        if delta is None:
            raise FolderError(folder_id, "the delta round ended without a deltaLink")
        params: dict[str, str] | None = {
            "$select": "type,changeKey,size",
            "$expand": EXPAND,
            "$top": PAGE,
        }
        url: str | None = path
        while url is not None:
            body = self._json(self._session.request("GET", url, params=params), 200)
            url, params = body.get("@odata.nextLink"), None
            page = tuple(listed_entry(row, properties(row)) for row in body.get("value", []))
            yield EntryPage(page, (), delta if url is None else None)

    def _changes(self, path: str, token: str, folder_id: str) -> Iterator[EntryPage]:
        """A delta round, held whole (it is what changed since the last pass, not the folder:
        replays are resolved, the last one winning), then handed out a page at a time."""
        changed: dict[str, dict[str, Any]] = {}
        removed: dict[str, None] = {}
        delta: str | None = None
        for row, last in self._pages(token, None):
            delta = last or delta
            if not row:
                continue
            if "@removed" in row:  # replays happen (delta-query-overview): the last wins
                changed.pop(row["id"], None)
                removed[row["id"]] = None
            else:
                removed.pop(row["id"], None)
                changed[row["id"]] = row
        if delta is None:
            raise FolderError(folder_id, "the delta round ended without a deltaLink")
        keys = self._keys(path, list(changed))
        entries = [listed_entry(row, keys.get(item_id)) for item_id, row in changed.items()]
        size = int(PAGE)
        pages = [tuple(entries[i : i + size]) for i in range(0, len(entries), size)] or [()]
        for page in pages[:-1]:
            yield EntryPage(page)
        yield EntryPage(pages[-1], tuple(removed), delta)

    def _keys(self, path: str, ids: list[str]) -> dict[str, dict[str, str]]:
        """item id -> its recognition properties (id -> value), for ``ids``."""
        if not ids:
            return {}
        if len(ids) > KEY_LOOKUPS:
            params = {"$select": "id", "$expand": EXPAND, "$top": PAGE}
            wanted = set(ids)
            return {
                row["id"]: properties(row)
                for row, _ in self._pages(path, params)
                if row and row["id"] in wanted
            }
        with ThreadPoolExecutor(self._session.limits.concurrency) as pool:
            found = pool.map(lambda item_id: self._item_keys(path, item_id), ids)
            return dict(zip(ids, found, strict=True))

    def _item_keys(self, path: str, item_id: str) -> dict[str, str]:
        response = self._get(f"{path}/{quote(item_id, safe='')}", {"$expand": EXPAND})
        if response.status_code == 404:  # removed since the delta round: no key to give
            return {}
        return properties(self._json(response, 200))

    # -- export ----------------------------------------------------------------------------------
    def export(self, ids: Sequence[str]) -> Iterator[Exported | ItemError]:
        chunks = [list(ids[i : i + EXPORT_CHUNK]) for i in range(0, len(ids), EXPORT_CHUNK)]
        if len(chunks) == 1:  # one call: no pool to start
            yield from self._export_chunk(chunks[0])
            return
        ahead = self._session.limits.concurrency
        with ThreadPoolExecutor(ahead) as pool:
            running: collections.deque[Future[list[Exported | ItemError]]] = collections.deque()
            for chunk in chunks:
                running.append(pool.submit(self._export_chunk, chunk))
                if len(running) >= ahead:
                    yield from running.popleft().result()
            while running:
                yield from running.popleft().result()

    def _export_chunk(self, ids: list[str]) -> list[Exported | ItemError]:
        response = self._session.request("POST", f"{self.base}/exportItems", json={"itemIds": ids})
        try:
            rows = {row.get("itemId"): row for row in self._json(response, 200).get("value", [])}
        except GraphAnswerError as exc:
            return [ItemError(self._user, item_id, exc.reason) for item_id in ids]
        return [self._exported(item_id, rows.get(item_id)) for item_id in ids]

    def _exported(self, item_id: str, row: dict[str, Any] | None) -> Exported | ItemError:
        if row is None:
            return ItemError(self._user, item_id, "missing from the exportItems answer")
        problem = row.get("error")
        if problem:
            code, message = problem.get("code", "error"), problem.get("message", "")
            return ItemError(self._user, item_id, f"export refused: {code}: {message}")
        try:
            data = base64.b64decode(row.get("data", ""), validate=True)
        except (binascii.Error, ValueError):
            return ItemError(self._user, item_id, "export answer: data is not base64")
        return Exported(item_id, str(row.get("changeKey", "")), data)

    # -- import ----------------------------------------------------------------------------------
    def import_item(
        self, folder_id: str, data: bytes, replace: tuple[str, str] | None = None
    ) -> Imported:
        # No retry here of a request that may have been carried out: a ConnectError (lost answer)
        # goes to the caller, whose intent row says what to look for on the target.
        body: dict[str, str] = {
            "FolderId": folder_id,
            "Mode": "create",
            "Data": base64.b64encode(data).decode(),
        }
        if replace is not None:
            body |= {"Mode": "update", "ItemId": replace[0], "ChangeKey": replace[1]}
        response, url = self._post_import(folder_id, body)
        if response.status_code == 401:  # the importUrl's token expired: refused, not imported
            self._forget_session(folder_id, url)
            response, _ = self._post_import(folder_id, body)
        try:
            answer = self._json(response, 200, 201)
        except GraphAnswerError as exc:
            raise _import_error(folder_id, replace, exc) from exc
        return Imported(str(answer["itemId"]), str(answer["changeKey"]))

    def _post_import(self, folder_id: str, body: dict[str, str]) -> tuple[httpx.Response, str]:
        url = self._import_url(folder_id)
        return self._session.request("POST", url, json=body, authorized=False), url

    def _import_url(self, folder_id: str) -> str:
        """The folder's import session, made by one thread while the others wait for it (4
        imports starting at once made 4 sessions)."""
        with self._lock:
            gate = self._gates.setdefault(folder_id, threading.Lock())
        with gate:
            with self._lock:
                known = self._imports.get(folder_id)
            if known is not None and known[1] - RENEW_BEFORE > self._clock():
                return known[0]
            return self._new_import_url(folder_id)

    def _new_import_url(self, folder_id: str) -> str:
        path = f"{self.base}/createImportSession"
        try:
            body = self._json(self._session.request("POST", path), 200, 201)
        except GraphAnswerError as exc:
            raise FolderError(folder_id, f"no import session: {exc.reason}") from exc
        expires = dt.datetime.fromisoformat(body["expirationDateTime"]).timestamp()
        with self._lock:
            self._imports[folder_id] = (body["importUrl"], expires)
        return str(body["importUrl"])

    def _forget_session(self, folder_id: str, url: str) -> None:
        """That importUrl expired (if another thread has not replaced it already)."""
        with self._lock:
            known = self._imports.get(folder_id)
            if known is not None and known[0] == url:
                del self._imports[folder_id]


def _import_error(
    folder_id: str, replace: tuple[str, str] | None, exc: GraphAnswerError
) -> ItemError | FolderError:
    target = replace[0] if replace is not None else "(new item)"
    if exc.status == 409 or exc.code == "ErrorIrresolvableConflict":
        return ItemConflictError(folder_id, target, exc.status)
    if exc.code == "ErrorFolderNotFound":
        return FolderError(folder_id, exc.reason)
    return ItemError(folder_id, target, exc.reason)


def _ordered(found: dict[str, dict[str, Any]]) -> list[MailboxFolder]:
    """Parents before children; the root (a parent that is not listed) becomes None."""

    def depth(folder: dict[str, Any]) -> int:
        steps, parent = 0, folder.get("parentFolderId")
        while parent in found and steps <= len(found):
            steps, parent = steps + 1, found[parent].get("parentFolderId")
        return steps

    rows = sorted(found.values(), key=depth)
    return [
        MailboxFolder(
            id=row["id"],
            parent_id=row.get("parentFolderId") if row.get("parentFolderId") in found else None,
            name=row.get("displayName", ""),
            folder_class=row.get("type") or "IPF.Note",
            well_known=row.get("wellKnownName"),
            total=row.get("totalItemCount"),
        )
        for row in rows
    ]
