"""A TCP proxy on 127.0.0.1 that adds latency and injects faults, for tests and benchmarks.

``Proxy(upstream_host, upstream_port, latency=0.010)`` listens on a free port of 127.0.0.1 and
forwards every accepted connection to the upstream server (a sandbox Dovecot). Clients connect to
``proxy.host:proxy.port``.

Threads: one accepts; each client connection is then served by one thread that polls its two
non-blocking sockets. Every socket operation of a connection happens on that thread, so a fault
can reset, half-close or close sockets without racing a call blocked in another thread.

Latency: each chunk read is stamped "due at now + latency" and queued; it is written when due
while reading goes on, so the delay is added once per direction and never caps throughput
(reading pauses only when ``QUEUE_LIMIT`` bytes wait in one direction). Both sockets have
TCP_NODELAY.

Faults are armed for future traffic and count the bytes forwarded from the moment they are
armed, across all connections, in one direction: ``"up"`` (client to server), ``"down"`` (server
to client) or ``"both"`` (either). A fault fires on the connection that forwards its last byte,
once. ``replace_next`` is line-aware on server-to-client traffic: while it is armed, incomplete
lines are held back until their line feed arrives (IMAP responses always end in CRLF).

Why one module of 400+ lines: the proxy's faults act on its connections' sockets from their one
thread each, so the fault table and the connection loop belong together; test infrastructure.
"""

from __future__ import annotations

import contextlib
import functools
import random
import re
import select
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from mailferry.sandbox.lifecycle import Service

if TYPE_CHECKING:
    from collections.abc import Callable

HOST = "127.0.0.1"
UP, DOWN, BOTH = "up", "down", "both"
CHUNK = 256 * 1024
QUEUE_LIMIT = 16 * 1024 * 1024  # bytes read ahead in one direction before reading pauses
POLL_INTERVAL = 0.05  # how often idle threads look at the stop flag
CONNECT_TIMEOUT = 10.0
DRAIN_SECONDS = 5.0  # after an injected response, how long the client may take to hang up
JOIN_TIMEOUT = 5.0
MAX_HELD_LINE = 64 * 1024  # an incomplete line longer than this is forwarded unexamined
_READ = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR
_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


class ProxyError(RuntimeError):
    """The proxy was misused (bad direction, not started)."""


class _Kind(StrEnum):
    CUT = "cut"
    STALL = "stall"
    HALF_CLOSE = "half-close"
    INJECT = "inject"
    CLOSE = "close"  # internal: the second half of INJECT


@dataclass
class _Fault:
    kind: _Kind
    direction: str
    remaining: int
    seconds: float = 0.0
    data: bytes = b""
    chain: tuple[int, ...] = ()  # offsets of the scheduled cuts that follow this one


def _direction(value: str, allowed: tuple[str, ...] = (UP, DOWN, BOTH)) -> str:
    if value not in allowed:
        raise ProxyError(f"direction must be one of {allowed}, not {value!r}")
    return value


