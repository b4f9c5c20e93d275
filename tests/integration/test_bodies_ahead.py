"""A burst's bodies asked for before the burst ahead of it is read (adapters/imap/bodies.py), on
every server: the bodies are the bodies, byte for byte, whichever way the server interleaves two
pipelined FETCH answers; a burst asked for and never taken leaves the session usable."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from mailferry.adapters.imap import account as account_module
from mailferry.adapters.imap.namespaced import NamespacedAccount
from mailferry.domain.model import AppendRequest, MessageMeta
from mailferry.domain.ports import BodiesAhead
from tests.integration.conftest_helpers import open_sessions

pytestmark = pytest.mark.integration

WHEN = dt.datetime(2021, 6, 7, 8, 9, 10, tzinfo=dt.UTC)
FOLDER = "Voraus Prüfung"  # quoted, modified UTF-7


def _data(n: int) -> bytes:
    body = "".join(f"line {n}.{i} {'x' * (n % 50)}\r\n" for i in range(40 + n))
    return f"Message-ID: <bodies.{n}@x>\r\nSubject: bodies {n}\r\n\r\n{body}".encode()


@pytest.fixture(params=["dovecot_dot", "dovecot_prefixed", "cyrus", "courier"])
def reader(request, make_user):
    """A read-only session (as mailferry opens a source) of a user holding 60 messages."""
    server = request.getfixturevalue(request.param)
    writer, session = open_sessions(server, *make_user(server))
    writer.create_folder(FOLDER)
    requests = [
        AppendRequest(n, io.BytesIO(_data(n)), len(_data(n)), frozenset(), WHEN) for n in range(60)
    ]
    writer.append_batch(FOLDER, requests)
    writer.close()
    yield session
    session.close()


def _bursts(reader: NamespacedAccount) -> list[list[MessageMeta]]:
    listed = list(reader.fetch_meta(FOLDER))
    assert len(listed) == 60
    return [listed[start : start + 20] for start in range(0, 60, 20)]


def _read(reader: NamespacedAccount, burst: list[MessageMeta]) -> dict[int, bytes]:
    found = {}
    for message in reader.fetch_messages(FOLDER, burst):
        found[message.uid] = message.body.read()
        message.body.close()
    return found


def test_bodies_asked_ahead_are_the_bodies(reader):
    bursts = _bursts(reader)
    expected = {uid: body for burst in bursts for uid, body in _read(reader, burst).items()}
    assert sorted(expected.values()) == sorted(_data(n) for n in range(60))
    assert isinstance(reader, BodiesAhead)
    assert reader.send_bodies(FOLDER, bursts[0])
    got: dict[int, bytes] = {}
    for number, burst in enumerate(bursts):
        if number + 1 < len(bursts):  # the next burst asked for before this one is read
            assert reader.send_bodies(FOLDER, bursts[number + 1])
        got.update(_read(reader, burst))
    assert got == expected


def test_a_burst_asked_for_and_not_taken_is_dropped_and_the_session_goes_on(reader):
    bursts = _bursts(reader)
    assert reader.send_bodies(FOLDER, bursts[0])
    assert reader.send_bodies(FOLDER, bursts[1])
    assert not reader.send_bodies(FOLDER, bursts[2])  # two asked ahead at most
    # The second burst taken first: the first's answer is read on the way, and dropped.
    second = _read(reader, bursts[1])
    assert len(second) == 20
    assert reader.send_bodies(FOLDER, bursts[2])  # never taken: read before the next command
    assert reader.status(FOLDER).exists == 60
    assert len(_read(reader, bursts[0])) == 20  # fetched as usual, nothing left over
    assert not reader.send_bodies("INBOX", bursts[0])  # a folder not selected: not asked


@pytest.mark.parametrize("on_a_boundary", [False, True])
def test_a_large_message_read_in_parts_is_the_message(reader, monkeypatch, on_a_boundary):
    """Parts asked one ahead of their reading (``fetch_in_parts``): the same bytes, whether a
    message ends inside a part or exactly on a part's end (the part asked after it is empty)."""
    listed = list(reader.fetch_meta(FOLDER))
    expected = _read(reader, listed)
    assert sorted(expected.values()) == sorted(_data(n) for n in range(60))
    chunk = 1000
    if on_a_boundary:
        size, parts = next((m.size, k) for m in listed for k in (3, 4, 5) if m.size % k == 0)
        chunk = size // parts
    monkeypatch.setattr(account_module, "PARTIAL_CHUNK", chunk)  # these messages in parts
    assert _read(reader, listed) == expected
    assert max(len(body) for body in expected.values()) > 3 * chunk
    assert reader.status(FOLDER).exists == 60  # nothing left unread on the session
