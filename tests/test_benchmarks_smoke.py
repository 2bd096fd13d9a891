"""Smoke test of the benchmark suite: ``run_all.py --quick`` runs every workload and writes JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN_ALL = ROOT / "benchmarks" / "run_all.py"
WORKLOADS = ("W1", "W2", "W2b", "W3", "W4", "W5a", "W5b", "W7", "W8", "W9", "memory")


@pytest.mark.skipif(not RUN_ALL.exists(), reason="benchmarks/run_all.py not present")
def test_run_all_quick(tmp_path: Path) -> None:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(RUN_ALL), "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # ~60 s alone; a loaded machine (CI shares it) can take several times that
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "results.json").read_text())
    for key in WORKLOADS:
        assert key in data["workloads"], key
        assert data["workloads"][key]["rows"], f"{key} has no rows"
    assert (tmp_path / "results.md").read_text().startswith("# aiopipe benchmarks")
    assert "targets met" in proc.stdout
