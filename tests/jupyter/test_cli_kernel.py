"""`python -m notebook_ext` against a real kernel: it lists the kernel's
running job (its owner: the kernel's pid, id and notebook), `--watch` shows
it, and `cancel` ends it in the kernel, which stays responsive."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from notebook_ext.testing import wait_until

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

# `Kernel` and `stop_kernel` of this folder's conftest.py, under a name of our
# own (every folder's conftest.py is the module "conftest": importing it by
# that name depends on which folders pytest was given).
_spec = importlib.util.spec_from_file_location("_jupyter_conftest_for_cli", Path(__file__).with_name("conftest.py"))
_harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_harness)

FIT = "def fit():\n    for i in nx.progress(range(10**6)):\n        time.sleep(0.01)\n"
NOTEBOOK = "work/analysis.ipynb"


def cli(history, *args, timeout=30):
    return subprocess.run([sys.executable, "-m", "notebook_ext", "--history", str(history), *args],
                          capture_output=True, text=True, timeout=timeout)


def listed(history):
    done = cli(history, "jobs", "--json")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return json.loads(done.stdout)


def kernel_pid(kernel):
    return int(kernel.value("__import__('os').getpid()"))


def kernel_id_of(km):
    """The kernel id as the ledger learns it: from a ``kernel-<id>.json``
    connection file (how Jupyter Server names it), else None."""
    name = os.path.basename(km.connection_file)
    return name[len("kernel-"):-len(".json")] if name.startswith("kernel-") and name.endswith(".json") else None


def running(history, pid, name="fit"):
    """Wait until the ledger shows kernel ``pid``'s job ``name`` running with
    a live snapshot; return its record."""
    def check():
        found = [r for r in listed(history) if r["name"] == name and r["owner"]["pid"] == pid]
        return found[0] if found and found[0]["state"] == "running" and found[0]["progress"]["done"] else None
    return wait_until(check, timeout=20, message=f"the kernel's {name!r} never showed running in `jobs --json`")


def watch_then_cancel(kernel, history, pid):
    """`jobs --watch` shows the kernel's job; `cancel fit` ends it; the
    kernel agrees and answers at once."""
    watched = cli(history, "jobs", "--watch", "--count", "2", "--interval", "0.5")
    assert watched.returncode == 0 and watched.stderr == ""
    lines = watched.stdout.splitlines()
    assert len([line for line in lines if line.split()[:3] == ["ID", "NAME", "STATE"]]) == 2
    assert len([line for line in lines if re.search(r"\bfit\s+running\b", line)]) == 2, watched.stdout

    assert kernel.value("1+1") == "2"  # the job runs in the background

    done = cli(history, "cancel", "fit", timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"pid {pid}" in done.stdout and "is cancelled" in done.stdout.splitlines()[-1]
    wait_until(lambda: kernel.value("nx.jobs['fit'].state") == "'cancelled'", timeout=10,
               message="the kernel's job did not end cancelled")
    assert "python -m notebook_ext cancel" in kernel.value("nx.jobs['fit'].error")
    assert kernel.value("1+1") == "2"

    [after] = [r for r in listed(history) if r["name"] == "fit"]
    assert after["state"] == "cancelled" and not after["live"]
    again = cli(history, "cancel", "fit")
    assert again.returncode == 1 and "cancelled" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_cli_lists_and_cancels_a_kernel_job(kernel, tmp_path):
    history = tmp_path / "history.sqlite3"
    kernel.execute(FIT + "job = nx.submit(fit, name='fit')")
    pid = kernel_pid(kernel)
    record = running(history, pid)
    assert record["live"] is True and record["executor"] == "thread"
    assert record["progress"]["total"] == 10**6
    # jupyter_client's start_new_kernel writes a tmpXXXX.json connection file,
    # not kernel-<id>.json: no id to learn then (never a made-up one)
    assert record["owner"]["kernel"] == kernel_id_of(kernel.km)
    watch_then_cancel(kernel, history, pid)


@pytest.fixture
def server_kernel(tmp_path):
    """A kernel started the way Jupyter Server starts one: by a
    MultiKernelManager (connection file ``kernel-<id>.json``), with
    ``$JPY_SESSION_NAME`` set to its notebook's path."""
    from jupyter_client.multikernelmanager import MultiKernelManager

    mkm = MultiKernelManager(connection_dir=str(tmp_path))
    env = {**os.environ, "NOTEBOOK_EXT_HISTORY": str(tmp_path / "history.sqlite3"), "JPY_SESSION_NAME": NOTEBOOK}
    kernel_id = mkm.start_kernel(kernel_name="python3", env=env)
    km = mkm.get_kernel(kernel_id)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        k = _harness.Kernel(km, kc)
        k.execute("%load_ext notebook_ext\nimport notebook_ext as nx, time")
        yield k
    finally:
        kc.stop_channels()
        mkm.shutdown_kernel(kernel_id, now=True)


def test_cli_names_the_kernel_and_notebook_of_a_bg_cell(server_kernel, tmp_path):
    kernel = server_kernel
    history = tmp_path / "history.sqlite3"
    assert os.path.basename(kernel.km.connection_file) == f"kernel-{kernel.km.kernel_id}.json"
    kernel.execute("%%bg --name fit\nfor i in nx.progress(range(10**6)):\n    time.sleep(0.01)")
    pid = kernel_pid(kernel)
    record = running(history, pid)
    assert record["owner"]["kernel"] == kernel.km.kernel_id
    assert record["owner"]["notebook"] == NOTEBOOK
    table = cli(history, "jobs")
    [row] = [line for line in table.stdout.splitlines() if re.search(r"\bfit\s+running\b", line)]
    assert NOTEBOOK in row  # where it runs: the notebook
    done = cli(history, "cancel", "fit", "--wait", "0")
    assert done.returncode == 0 and NOTEBOOK in done.stdout and kernel.km.kernel_id[:8] in done.stdout
    wait_until(lambda: kernel.value("nx.jobs['fit'].state") == "'cancelled'", timeout=10,
               message="the %%bg job did not end cancelled")
    assert kernel.value("1+1") == "2"


def test_watch_and_cancel_a_bg_cell_job(server_kernel, tmp_path):
    kernel = server_kernel
    history = tmp_path / "history.sqlite3"
    kernel.execute("%%bg --name fit\nfor i in nx.progress(range(10**6)):\n    time.sleep(0.01)")
    pid = kernel_pid(kernel)
    running(history, pid)
    watch_then_cancel(kernel, history, pid)
