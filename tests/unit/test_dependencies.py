"""pyproject.toml declares every package src/mailferry imports, pins its tools, and constraints.txt
pins every declared package (what the tests ran with)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


SANDBOX = ROOT / "src" / "mailferry" / "sandbox"


def _imported_modules(*, sandbox: bool = False) -> set[str]:
    """Outside packages imported by what ships, or (``sandbox``) by the test servers, which are
    not shipped and may use the dev extras (aiosmtpd)."""
    found = set()
    for path in (ROOT / "src" / "mailferry").rglob("*.py"):
        if path.is_relative_to(SANDBOX) != sandbox:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "mailferry"}


def _undeclared(modules: set[str], declared: set[str]) -> set[str]:
    distributions = packages_distributions()
    missing = set()
    for module in modules:
        names = {_name(d) for d in distributions.get(module, [module])}
        if not names & declared:
            missing.add(module)
    return missing


def test_every_imported_package_is_declared():
    declared = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    missing = _undeclared(_imported_modules(), declared)
    assert not missing, f"imported by src/mailferry but not in [project] dependencies: {missing}"


def test_every_package_the_sandbox_imports_is_declared():
    extras = PYPROJECT["project"]["optional-dependencies"]["dev"]
    declared = {_name(r) for r in [*PYPROJECT["project"]["dependencies"], *extras]}
    missing = _undeclared(_imported_modules(sandbox=True), declared)
    assert not missing, f"imported by src/mailferry/sandbox but not declared: {missing}"


def test_tools_are_pinned_and_imapclient_is_4x():
    dev = PYPROJECT["project"]["optional-dependencies"]["dev"]
    for tool in ("ruff", "mypy"):
        (spec,) = [r for r in dev if _name(r) == tool]
        assert re.fullmatch(rf"{tool}==[\d.]+", spec), spec
    (imap,) = [r for r in PYPROJECT["project"]["dependencies"] if _name(r) == "imapclient"]
    assert imap == "imapclient>=4.0,<5"


def test_constraints_pin_every_declared_package():
    lines = (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("#") and any("Regenerate" in line for line in lines[:6])
    pins = {_name(line): line for line in lines if line and not line.startswith("#")}
    assert all("==" in line for line in pins.values())
    assert "mailferry" not in pins
    optional = PYPROJECT["project"]["optional-dependencies"]["dev"]
    for requirement in [*PYPROJECT["project"]["dependencies"], *optional]:
        assert _name(requirement) in pins, requirement
    install = (ROOT / "scripts" / "install").read_text(encoding="utf-8")
    assert "-c constraints.txt" in install
