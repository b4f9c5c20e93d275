"""PST test files the unit tests share: the public outlook.pst (../shared/testdata/pst, CC BY 4.0),
the OST shipped here, and the benchmark's PST grower (benchmarks/pstgrow.py)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
pstgrow = importlib.import_module("pstgrow")

PST = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "pst" / "outlook.pst"
if not PST.exists():
    PST = Path("/work/shared/testdata/pst/outlook.pst")
OST = Path(__file__).resolve().parents[1] / "data" / "pst" / "mtnman.ost.xz"