class Proxy(Service):
    """A latency and fault proxy for one upstream server; use it as a context manager."""

    def __init__(
        self, upstream_host: str, upstream_port: int, *, latency: float = 0.0, seed: int = 0
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.latency = latency
        self.host = HOST
        self.port = 0
        self._rng = random.Random(seed)  # noqa: S311 - reproducible faults, not cryptography
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._faults: list[_Fault] = []
        self._replacement: tuple[re.Pattern[bytes], bytes] | None = None
        self._replacements_left: int | None = 0
        self._watches: dict[bytes, tuple[re.Pattern[bytes], list[bytes]]] = {}
        self._refusing = False
        self._counts = dict.fromkeys(("open", "max", "total", "refused", "up", "down", "fired"), 0)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._listener is not None:
            raise ProxyError("proxy already started")
        self._stopping.clear()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        listener.listen(128)
        listener.settimeout(POLL_INTERVAL)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._spawn(self._accept_loop, "proxy-accept")

    def stop(self) -> None:
        """Close the listener and every connection; returns within a few seconds."""
        self._stopping.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        deadline = time.monotonic() + JOIN_TIMEOUT
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def wait_until_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no connection is open (they close asynchronously); False on timeout."""
        deadline = time.monotonic() + timeout
        while self.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.open_connections == 0

    # -- counters -----------------------------------------------------------------------------

    def _count(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    @property
    def open_connections(self) -> int:
        return self._count("open")

    @property
    def max_concurrent(self) -> int:
        return self._count("max")

    @property
    def total_connections(self) -> int:
        return self._count("total")

    @property
    def refused_connections(self) -> int:
        return self._count("refused")

    @property
    def bytes_up(self) -> int:
        return self._count("up")

    @property
    def bytes_down(self) -> int:
        return self._count("down")

    @property
    def faults_fired(self) -> int:
        return self._count("fired")

    @property
    def faults_pending(self) -> int:
        """Faults armed and not yet fired, including the scheduled random cuts still to come."""
        with self._lock:
            pending = sum(1 + len(f.chain) for f in self._faults)
            return pending + (self._replacement is not None)

    # -- faults -------------------------------------------------------------------------------

    def cut_after(self, nbytes: int, *, direction: str = DOWN) -> None:
        """After ``nbytes`` more bytes in ``direction``, reset both sides (RST)."""
        self._arm(_Fault(_Kind.CUT, _direction(direction), nbytes))

    def stall_after(self, nbytes: int, seconds: float, *, direction: str = DOWN) -> None:
        """After ``nbytes`` more bytes in ``direction``, forward nothing that way for ``seconds``."""
        self._arm(_Fault(_Kind.STALL, _direction(direction), nbytes, seconds=seconds))

    def half_close_after(self, nbytes: int) -> None:
        """After ``nbytes`` more server-to-client bytes, shut down the client-bound direction only."""
        self._arm(_Fault(_Kind.HALF_CLOSE, DOWN, nbytes))

    def inject_after(self, nbytes: int, data: bytes) -> None:
        """After ``nbytes`` more server-to-client bytes, send ``data`` instead and close."""
        self._arm(_Fault(_Kind.INJECT, DOWN, nbytes, data=data))

    def replace_next(self, pattern: bytes, replacement: bytes, *, times: int | None = 1) -> None:
        """Rewrite the next ``times`` server-to-client lines that match ``pattern`` (``re.search``;
        ``times`` None: every one from now on, until ``clear_faults``).

        The line without its line ending becomes ``re.sub(pattern, replacement, line, count=1)``
        (so ``\\1`` works); the line ending is kept. Then the rule is spent.
        """
        with self._lock:
            self._replacement = (re.compile(pattern), replacement)
            self._replacements_left = times

    def watch(self, pattern: bytes) -> None:
        """From now on, keep every server-to-client line that matches ``pattern`` (``re.search``);
        ``seen(pattern)`` returns them. Makes the server-to-client direction line-aware."""
        with self._lock:
            self._watches.setdefault(pattern, (re.compile(pattern), []))

    def seen(self, pattern: bytes) -> list[bytes]:
        """The lines (without line ending) that matched a watched ``pattern`` so far."""
        with self._lock:
            return list(self._watches[pattern][1])

    def refuse_new(self, on: bool) -> None:
        """While on, accept new connections and close them at once (before any greeting)."""
        with self._lock:
            self._refusing = on

    def schedule_random_cuts(
        self, count: int, *, max_bytes: int, seed: int | None = None, direction: str = BOTH
    ) -> None:
        """Arm ``count`` cuts one after another, each 1..``max_bytes`` bytes after the last.

        Offsets come from ``random.Random(seed)`` (the proxy's own seed if None). The default
        direction ``"both"`` counts traffic either way, so cuts land in downloads and uploads.
        """
        if count <= 0:
            return
        rng = self._rng if seed is None else random.Random(seed)  # noqa: S311
        offsets = tuple(rng.randint(1, max_bytes) for _ in range(count))
        self._arm(_Fault(_Kind.CUT, _direction(direction), offsets[0], chain=offsets[1:]))

    def clear_faults(self) -> None:
        """Disarm every fault not yet fired (and the pending replacement)."""
        with self._lock:
            self._faults.clear()
            self._replacement = None

    def _arm(self, fault: _Fault) -> None:
        if fault.remaining < 0:
            raise ProxyError("a byte count cannot be negative")
        with self._lock:
            self._faults.append(fault)

    # -- used by connections ------------------------------------------------------------------

    def _take(self, direction: str, size: int) -> tuple[int, _Fault | None]:
        """How many of ``size`` bytes to forward before a fault fires, and that fault."""
        with self._lock:
            armed = [f for f in self._faults if f.direction in {direction, BOTH}]
            first = min(armed, key=lambda f: f.remaining, default=None)
            allowed = size if first is None else min(size, first.remaining)
            for fault in armed:
                fault.remaining -= allowed
            self._counts[direction] += allowed
            if first is None or first.remaining > 0:
                return allowed, None
            self._faults.remove(first)
            self._counts["fired"] += 1
            if first.chain:
                follow = _Fault(_Kind.CUT, first.direction, first.chain[0], chain=first.chain[1:])
                self._faults.append(follow)
            return allowed, first

    def _rewrite(self, block: bytes) -> tuple[bytes, bool]:
        """Note the watched lines of ``block`` and apply the armed replacement to its complete
        lines; still line-aware afterwards?"""
        with self._lock:
            lines = block.split(b"\n")
            for i, line in enumerate(lines[:-1]):
                text = line.removesuffix(b"\r")
                for pattern, found in self._watches.values():
                    if pattern.search(text):
                        found.append(text)
                if self._replacement is not None and self._replacement[0].search(text):
                    pattern, replacement = self._replacement
                    lines[i] = pattern.sub(replacement, text, count=1) + line[len(text) :]
                    self._counts["fired"] += 1
                    if self._replacements_left is not None:
                        self._replacements_left -= 1
                        if self._replacements_left <= 0:
                            self._replacement = None
            return b"\n".join(lines), self._line_aware_locked()

    def _line_aware_locked(self) -> bool:
        return self._replacement is not None or bool(self._watches)

    def _replacing(self) -> bool:
        with self._lock:
            return self._line_aware_locked()

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set() and (listener := self._listener) is not None:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed by stop()
            with self._lock:
                refuse = self._refusing
                self._counts["refused" if refuse else "total"] += 1
                if not refuse:
                    self._counts["open"] += 1
                    self._counts["max"] = max(self._counts["max"], self._counts["open"])
            if refuse:
                client.close()
                continue
            name = f"proxy-link-{self.total_connections}"
            self._spawn(functools.partial(_serve, self, client), name)

    def _closed(self) -> None:
        with self._lock:
            self._counts["open"] -= 1


class _Stream:
    """One direction of one connection: what was read, when it is due, what is left to write."""

    def __init__(self, name: str, src: socket.socket, dst: socket.socket) -> None:
        self.name, self.src, self.dst = name, src, dst
        self.queue: deque[tuple[float, bytes | None]] = deque()  # (due, data); None is EOF
        self.queued = 0
        self.out = b""  # counted and cleared by the fault logic, to be written
        self.fault: _Fault | None = None  # fires once ``out`` is written
        self.paused_until = 0.0
        self.held = b""  # an incomplete line held back while a replacement is armed
        self.eof_read = self.eof_sent = self.discard = False

    @property
    def finished(self) -> bool:
        return self.eof_sent or (self.discard and self.eof_read)

    @property
    def wants_read(self) -> bool:
        return not self.eof_read and self.queued < QUEUE_LIMIT

    def next_due(self) -> float | None:
        """When the next queued chunk may be written."""
        if not self.queue:
            return None
        return max(self.queue[0][0], self.paused_until)


def _serve(proxy: Proxy, client: socket.socket) -> None:
    """Connect upstream and forward until both directions end, a fault fires or the proxy stops."""
    server: socket.socket | None = None
    try:
        server = socket.create_connection(proxy.upstream, timeout=CONNECT_TIMEOUT)
        _Link(proxy, client, server).run()
    except OSError:
        _reset(client, server)
    finally:
        client.close()
        if server is not None:
            server.close()
        proxy._closed()


def _reset(*socks: socket.socket | None) -> None:
    """Close sockets with RST (SO_LINGER 0), as a dropped connection looks."""
    for sock in socks:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
            sock.close()


class _Link:
    """One client connection and its upstream connection, served by one thread."""

    def __init__(self, proxy: Proxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy, self.client, self.server = proxy, client, server
        self.up = _Stream(UP, client, server)
        self.down = _Stream(DOWN, server, client)
        self.deadline: float | None = None  # set when the link is only draining
        self.closed = False

    def run(self) -> None:
        for sock in (self.client, self.server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(0.0)  # non-blocking
        poller = select.poll()
        while not self.closed and not self.proxy._stopping.is_set():
            if self.up.finished and self.down.finished:
                return
            if self.deadline is not None and time.monotonic() > self.deadline:
                return
            for stream in (self.up, self.down):
                self._write(stream)
                if self.closed:
                    return
            self._wait(poller)

    def _wait(self, poller: select.poll) -> None:
        """Sleep until a socket is ready or a queued chunk falls due; then read what came in."""
        masks, timeout = self._interest()
        for fd, mask in masks.items():
            if mask:
                poller.register(fd, mask)
        try:
            ready = dict(poller.poll(max(0.0, timeout) * 1000))
        finally:
            for fd, mask in masks.items():
                if mask:
                    poller.unregister(fd)
        for stream in (self.up, self.down):
            if ready.get(stream.src.fileno(), 0) & _READ and stream.wants_read:
                self._read(stream)

    def _interest(self) -> tuple[dict[int, int], float]:
        """Poll masks per socket, and how long to wait at most."""
        now = time.monotonic()
        masks = {self.client.fileno(): 0, self.server.fileno(): 0}
        timeout = POLL_INTERVAL
        for stream in (self.up, self.down):
            if stream.wants_read:
                masks[stream.src.fileno()] |= _READ
            if stream.out:
                masks[stream.dst.fileno()] |= select.POLLOUT
            elif (due := stream.next_due()) is not None:
                timeout = min(timeout, due - now)
        return masks, timeout

    def _read(self, stream: _Stream) -> None:
        try:
            data = stream.src.recv(CHUNK)
        except BlockingIOError:
            return
        except ConnectionResetError:
            self._reset()
            return
        due = time.monotonic() + self.proxy.latency
        if not data:
            stream.eof_read = True
            if stream.held:
                stream.queue.append((due, stream.held))
                stream.queued += len(stream.held)
                stream.held = b""
            stream.queue.append((due, None))
            return
        if stream.name == DOWN and (stream.held or self.proxy._replacing()):
            data = self._lines(stream, stream.held + data)
        if data:
            stream.queue.append((due, data))
            stream.queued += len(data)

    def _lines(self, stream: _Stream, data: bytes) -> bytes:
        """The complete lines of ``data``, rewritten; the rest is held back while armed."""
        end = data.rfind(b"\n") + 1
        block, stream.held = data[:end], data[end:]
        block, armed = self.proxy._rewrite(block)
        if not armed or len(stream.held) > MAX_HELD_LINE:
            block, stream.held = block + stream.held, b""
        return block

    def _write(self, stream: _Stream) -> None:
        now = time.monotonic()
        while not self.closed:
            if stream.out:
                try:
                    sent = stream.dst.send(stream.out)
                except BlockingIOError:
                    return
                stream.out = stream.out[sent:]
                if stream.out:
                    return
            elif stream.fault is not None:
                fault, stream.fault = stream.fault, None
                self._fire(stream, fault, now)
            elif not self._next_chunk(stream, now):
                return

    def _next_chunk(self, stream: _Stream, now: float) -> bool:
        """Move the next due chunk to ``out`` (through the fault logic); False if none is due."""
        if not stream.queue or now < stream.paused_until or stream.queue[0][0] > now:
            return False
        due, data = stream.queue.popleft()
        if data is None:
            if not stream.discard:
                stream.dst.shutdown(socket.SHUT_WR)
            stream.eof_sent = True
            return False
        stream.queued -= len(data)
        if stream.discard:
            return True
        allowed, stream.fault = self.proxy._take(stream.name, len(data))
        stream.out = data[:allowed]
        if allowed < len(data):
            stream.queue.appendleft((due, data[allowed:]))
            stream.queued += len(data) - allowed
        return True

    def _fire(self, stream: _Stream, fault: _Fault, now: float) -> None:
        if fault.kind == _Kind.CUT:
            self._reset()
        elif fault.kind == _Kind.STALL:
            stream.paused_until = now + fault.seconds
        elif fault.kind == _Kind.HALF_CLOSE:
            self.client.shutdown(socket.SHUT_WR)
            self.down.discard = self.down.eof_sent = True
        elif fault.kind == _Kind.INJECT:
            stream.out = fault.data
            stream.fault = _Fault(_Kind.CLOSE, DOWN, 0)
        else:  # CLOSE: hang up on both; wait a little for the client to read and hang up
            self.client.shutdown(socket.SHUT_WR)
            self.down.eof_sent = True
            with contextlib.suppress(OSError):
                self.server.shutdown(socket.SHUT_RDWR)
            self.up.discard = self.down.discard = True
            self.up.queue.clear()
            self.deadline = now + DRAIN_SECONDS

    def _reset(self) -> None:
        self.closed = True
        _reset(self.client, self.server)
