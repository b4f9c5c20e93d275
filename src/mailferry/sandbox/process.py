"""What the unpacked test servers (Cyrus, Courier) share: where scripts/install-servers put them,
their child process (own process group, stopped with SIGTERM then SIGKILL), the wait for a greeting.

DovecotServer (dovecot.py) is the model: same host, ports from ``free_port``, same errors.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mailferry.sandbox.dovecot import HOST, SandboxError

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


def wait_for_greeting(
    process: subprocess.Popen[bytes], port: int, name: str, log_tail: Callable[[], str]
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not greets(port):
        if process.poll() is not None:
            raise SandboxError(f"{name} exited during start-up:\n{log_tail()}")
        if time.monotonic() > deadline:
            raise SandboxError(f"{name} did not greet on {port} in {START_TIMEOUT}s:\n{log_tail()}")
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
