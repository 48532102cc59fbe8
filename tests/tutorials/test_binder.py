"""The Binder files alone build a working environment: a fresh virtual
environment gets binder/requirements.txt and binder/postBuild, then runs
tutorial 01 with its own Jupyter."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from test_tutorials import check_quickstart

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_binder_environment_runs_the_quickstart(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_dir = venv / "bin"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(venv),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "NOTEBOOK_EXT_HISTORY": str(tmp_path / "h.sqlite3")}
    env.pop("PYTHONPATH", None)
    # A copy of the repository, as Binder has it (no egg-info, no caches).
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(".git", "*.egg-info", "__pycache__", "screenshots"))
    run = lambda cmd, **kw: subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True,  # noqa: E731
                                           text=True, **kw)
    run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"], timeout=900)
    run(["bash", "binder/postBuild"], timeout=900)
    probe = run([str(bin_dir / "python"), "-c", "import notebook_ext, sys; print(notebook_ext.__file__, sys.prefix)"])
    assert str(repo) in probe.stdout and str(venv) in probe.stdout
    out = tmp_path / "executed.ipynb"
    run([str(bin_dir / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
         "--ExecutePreprocessor.timeout=180", "--output", str(out), "tutorials/01-quickstart.ipynb"],
        timeout=600)
    check_quickstart(nbformat.read(out, as_version=4))
