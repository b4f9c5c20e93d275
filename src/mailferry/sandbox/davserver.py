"""What the two DAV test servers (Radicale, Xandikos) share: a Python child process on 127.0.0.1
with its own storage in a private temporary directory, users in an htpasswd file that the server
re-reads on change (``add_user`` needs no restart), a start that waits until the port accepts,
and a stop that ends the whole process group.

Both run as ``sys.executable -m radicale|xandikos``: the packages come from the dev extras.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Self

from mailferry.sandbox.dovecot import HOST, SandboxError, free_port
from mailferry.sandbox.process import spawn, stop_group

if TYPE_CHECKING:
    import subprocess
    from types import TracebackType

START_TIMEOUT = 20.0


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


class DavServer:
    """A DAV server for one test session; subclasses write their files and name the command."""

    host = HOST
    name = "dav"
    scheme = "http"

    def __init__(self, root: Path, *, smtp_port: int | None = None) -> None:
        self.root = root.resolve()
        self.smtp_port = smtp_port  # where the server sends any mail (a SmtpSink's port)
        self.log_path = self.root / f"{self.name}.log"
        self.port = 0
        self.ca_file: Path | None = None  # set by servers that speak TLS
        self._data: Path | None = None
        self._users: dict[str, str] = {}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        if self._data is None:
            raise SandboxError("server not started")
        return self._data

    @property
    def htpasswd_path(self) -> Path:
        return self.data_dir / "htpasswd"

    def url(self, user: str, path: str = "/") -> str:
        """The account URL mailferry is given: ``SCHEME://USER@127.0.0.1:PORT/PATH``."""
        return f"{self.scheme}://{user}@{HOST}:{self.port}{path}"

    def add_user(self, user: str, password: str) -> None:
        if not user.isalnum() or ":" in password or "\n" in password:
            raise SandboxError(f"user {user!r} (or its password) cannot go into an htpasswd file")
        self._users[user] = password
        lines = [self._htpasswd_line(u, p) for u, p in self._users.items()]
        tmp = self.htpasswd_path.with_suffix(".tmp")
        tmp.write_text("".join(f"{line}\n" for line in lines))
        tmp.replace(self.htpasswd_path)  # atomic: the server never reads half a file

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._process is not None:
            raise SandboxError(f"{self.name} already started")
        self.root.mkdir(parents=True, exist_ok=True)
        self._data = Path(tempfile.mkdtemp(prefix=f"mailferry-{self.name}-"))
        self.htpasswd_path.write_text("")
        self.port = free_port()
        self._prepare_files()
        argv = [sys.executable, "-m", self.name, *self._arguments()]
        self._process = spawn(argv, self.log_path, dict(os.environ))
        try:
            self._wait_until_accepting()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_group(process)
        if self._data is not None:
            shutil.rmtree(self._data, ignore_errors=True)
            self._data = None

    def _wait_until_accepting(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not _accepts(self.port):
            if self._process is None or self._process.poll() is not None:
                raise SandboxError(f"{self.name} exited during start-up:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise SandboxError(f"{self.name} did not listen in {START_TIMEOUT}s")
            time.sleep(0.02)

    def _htpasswd_line(self, user: str, password: str) -> str:
        raise NotImplementedError

    def _prepare_files(self) -> None:
        raise NotImplementedError

    def _arguments(self) -> list[str]:
        raise NotImplementedError
