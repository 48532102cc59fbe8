"""A fresh virtual environment with a copy of the repository, as a user or Binder
has them, and every tutorial executed there with that environment's own Jupyter
and checked with the check_NN of test_tutorials.py."""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
from test_tutorials import assert_ignored_by_git, scratch_files, tutorial_check
from tutorial_runner import assert_cards_final

from notebook_ext.testing import stop_process_tree, wait_until

ROOT = Path(__file__).resolve().parents[2]
CELL_TIMEOUT = 300  # seconds per cell; run_notebook allows 180 in the test's own kernel
NOTEBOOK_TIMEOUT = 900  # seconds for one `jupyter nbconvert --execute`
INSTALL_TIMEOUT = 1800  # seconds for one pip install
SERVER_START_TIMEOUT = 120  # seconds for a Jupyter server to answer


def _tail(text, lines=60):
    return "\n".join(text.splitlines()[-lines:])


class Venv:
    """`python -m venv` in tmp_path/venv and a copy of the repository in tmp_path/repo
    (no .git, egg-info or caches, as a fresh clone or Binder has it). Commands run with
    the venv's bin first on PATH, no PYTHONPATH, and Jupyter's user folders in tmp_path."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.dir = tmp_path / "venv"
        self.bin = self.dir / "bin"
        self.repo = tmp_path / "repo"
        self.history = tmp_path / "history.sqlite3"
        subprocess.run([sys.executable, "-m", "venv", str(self.dir)], check=True, timeout=300)
        shutil.copytree(ROOT, self.repo, ignore=shutil.ignore_patterns(
            ".git", "*.egg-info", "__pycache__", "screenshots", ".*_cache", ".benchmarks", ".ipynb_checkpoints"))
        home = tmp_path / "jupyter-home"
        self.env = {**os.environ, "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(self.dir),
                    "PIP_DISABLE_PIP_VERSION_CHECK": "1", "NOTEBOOK_EXT_HISTORY": str(self.history),
                    "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
                    "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "IPYTHONDIR": str(home / "ipython")}
        for name in ("PYTHONPATH", "PYTHONHOME", "JUPYTER_PATH", "JUPYTER_CONFIG_PATH"):
            self.env.pop(name, None)

    def run(self, cmd, cwd=None, timeout=600):
        """Run cmd (a list) in the repository copy or cwd; fail with its output when it fails."""
        try:
            done = subprocess.run(cmd, cwd=cwd or self.repo, env=self.env, check=False, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"{cmd} ran over {timeout} s\nstdout:\n{_tail(e.stdout or '')}\n"
                                 f"stderr:\n{_tail(e.stderr or '')}") from None
        assert done.returncode == 0, (f"{cmd} exited {done.returncode}\nstdout:\n{_tail(done.stdout)}\n"
                                      f"stderr:\n{_tail(done.stderr)}")
        return done

    def assert_package_from_the_copy(self):
        """The venv's python imports notebook_ext from the repository copy (an editable install)."""
        probe = self.run([str(self.bin / "python"), "-c",
                          "import notebook_ext, sys; print(notebook_ext.__file__); print(sys.prefix)"])
        module, prefix = probe.stdout.split()
        assert Path(module).resolve().is_relative_to(self.repo.resolve()), module
        assert Path(prefix).resolve() == self.dir.resolve(), prefix

    def execute(self, notebook, run_dir, out_dir):
        """Execute the notebook file with `jupyter nbconvert --execute` from the venv, as a copy
        in run_dir (the kernel's working folder); return the executed notebook, saved in out_dir."""
        shutil.copy(notebook, run_dir / notebook.name)
        self.run([str(self.bin / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
                  f"--ExecutePreprocessor.timeout={CELL_TIMEOUT}", "--ExecutePreprocessor.kernel_name=python3",
                  "--output-dir", str(out_dir), notebook.name], cwd=run_dir, timeout=NOTEBOOK_TIMEOUT)
        return nbformat.read(out_dir / notebook.name, as_version=4)

    def assert_kernel_is_the_venvs(self):
        """The python3 kernel nbconvert starts is the venv's python with the copy's notebook_ext."""
        probe_dir = self.tmp_path / "kernel-probe"
        probe_dir.mkdir()
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
            "import sys, notebook_ext\nprint(sys.prefix)\nprint(notebook_ext.__file__)")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, self.tmp_path / "probe.ipynb")
        executed = self.execute(self.tmp_path / "probe.ipynb", probe_dir, probe_dir)
        prefix, module = executed.cells[0].outputs[0]["text"].split()
        assert Path(prefix).resolve() == self.dir.resolve(), prefix
        assert Path(module).resolve().is_relative_to(self.repo.resolve()), module

    def assert_notebook_opens_a_tutorial(self, tutorial="01-quickstart.ipynb"):
        """Start the venv's Notebook 7 on the repository copy, as `jupyter notebook tutorials/`
        does: its /tree page is Notebook 7's with notebook_ext's prebuilt extension, the
        tutorial's page answers and the contents API serves the tutorial; then stop it."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        token = secrets.token_hex(16)
        env = {k: v for k, v in self.env.items() if k != "JUPYTER_TOKEN"}
        # `jupyter notebook` runs the first jupyter-notebook on PATH: only the venv's may be found
        # (PATH keeps the system's tools, not another Python's Jupyter)
        env["PATH"] = os.pathsep.join([str(self.bin)] + [
            p for p in env["PATH"].split(os.pathsep)[1:] if not (Path(p) / "jupyter").exists()])
        log_path = self.tmp_path / "notebook-server.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [str(self.bin / "jupyter"), "notebook", "--no-browser", f"--port={port}", "--port-retries=0",
                 "--ServerApp.ip=127.0.0.1", "--allow-root", f"--ServerApp.token={token}",
                 f"--ServerApp.root_dir={self.repo}"],
                cwd=self.repo, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)

        def get(path):
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                             headers={"Authorization": f"token {token}"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode(errors="replace")

        def answering():
            assert proc.poll() is None, f"jupyter notebook exited {proc.returncode}:\n{_tail(log_path.read_text())}"
            try:
                return get("/api/status")[0] == 200
            except OSError:
                return False

        try:
            wait_until(answering, timeout=SERVER_START_TIMEOUT, interval=0.3,
                       message=f"jupyter notebook did not answer within {SERVER_START_TIMEOUT} s:\n"
                               f"{_tail(log_path.read_text())}")
            status, page = get("/tree")
            assert status == 200, (status, _tail(page))
            config = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page,
                               re.DOTALL)
            assert config, f"/tree has no page config:\n{_tail(page)}"
            config = json.loads(config.group(1))
            assert config["appName"] == "Jupyter Notebook" and config["appVersion"].split(".")[0] == "7", (
                config["appName"], config["appVersion"])
            assert "notebook-ext" in [e["name"] for e in config.get("federated_extensions", [])], config
            status, page = get(f"/notebooks/tutorials/{tutorial}")
            assert status == 200, (status, _tail(page))
            status, body = get(f"/api/contents/tutorials/{tutorial}?content=1")
            assert status == 200, (status, body[:2000])
            served = json.loads(body)
            assert served["type"] == "notebook", served["type"]
            on_disk = nbformat.read(self.repo / "tutorials" / tutorial, as_version=4)
            assert [c["source"] for c in served["content"]["cells"]] == [c.source for c in on_disk.cells]
        finally:
            stop_process_tree(proc)

    def execute_and_check_every_tutorial(self):
        """Execute tutorials/*.ipynb of the copy, in name order, in one run folder (as a user
        runs them in tutorials/), check each with its check_NN and `assert_cards_final`, and
        check that what they leave in the folder is ignored by git. Every tutorial runs even
        when one fails; the failures are reported together."""
        notebooks = sorted((self.repo / "tutorials").glob("*.ipynb"))
        names = [nb.name for nb in notebooks]
        assert names, "no tutorials"
        unchecked = [n for n in names if tutorial_check(n) is None]
        assert unchecked == [], f"tutorials without a check_NN in test_tutorials.py: {unchecked}"
        self.assert_kernel_is_the_venvs()
        run_dir, out_dir = self.tmp_path / "run", self.tmp_path / "executed"
        run_dir.mkdir()
        out_dir.mkdir()
        checked, failures = set(), {}
        for notebook in notebooks:
            try:
                executed = self.execute(notebook, run_dir, out_dir)
                tutorial_check(notebook.name)(executed)
                assert_cards_final(executed, self.history)
            except AssertionError as e:
                failures[notebook.name] = str(e)
            else:
                checked.add(notebook.name)
        assert failures == {}, "\n\n".join(f"{name}:\n{error}" for name, error in failures.items())
        assert checked == set(names), f"checked {sorted(checked)}, tutorials {names}"
        if (ROOT / ".git").exists():  # the checkout the tests run from; test_tutorials.py skips without one
            assert_ignored_by_git(scratch_files(run_dir, *names))
