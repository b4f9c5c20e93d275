"""The FAKE Graph's mailbox API refuses what Graph refuses (sandbox/graph/mailbox.py,
importexport.py): plain HTTPS requests, no adapter in between. A lenient fake would let the
adapter's tests pass against behaviour no real Microsoft 365 has."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailferry.adapters.graph.mailbox import EXPORT_CHUNK
from mailferry.adapters.tls import TlsOptions
from mailferry.sandbox.graph.server import FakeGraph
from mailferry.sandbox.graph.stream import encode_item
from tests.integration.mailboxharness import APP, ROLES, SOURCE, TARGET

pytestmark = pytest.mark.integration


@pytest.fixture
def fake_graph(tmp_path: Path) -> Iterator[FakeGraph]:
    """A FAKE Graph of this test only."""
    with FakeGraph(tmp_path / "graph") as fake:
        yield fake


@dataclass
class Raw:
    """Plain HTTPS requests to the FAKE Graph, no adapter in between."""

    fake: FakeGraph
    client: httpx.Client
    token: str
    box_id: str

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        url = path if path.startswith("https://") else f"{self.fake.url}/v1.0{path}"
        return self.client.request(method, url, headers=headers, **kwargs)

    def mbx(self, rest: str) -> str:
        return f"/admin/exchange/mailboxes/{self.box_id}{rest}"

    def import_url(self) -> str:
        answer = self.send("POST", self.mbx("/createImportSession"))
        assert answer.status_code == 200
        return str(answer.json()["importUrl"])


@pytest.fixture
def raw(fake_graph: FakeGraph) -> Iterator[Raw]:
    box = fake_graph.store.add_mailbox(SOURCE)
    with httpx.Client(verify=TlsOptions(ca_file=fake_graph.ca_file).context()) as client:
        yield Raw(fake_graph, client, fake_graph.issue_token(APP, ROLES), box.mailbox_id)


def code_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, str(response.json()["error"]["code"])


def stream(item_class: str = "IPM.Note") -> str:
    return base64.b64encode(encode_item(item_class, {"subject": "s"})).decode()


def test_fake_graph_refuses_more_than_20_ids(raw: Raw) -> None:
    ids = [f"id{i}" for i in range(EXPORT_CHUNK + 1)]
    assert code_of(raw.send("POST", raw.mbx("/exportItems"), json={"itemIds": ids}))[0] == 400
    answer = raw.send("POST", raw.mbx("/exportItems"), json={"itemIds": ids[:EXPORT_CHUNK]})
    assert answer.status_code == 200  # 20 unknown ids: 20 per-item errors
    assert {row["error"]["code"] for row in answer.json()["value"]} == {"ErrorItemNotFound"}


def test_fake_graph_refuses_authorization_on_import_url(raw: Raw) -> None:
    inbox = raw.fake.store.mailbox(SOURCE).well_known("inbox").id  # type: ignore[union-attr]
    body = {"FolderId": inbox, "Mode": "create", "Data": stream()}
    assert code_of(raw.send("POST", raw.import_url(), json=body))[0] == 400  # Bearer sent
    answer = raw.client.post(raw.import_url(), json=body)
    assert answer.status_code == 200
    assert answer.json()["itemId"] in raw.fake.store.mailbox(SOURCE).folders[inbox].items  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"Extra": "x"}, (400, "RequestBodyRead")),
        ({"ItemId": "x", "ChangeKey": "y"}, (400, "ErrorInvalidRequest")),  # in create mode
        ({"Mode": "update", "ItemId": "x"}, (400, "ErrorInvalidRequest")),  # no ChangeKey
        ({"Mode": "replace"}, (400, "ErrorInvalidRequest")),
        ({"Data": base64.b64encode(b"hand made").decode()}, (400, "ErrorCorruptData")),
        (
            {"Data": stream("IPM.Appointment")},
            (400, "ErrorCannotCreateCalendarItemInNonCalendarFolder"),
        ),
        ({"FolderId": "elsewhere"}, (404, "ErrorFolderNotFound")),
    ],
)
def test_fake_graph_import_refuses(
    raw: Raw, change: dict[str, str], expected: tuple[int, str]
) -> None:
    inbox = raw.fake.store.mailbox(SOURCE).well_known("inbox").id  # type: ignore[union-attr]
    body = {"FolderId": inbox, "Mode": "create", "Data": stream(), **change}
    assert code_of(raw.client.post(raw.import_url(), json=body)) == expected


def test_fake_graph_import_refuses_folder_of_another_mailbox_and_expired_session(
    raw: Raw,
) -> None:
    other = raw.fake.store.add_mailbox(TARGET).well_known("inbox").id
    url = raw.import_url()
    body = {"FolderId": other, "Mode": "create", "Data": stream()}
    assert code_of(raw.client.post(url, json=body)) == (404, "ErrorFolderNotFound")
    raw.fake.expire_import_sessions()
    inbox = raw.fake.store.mailbox(SOURCE).well_known("inbox").id  # type: ignore[union-attr]
    expired = raw.client.post(url, json={**body, "FolderId": inbox})
    assert expired.status_code == 401
    assert "invalid_token" in expired.headers["WWW-Authenticate"]


def test_fake_graph_refuses_unknown_fields_bodies_and_options(raw: Raw) -> None:
    folders = raw.mbx("/folders")
    unknown = {"displayName": "A", "type": "IPF.Note", "colour": "red"}
    assert code_of(raw.send("POST", folders, json=unknown)) == (400, "RequestBodyRead")
    assert code_of(raw.send("POST", folders, json={"displayName": "A"}))[0] == 400  # no type
    as_text = raw.send("POST", folders, content=b'{"displayName": "A", "type": "IPF.Note"}')
    assert as_text.status_code == 415  # no Content-Type: application/json
    with_body = raw.send("POST", raw.mbx("/createImportSession"), json={})
    assert with_body.status_code == 400
    delta = raw.mbx("/folders/inbox/items/delta")
    assert raw.send("GET", delta, params={"$expand": "attachments"}).status_code == 400
    assert raw.send("GET", folders, params={"$search": "x"}).status_code == 400
    gone = raw.send("GET", delta, params={"$deltatoken": "never-issued"})
    assert code_of(gone) == (410, "SyncStateNotFound")


def test_fake_graph_refuses_without_the_route_permission(raw: Raw) -> None:
    reader = raw.fake.issue_token(APP, ["MailboxFolder.Read.All", "MailboxItem.Read.All"])
    for method, path in (("POST", "/exportItems"), ("POST", "/createImportSession")):
        answer = raw.send(method, raw.mbx(path), headers={"Authorization": f"Bearer {reader}"})
        assert code_of(answer) == (403, "ErrorAccessDenied")
    listing = raw.send(
        "GET", raw.mbx("/folders/inbox/items"), headers={"Authorization": f"Bearer {reader}"}
    )
    assert listing.status_code == 200
