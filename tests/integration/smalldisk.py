"""A real small disk for the full-target tests: a tmpfs mounted at a directory (the tests run as
root in CI; where mounting is refused the test is skipped with the reason), resized to free space
(``mount -o remount``), unmounted lazily at the end."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


class Disk:
    def __init__(self, path: Path) -> None:
        self.path = path

    def resize(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


def mount_small_disk(path: Path, size: str, options: str = "") -> Disk:
    """A tmpfs of ``size`` at ``path`` (made if missing), with more mount ``options``."""
    path.mkdir(exist_ok=True)
    flags = f"size={size}" + (f",{options}" if options else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", flags, "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    return Disk(path)
