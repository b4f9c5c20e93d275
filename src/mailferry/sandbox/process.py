"""What the unpacked test servers (Cyrus, Courier) share: where scripts/install-servers put them,
their child process (own process group, stopped with SIGTERM then SIGKILL), the wait for a greeting.

DovecotServer (dovecot.py) is the model: same host, ports from ``free_port``, same errors.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mailferry.sandbox.dovecot import HOST, SandboxError, free_port
from mailferry.sandbox.lifecycle import Service

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

TREE = Path(os.environ.get("MAILFERRY_TEST_SERVERS", "/opt/mailferry-test-servers")) / "tree"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 3.0


def tree_path(relative: str) -> Path:
    """A file of the unpacked packages; a clear error when scripts/install-servers has not run."""
    path = TREE / relative.lstrip("/")
    if not path.exists():
        raise SandboxError(f"{path} not found; run scripts/install-servers (as root)")
    return path


def library_path() -> str:
    """LD_LIBRARY_PATH for programs of the tree: its libraries first, then the system's."""
    dirs = ["usr/lib", "usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"]
    return ":".join(str(TREE / d) for d in dirs)


def tree_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "LD_LIBRARY_PATH": library_path(), **(extra or {})}


def run_tool(argv: Sequence[str], *, stdin: bytes = b"", env: dict[str, str] | None = None) -> None:
    """Run a program of the tree to completion; its stderr goes into the error (never stdin)."""
    result = subprocess.run(
        list(argv), input=stdin, capture_output=True, env=env or tree_env(), check=False
    )
    if result.returncode != 0:
        name = Path(argv[0]).name
        said = result.stderr.decode(errors="replace").strip()
        raise SandboxError(f"{name} failed ({result.returncode}): {said}")


def spawn(argv: Sequence[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            start_new_session=True,  # its own process group: its children are stopped with it
        )


def greets(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2) as sock:
            return sock.recv(256).startswith(b"* OK")
    except OSError:
        return False


def wait_until_ready(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    name: str,
    log_tail: Callable[[], str],
) -> None:
    """Poll ``ready`` until it says yes; the process dying or ``START_TIMEOUT`` is an error."""
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        if process.poll() is not None:
            raise SandboxError(f"{name} exited during start-up:\n{log_tail()}")
        if time.monotonic() > deadline:
            raise SandboxError(f"{name} was not ready in {START_TIMEOUT}s:\n{log_tail()}")
        time.sleep(0.02)


def stop_group(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM to the whole process group, SIGKILL to what is left after ``STOP_TIMEOUT``."""
    if process is None:
        return
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError):  # children outlive a master that exited
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


class TreeServer(Service):
    """What every test server but Dovecot is (Cyrus and Courier from the unpacked tree, the DAV
    servers from PyPI): a context manager over one process group, a private data directory under
    /tmp (linked as ``root/data``) removed on stop, a log, and a start that waits until the server
    is ready (an IMAP greeting, unless ``_ready`` says otherwise). Subclasses write their files and
    name the command (``_prepare_files``, ``_argv``; ``_env`` when not the tree's)."""

    host = HOST
    name = "server"
    needs_root = True  # Cyrus's master becomes the cyrus user; Courier mounts and runs setuid

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.log_path = self.root / f"{self.name}.log"
        self.port = 0
        self._data: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        """A private directory under /tmp that the servers' users can reach (pytest's may not)."""
        if self._data is None:
            raise SandboxError("server not started")
        return self._data

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def start(self) -> None:
        if self._process is not None:
            raise SandboxError(f"{self.name} already started")
        if self.needs_root and os.geteuid() != 0:
            raise SandboxError(f"{type(self).__name__} must run as root")
        self.root.mkdir(parents=True, exist_ok=True)
        self._data = Path(tempfile.mkdtemp(prefix=f"mailferry-{self.name}-"))
        self._data.chmod(0o755)
        link = self.root / "data"
        link.unlink(missing_ok=True)
        link.symlink_to(self._data)
        self.port = free_port()
        self._prepare_files()
        self._process = spawn(self._argv(), self.log_path, self._env())
        try:
            wait_until_ready(self._process, self._ready, self.name, self._log_tail)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        proc, self._process = self._process, None
        stop_group(proc)
        if self._data is not None:
            shutil.rmtree(self._data, ignore_errors=True)
            self._data = None

    def _ready(self) -> bool:
        return greets(self.port)

    def _env(self) -> dict[str, str]:
        return tree_env()

    def _prepare_files(self) -> None:
        raise NotImplementedError

    def _argv(self) -> list[str]:
        raise NotImplementedError
