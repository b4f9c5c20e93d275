"""``mailferry serve``: the scheduler in a thread, the web app on uvicorn in the main thread.

One process, one state file. The socket is bound before anything starts, so a port in use is a
one-line error. SIGINT/SIGTERM (installed by the caller) set ``stop``; the web server then
finishes its requests and the scheduler stops its mailboxes after their burst in flight.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import uvicorn

from mailferry.config import is_loopback
from mailferry.domain.errors import ConfigError
from mailferry.service.batches import BatchService
from mailferry.service.scheduler import Scheduler
from mailferry.web.app import create_app
from mailferry.web.settings import WebSettings


@dataclass(frozen=True)
class Listen:
    host: str = "127.0.0.1"
    port: int = 8080
    allow_remote: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def check(self) -> list[str]:
        """Problems with these options, and (separately) the warning to print."""
        problems = []
        if (self.tls_cert is None) != (self.tls_key is None):
            problems.append("--tls-cert and --tls-key go together")
        problems += [
            f"{path}: no such file"
            for path in (self.tls_cert, self.tls_key)
            if path is not None and not path.is_file()
        ]
        if not is_loopback(self.host) and not self.tls and not self.allow_remote:
            problems.append(
                f"--host {self.host} reaches beyond this machine: give --tls-cert/--tls-key, "
                "or --allow-remote behind a TLS reverse proxy"
            )
        return problems

    def warning(self) -> str | None:
        if is_loopback(self.host) or self.tls:
            return None
        return (
            f"WARNING: serving plain HTTP on {self.host}:{self.port}. Passwords and session "
            "cookies cross the network unencrypted unless a TLS reverse proxy is in front."
        )

    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/"


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: ``serve`` owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(listen: Listen) -> socket.socket:
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((listen.host, listen.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {listen.host}:{listen.port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def run(
    service: BatchService,
    scheduler: Scheduler,
    stop: threading.Event,
    listen: Listen,
    *,
    until_idle: bool = False,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until ``stop`` is set (or, with ``until_idle``, the scheduler runs out of work);
    ``on_ready`` gets the URL once the socket is bound (with the real port, for ``--port 0``)."""
    problems = listen.check()
    if problems:
        raise ConfigError(problems)
    sock = bind(listen)
    if on_ready is not None:
        on_ready(replace(listen, port=int(sock.getsockname()[1])).url())
    app = create_app(service, WebSettings(secure_cookies=listen.tls))
    config = uvicorn.Config(
        app,
        log_level="warning",
        log_config=None,  # uvicorn's records go to the handler `mailferry --log-format` set up
        access_log=False,
        ssl_certfile=str(listen.tls_cert) if listen.tls_cert else None,
        ssl_keyfile=str(listen.tls_key) if listen.tls_key else None,
        server_header=False,
    )
    server = _Server(config)

    def schedule() -> None:
        try:
            scheduler.run(stop, until_idle=until_idle)
        finally:
            server.should_exit = True

    def watch() -> None:
        stop.wait()
        server.should_exit = True

    worker = threading.Thread(target=schedule, name="scheduler")
    watcher = threading.Thread(target=watch, name="stop-watch", daemon=True)
    worker.start()
    watcher.start()
    try:
        server.run(sockets=[sock])
    finally:
        stop.set()
        worker.join()
        sock.close()
