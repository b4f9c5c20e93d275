"""The DAV test servers start fast, take users while running and leave nothing behind."""

from __future__ import annotations

import socket
import ssl
import time

import httpx
import pytest

from mailferry.sandbox.radicale import RadicaleServer
from mailferry.sandbox.xandikos import XandikosServer

pytestmark = pytest.mark.integration

# "Well under a second" on an idle machine (0.2 s and 0.4 s); the CI machines are shared.
START_BUDGET = 3.0


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("kind", [RadicaleServer, XandikosServer])
def test_a_dav_server_starts_fast_and_stops_clean(tmp_path, kind):
    started = time.monotonic()
    with kind(tmp_path) as server:
        elapsed = time.monotonic() - started
        data, port = server.data_dir, server.port
        server.add_user("carol", "pw-carol")
        verify = ssl.create_default_context(cafile=server.ca_file)
        base = f"{server.scheme}://127.0.0.1:{port}/carol/"
        with httpx.Client(verify=verify) as client:
            right = client.request(
                "PROPFIND", base, auth=("carol", "pw-carol"), headers={"Depth": "0"}
            )
            wrong = client.request("PROPFIND", base, auth=("carol", "nope"), headers={"Depth": "0"})
        assert (right.status_code, wrong.status_code) == (207, 401)
    assert elapsed < START_BUDGET
    assert not accepts(port)
    assert not data.exists()
