"""The core, the executors and the testing tools are type-checked
(STYLE.md: mypy clean on core)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_is_clean_on_core():
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "notebook_ext/core", "notebook_ext/executors", "notebook_ext/testing.py",
         "notebook_ext/cells.py", "--ignore-missing-imports",
         "--follow-imports=silent", "--no-error-summary"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
