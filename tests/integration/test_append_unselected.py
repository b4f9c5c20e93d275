"""APPENDs into the folder a session has selected go after an UNSELECT (RFC 3691) where the server
offers it (adapters/imap/account.py, ``_unselect_for_appends``). A pass SELECTs its target folder
for PERMANENTFLAGS and UIDNEXT, and a server brings a selected folder up to date after each
APPEND: Dovecot's Maildir by walking the whole folder, so a first pass into a folder of a million
messages slowed down as it grew (issue 17). On every server the messages land where and as they
should, and a STORE after them selects the folder again."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from mailferry.adapters.imap.namespaced import NamespacedAccount
from mailferry.domain.model import AppendRequest
from mailferry.sandbox.dovecot import DovecotServer
from tests.integration.conftest_helpers import open_sessions

pytestmark = pytest.mark.integration

WHEN = dt.datetime(2022, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
FOLDER = "Unselected"
FLAGGED = frozenset({"\\Flagged"})


def _request(n: int) -> AppendRequest:
    data = f"Message-ID: <unselected.{n}@x>\r\nSubject: n {n}\r\n\r\nbody {n}\r\n".encode()
    return AppendRequest(n, io.BytesIO(data), len(data), frozenset(), WHEN)


def _writer(server, make_user) -> tuple[str, NamespacedAccount]:
    user, password = make_user(server)
    writer, reader = open_sessions(server, user, password)
    reader.close()
    writer.create_folder(FOLDER)
    return user, writer


@pytest.mark.parametrize("name", ["dovecot_dot", "dovecot_prefixed", "cyrus", "courier"])
def test_appends_into_the_selected_folder_land_and_a_store_after_them_selects_it(
    request, make_user, name
):
    _, writer = _writer(request.getfixturevalue(name), make_user)
    try:
        writer.permanent_flags(FOLDER)  # selected, as a pass's first burst leaves it
        before = writer.status(FOLDER)
        results = []
        for start in range(0, 30, 10):  # three bursts, the first after the SELECT
            results += writer.append_batch(FOLDER, [_request(n) for n in range(start, start + 10)])
        assert [r.ok for r in results] == [True] * 30
        uids = [r.target_uid for r in results]
        if None not in uids:  # APPENDUID (UIDPLUS)
            assert uids == list(range(before.uidnext, before.uidnext + 30))
        listed = sorted(m.uid for m in writer.fetch_meta(FOLDER))
        assert len(listed) == 30
        writer.store_flags(FOLDER, [(uid, FLAGGED) for uid in listed[:5]])
        flagged = sorted(m.uid for m in writer.fetch_meta(FOLDER) if m.flags >= FLAGGED)
        assert flagged == listed[:5]
        assert writer.status(FOLDER).exists == 30
    finally:
        writer.close()


def test_dovecot_leaves_a_folder_appended_to_alone_once_unselected(dovecot_dot, make_user):
    """Seen on the disk: bringing a folder selected read-write up to date, Dovecot moves each new
    message's file from ``new/`` to ``cur/``. Appended after the UNSELECT, the unflagged messages
    stay in ``new/``: the session did not look at the folder after its APPENDs."""
    server: DovecotServer = dovecot_dot
    user, writer = _writer(server, make_user)
    try:
        assert "UNSELECT" in writer.capabilities
        writer.permanent_flags(FOLDER)
        writer.append_batch(FOLDER, [_request(n) for n in range(10)])
        writer.append_batch(FOLDER, [_request(n) for n in range(10, 20)])
        maildir = server.data_dir / "home" / user / "Maildir" / f".{FOLDER}"
        assert len(list((maildir / "new").iterdir())) == 20
        assert not list((maildir / "cur").iterdir())
    finally:
        writer.close()
