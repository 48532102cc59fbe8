"""The benchmark scripts run (tiny sizes; no timing is asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmarks_quick_run_prints_every_row(tmp_path):
    out = tmp_path / "results.md"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout
    for name in ("responsiveness", "search", "overhead", "progress", "preprocess", "serving", "dashboard", "dask", "checkpoint", "ledger"):
        assert f"| {name} |" in table, name
    assert "FAILED" not in table
    assert out.read_text().count("\n|") >= 15
