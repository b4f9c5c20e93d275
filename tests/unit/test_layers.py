"""The layer contracts of scripts/check (import-linter, configured in pyproject.toml) hold, and they
do fail on an upward import: a copy of the package with one added is refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    return subprocess.run(
        [str(LINT), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "src" / "mailferry", tmp_path / "src" / "mailferry")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contracts_hold(tree):
    result = lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "upward"),
    [
        ("domain/plan.py", "import mailferry.service.migrate"),
        ("adapters/imap/wire.py", "import mailferry.bootstrap"),
        ("service/verify.py", "import mailferry.cli"),
        ("domain/identity.py", "import sqlite3"),
    ],
)
def test_an_upward_import_breaks_the_check(tree, module, upward):
    path = tree / "src" / "mailferry" / module
    path.write_text(path.read_text() + f"\n{upward}  # noqa\n")
    result = lint(tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert upward.split()[1] in result.stdout
