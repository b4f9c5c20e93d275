"""A session read after its socket was closed (shut down after a cut, with answers to commands
written ahead still to be read) is a lost connection, which the run retries, not a ValueError
that ends it (seen once in the soak test of random cuts, test_faults.py)."""

from __future__ import annotations

import imaplib
import io

import pytest

from mailferry.adapters.imap.session import _Plain, translated
from mailferry.domain.errors import ConnectError


def closed_session() -> _Plain:
    session = _Plain.__new__(_Plain)  # no connection: only the file its answers are read from
    session.file = io.BufferedReader(io.BytesIO(b"* OK answer\r\n"))
    session.file.close()
    return session


@pytest.mark.parametrize("read", [lambda s: s.readline(), lambda s: s.read(4)])
def test_reading_a_closed_session_is_a_lost_connection(read):
    session = closed_session()
    with pytest.raises(imaplib.IMAP4.abort, match="closed"):
        read(session)
    with pytest.raises(ConnectError, match="connection lost"), translated("INBOX"):
        read(session)


def test_an_open_session_reads_as_before():
    session = _Plain.__new__(_Plain)
    session.file = io.BufferedReader(io.BytesIO(b"* OK answer\r\nrest"))
    assert session.readline() == b"* OK answer\r\n"
    assert session.read(4) == b"rest"
