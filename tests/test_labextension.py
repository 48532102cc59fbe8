"""The JupyterLab / Notebook 7 extension as users get it: the prebuilt
extension shipped in the package is what its source builds to (rebuilt here
with npm, Node.js and @jupyterlab/builder, in CI too), and the README's
install command, in a fresh virtual environment, leaves both the front-end
extension and the server extension enabled, with no Node.js step."""

import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_the_shipped_extension_is_what_its_source_builds_to():
    assert shutil.which("npm"), "npm (Node.js 20) is needed to rebuild the extension"
    proc = subprocess.run(["bash", "scripts/build-labextension.sh", "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "matches its source" in proc.stdout


def test_the_readme_install_enables_both_extensions_in_a_fresh_venv(tmp_path):
    readme = (ROOT / "README.md").read_text()
    assert "python -m pip install -e '.[lab]'" in readme  # the command this test runs
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "JUPYTER_PATH",
                                                            "JUPYTER_CONFIG_PATH", "JUPYTER_DATA_DIR")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env.setdefault("PIP_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "pip"))  # the packages seen before
    env["HOME"] = str(tmp_path / "home")  # no user-level Jupyter config or extensions
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    proc = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "-e", ".[lab]"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert not shutil.which("node", path=str(bin_dir)), "the install must not need Node.js"
    lab = subprocess.run([str(bin_dir / "jupyter"), "labextension", "list"], env=env, capture_output=True, text=True,
                         timeout=120)
    listed = lab.stdout + lab.stderr
    line = next((ln for ln in listed.splitlines() if "notebook-ext" in ln), "")
    assert "enabled" in line and "OK" in line, listed
    server = subprocess.run([str(bin_dir / "jupyter"), "server", "extension", "list"], env=env, capture_output=True,
                            text=True, timeout=120)
    listed = server.stdout + server.stderr
    assert any("notebook_ext" in ln and "enabled" in ln for ln in listed.splitlines()), listed
    assert re.search(r"notebook_ext \S+ OK", re.sub(r"\x1b\[[0-9;]*m", "", listed)), listed
    assert sys.prefix != str(env_dir)
