"""The latency and fault proxy against a real Dovecot: forwarding, latency, each fault, counters."""

from __future__ import annotations

import contextlib
import imaplib
import random
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import imapclient
import pytest
from imapclient.exceptions import IMAPClientError

from mailferry.sandbox.dovecot import DovecotServer
from mailferry.sandbox.proxy import Proxy, ProxyError

if TYPE_CHECKING:
    from tests.conftest import MakeUser

pytestmark = pytest.mark.integration

# What a client sees when the proxy drops it: imaplib's abort, or the socket error itself.
DROPPED = (imaplib.IMAP4.abort, imaplib.IMAP4.error, IMAPClientError, OSError)
BYE = b"* BYE Server Unavailable. 15\r\n"


def big_message(size: int) -> bytes:
    line = b"x" * 998 + b"\r\n"
    return b"Subject: bulk\r\nMessage-ID: <bulk@proxy.test>\r\n\r\n" + line * (size // len(line))


def client_via(
    proxy: Proxy, user: str, password: str, *, timeout: float = 10
) -> imapclient.IMAPClient:
    client = imapclient.IMAPClient(proxy.host, proxy.port, ssl=False, timeout=timeout)
    client.login(user, password)
    return client


def hang_up(client: imapclient.IMAPClient) -> None:
    """Close a client the proxy dropped (its socket would leak otherwise)."""
    with contextlib.suppress(*DROPPED):
        client.shutdown()


def raw(proxy: Proxy) -> socket.socket:
    sock = socket.create_connection((proxy.host, proxy.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def read_to_end(sock: socket.socket) -> bytes:
    """Everything until EOF; a reset after data ends it too (bounded by the socket timeout)."""
    data = b""
    for _ in range(10_000):
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def read_all_strictly(sock: socket.socket) -> bytes:
    """Everything until EOF; a reset raises."""
    data = b""
    for _ in range(10_000):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def account(dovecot_dot: DovecotServer, make_user: MakeUser) -> tuple[str, str]:
    return make_user(dovecot_dot)


@pytest.fixture
def proxy(dovecot_dot: DovecotServer) -> Iterator[Proxy]:
    with Proxy(dovecot_dot.host, dovecot_dot.port) as running:
        yield running


@pytest.fixture
def greeting_size(proxy: Proxy) -> int:
    """Bytes of the server greeting (measured through the proxy, before any fault is armed)."""
    with raw(proxy) as sock:
        size = len(read_line(sock))
    assert proxy.wait_until_idle()
    return size


def fill(dovecot_dot: DovecotServer, user: str, password: str, bodies: list[bytes]) -> None:
    direct = imapclient.IMAPClient(dovecot_dot.host, dovecot_dot.port, ssl=False, timeout=30)
    direct.login(user, password)
    for body in bodies:
        direct.append("INBOX", body)
    direct.logout()


# -- forwarding, latency, throughput ----------------------------------------------------------


def test_imapclient_works_through_the_proxy(proxy: Proxy, account: tuple[str, str]) -> None:
    body = b"Subject: hello\r\nMessage-ID: <1@proxy.test>\r\n\r\nthrough the proxy\r\n"
    client = client_via(proxy, *account)
    client.create_folder("Work")
    client.append("Work", body, [b"\\Seen"])
    client.select_folder("Work")
    fetched = client.fetch(client.search(), ["BODY.PEEK[]", "FLAGS"])
    client.logout()
    assert [m[b"BODY[]"] for m in fetched.values()] == [body]
    assert proxy.wait_until_idle()
    assert (proxy.total_connections, proxy.max_concurrent, proxy.open_connections) == (1, 1, 0)
    assert proxy.bytes_up > len(body)
    assert proxy.bytes_down > len(body)
    assert proxy.faults_fired == 0


def test_latency_is_added_each_way(dovecot_dot: DovecotServer, account: tuple[str, str]) -> None:
    latency = 0.05
    with Proxy(dovecot_dot.host, dovecot_dot.port, latency=latency) as proxy:
        client = client_via(proxy, *account)
        rounds = []
        for _ in range(3):
            start = time.monotonic()
            client.noop()
            rounds.append(time.monotonic() - start)
        client.logout()
    assert min(rounds) >= 2 * latency
    assert max(rounds) < 2 * latency + 0.5


def test_latency_does_not_cap_bulk_throughput(
    dovecot_dot: DovecotServer, account: tuple[str, str]
) -> None:
    body = big_message(16 << 20)
    fill(dovecot_dot, *account, [body])
    latency = 0.05
    with Proxy(dovecot_dot.host, dovecot_dot.port, latency=latency) as proxy:
        client = client_via(proxy, *account, timeout=30)
        client.select_folder("INBOX", readonly=True)
        start = time.monotonic()
        fetched = client.fetch([1], ["BODY.PEEK[]"])
        fetch_seconds = time.monotonic() - start
        start = time.monotonic()
        client.append("INBOX", body)  # a synchronising literal: two round trips
        append_seconds = time.monotonic() - start
        client.logout()
    assert fetched[1][b"BODY[]"] == body
    # One round trip plus the transfer; delaying each 256 KB chunk in turn would take 3.2 s.
    assert fetch_seconds < 2 * latency + 1.0
    assert append_seconds < 4 * latency + 1.0


# -- faults -----------------------------------------------------------------------------------


def test_cut_after_down_resets_the_client_once(proxy: Proxy, greeting_size: int) -> None:
    proxy.cut_after(10)
    with raw(proxy) as sock:
        received = read_to_end(sock)
    assert received == read_greeting_prefix(proxy, 10)
    assert proxy.faults_fired == 1
    with raw(proxy) as sock:  # spent: the next connection is served whole
        assert len(read_line(sock)) == greeting_size
    assert proxy.faults_fired == 1


def read_greeting_prefix(proxy: Proxy, size: int) -> bytes:
    with raw(proxy) as sock:
        return read_line(sock)[:size]


def test_cut_is_a_reset_not_a_close(proxy: Proxy, greeting_size: int) -> None:
    proxy.cut_after(greeting_size + 5)
    with raw(proxy) as sock:
        assert len(read_line(sock)) == greeting_size
        sock.sendall(b"a NOOP\r\n")
        with pytest.raises(ConnectionResetError):
            read_all_strictly(sock)
    assert proxy.faults_fired == 1


def test_cut_after_up_counts_client_bytes(proxy: Proxy, greeting_size: int) -> None:
    proxy.cut_after(5, direction="up")
    with raw(proxy) as sock:
        assert len(read_line(sock)) == greeting_size
        sock.sendall(b"a NOOP\r\n")
        assert read_to_end(sock) == b""  # reset before any answer
    assert proxy.bytes_up == 5
    assert proxy.faults_fired == 1


def test_cut_during_a_fetch_drops_imapclient(
    dovecot_dot: DovecotServer, proxy: Proxy, account: tuple[str, str]
) -> None:
    fill(dovecot_dot, *account, [big_message(1 << 20)])
    client = client_via(proxy, *account)
    client.select_folder("INBOX", readonly=True)
    proxy.cut_after(300_000)
    with pytest.raises(DROPPED):
        client.fetch([1], ["BODY.PEEK[]"])
    hang_up(client)
    assert proxy.faults_fired == 1
    again = client_via(proxy, *account)  # the next connection works
    again.select_folder("INBOX", readonly=True)
    assert len(again.fetch([1], ["BODY.PEEK[]"])[1][b"BODY[]"]) > 1_000_000
    again.logout()


def test_stall_delays_then_resumes(
    proxy: Proxy, account: tuple[str, str], greeting_size: int
) -> None:
    proxy.stall_after(greeting_size, 0.6)
    client = client_via(proxy, *account)  # the greeting passes, then the LOGIN answer stalls
    start = time.monotonic()
    client.noop()
    noop_seconds = time.monotonic() - start
    client.logout()
    assert proxy.faults_fired == 1
    assert noop_seconds < 0.3  # the stall happened during login, and only once


def test_stall_holds_traffic_for_the_given_time(proxy: Proxy, greeting_size: int) -> None:
    proxy.stall_after(10, 0.5)
    with raw(proxy) as sock:
        start = time.monotonic()
        first = sock.recv(65536)
        rest = b""
        while len(first) + len(rest) < greeting_size:
            rest += sock.recv(65536)
        elapsed = time.monotonic() - start
    assert len(first) == 10
    assert elapsed >= 0.5


def test_stall_upwards(proxy: Proxy, account: tuple[str, str]) -> None:
    client = client_via(proxy, *account)
    proxy.stall_after(0, 0.4, direction="up")
    start = time.monotonic()
    client.noop()
    assert time.monotonic() - start >= 0.4
    client.logout()


def test_half_close_ends_the_client_bound_direction_only(proxy: Proxy, greeting_size: int) -> None:
    proxy.half_close_after(greeting_size)
    with raw(proxy) as sock:
        assert len(read_line(sock)) == greeting_size
        assert sock.recv(65536) == b""  # EOF: nothing more comes from the server
        before = proxy.bytes_up
        sock.sendall(b"a NOOP\r\n")  # the other direction still works
        deadline = time.monotonic() + 5
        while proxy.bytes_up == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proxy.bytes_up == before + len(b"a NOOP\r\n")
    assert proxy.faults_fired == 1
    assert proxy.wait_until_idle()


def test_inject_sends_bye_instead_and_closes(proxy: Proxy, greeting_size: int) -> None:
    with raw(proxy) as sock:
        assert len(read_line(sock)) == greeting_size
        proxy.inject_after(0, BYE)
        sock.sendall(b"a NOOP\r\n")
        assert read_to_end(sock) == BYE  # instead of the server's answer, then EOF
    assert proxy.faults_fired == 1
    assert proxy.wait_until_idle()


def test_inject_bye_aborts_imapclient(proxy: Proxy, account: tuple[str, str]) -> None:
    client = client_via(proxy, *account)
    proxy.inject_after(0, BYE)
    with pytest.raises(DROPPED, match="Server Unavailable"):
        client.select_folder("INBOX")
    hang_up(client)
    assert proxy.wait_until_idle()


def test_replace_next_turns_one_append_into_a_refusal(
    proxy: Proxy, account: tuple[str, str]
) -> None:
    body = b"Subject: q\r\nMessage-ID: <q@proxy.test>\r\n\r\nquota\r\n"
    client = client_via(proxy, *account)
    proxy.replace_next(rb"^(\S+) OK \[APPENDUID .*$", rb"\1 NO [OVERQUOTA] Quota exceeded")
    with pytest.raises(IMAPClientError, match="OVERQUOTA"):
        client.append("INBOX", body)
    assert proxy.faults_fired == 1
    client.append("INBOX", body)  # spent: the next APPEND answers OK
    assert client.select_folder("INBOX")[b"EXISTS"] == 2  # the server did store the first one
    client.logout()
    assert proxy.faults_fired == 1


def test_replace_next_waits_for_whole_lines(proxy: Proxy, greeting_size: int) -> None:
    with raw(proxy) as sock:
        read_line(sock)
        proxy.replace_next(rb"OK (.*)completed", rb"NO [THROTTLED] \1slow down")
        sock.sendall(b"a NOOP\r\nb NOOP\r\n")
        lines = [read_line(sock), read_line(sock)]
    assert lines[0].startswith(b"a NO [THROTTLED] NOOP slow down")
    assert lines[0].endswith(b"\r\n")
    assert lines[1].startswith(b"b OK ")


def test_watch_keeps_matching_server_lines(proxy: Proxy, greeting_size: int) -> None:
    proxy.watch(rb"^\S+ OK .*completed")
    with raw(proxy) as sock:
        read_line(sock)
        sock.sendall(b"a NOOP\r\nb CAPABILITY\r\nc NOOP\r\n")
        lines = [read_line(sock) for _ in range(4)]  # CAPABILITY adds an untagged line
    assert lines[-1].startswith(b"c OK ")
    assert lines[2].startswith(b"b OK ")  # Dovecot: "Pre-login capabilities listed, ..."
    seen = proxy.seen(rb"^\S+ OK .*completed")
    assert [line.split()[0] for line in seen] == [b"a", b"c"]
    assert all(not line.endswith(b"\r") for line in seen)


def test_refuse_new_closes_new_connections_until_turned_off(
    proxy: Proxy, account: tuple[str, str]
) -> None:
    kept = client_via(proxy, *account)
    proxy.refuse_new(on=True)
    with raw(proxy) as sock:
        assert read_to_end(sock) == b""
    with pytest.raises(DROPPED):
        client_via(proxy, *account)
    kept.noop()  # connections already open are not affected
    proxy.refuse_new(on=False)
    client_via(proxy, *account).logout()
    kept.logout()
    assert proxy.refused_connections == 2
    assert proxy.total_connections == 2


def test_random_cuts_are_seeded_and_fire_one_after_another(
    dovecot_dot: DovecotServer, proxy: Proxy, account: tuple[str, str]
) -> None:
    fill(dovecot_dot, *account, [big_message(20_000 + 1000 * i) for i in range(20)])
    proxy.schedule_random_cuts(3, max_bytes=60_000, seed=7)
    rng = random.Random(7)
    offsets = [rng.randint(1, 60_000) for _ in range(3)]
    drops = 0
    for _ in range(20):  # bounded: each attempt either finishes or is cut
        if proxy.faults_fired == 3:
            break
        client = None
        try:
            client = client_via(proxy, *account)
            client.select_folder("INBOX", readonly=True)
            client.fetch(client.search(), ["BODY.PEEK[]"])
            client.logout()
        except DROPPED:
            drops += 1
            if client is not None:
                hang_up(client)
    assert proxy.faults_fired == 3
    assert proxy.faults_pending == 0
    assert drops == 3
    assert proxy.wait_until_idle()
    # Each cut comes its offset after the previous one; after the third nothing more passes.
    assert proxy.bytes_up + proxy.bytes_down == sum(offsets)


def test_a_bad_direction_is_refused(proxy: Proxy) -> None:
    with pytest.raises(ProxyError):
        proxy.cut_after(1, direction="sideways")


# -- counters ---------------------------------------------------------------------------------


def test_counters_with_concurrent_clients(proxy: Proxy, greeting_size: int) -> None:
    clients = 6
    socks = [raw(proxy) for _ in range(clients)]
    for sock in socks:
        assert len(read_line(sock)) == greeting_size
    assert proxy.open_connections == clients
    sent = [0] * clients
    received = [greeting_size] * clients

    def talk(index: int) -> None:
        sock = socks[index]
        for n in range(20):
            command = f"t{index}x{n} NOOP\r\n".encode()
            sock.sendall(command)
            sent[index] += len(command)
            received[index] += len(read_line(sock))

    threads = [threading.Thread(target=talk, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for sock in socks:
        sock.close()
    assert proxy.wait_until_idle()
    assert proxy.max_concurrent == clients
    assert proxy.total_connections == clients + 1  # and the greeting_size probe
    assert proxy.bytes_up == sum(sent)
    assert proxy.bytes_down == sum(received) + greeting_size


def test_stop_closes_open_connections_promptly(
    dovecot_dot: DovecotServer, account: tuple[str, str]
) -> None:
    proxy = Proxy(dovecot_dot.host, dovecot_dot.port, latency=0.01)
    proxy.start()
    client = client_via(proxy, *account)
    start = time.monotonic()
    proxy.stop()
    assert time.monotonic() - start < 2
    with pytest.raises(DROPPED):
        client.noop()
    hang_up(client)
