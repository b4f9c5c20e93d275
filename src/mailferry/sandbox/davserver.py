"""What the two DAV test servers (Radicale, Xandikos) share: a Python child process on 127.0.0.1
with its own storage in a private temporary directory, users in an htpasswd file that the server
re-reads on change (``add_user`` needs no restart), a start that waits until the port accepts,
and a stop that ends the whole process group.

Both run as ``sys.executable -m radicale|xandikos``: the packages come from the dev extras.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from mailferry.sandbox.dovecot import HOST, SandboxError
from mailferry.sandbox.process import TreeServer


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


class DavServer(TreeServer):
    """A DAV server for one test session; subclasses write their files and name the command."""

    name = "dav"
    scheme = "http"
    needs_root = False

    def __init__(self, root: Path, *, smtp_port: int | None = None) -> None:
        super().__init__(root)
        self.smtp_port = smtp_port  # where the server sends any mail (a SmtpSink's port)
        self.ca_file: Path | None = None  # set by servers that speak TLS
        self._users: dict[str, str] = {}

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

    def _prepare_files(self) -> None:
        self.htpasswd_path.write_text("")
        self._configure()

    def _argv(self) -> list[str]:
        return [sys.executable, "-m", self.name, *self._arguments()]

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _ready(self) -> bool:
        return _accepts(self.port)

    def _htpasswd_line(self, user: str, password: str) -> str:
        raise NotImplementedError

    def _configure(self) -> None:
        raise NotImplementedError

    def _arguments(self) -> list[str]:
        raise NotImplementedError
