"""A kernel SIGKILLed with process jobs and a Dask LocalCluster job running
leaves no process of ours behind, and the next session's history shows
those jobs `interrupted`."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from notebook_ext.core import Scheduler
from notebook_ext.testing import wait_until

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


def gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


SPIN = "import time\nwhile True:\n    checkpoint()\n    time.sleep(0.01)\n"


def test_sigkilled_kernel_leaves_no_orphans_and_interrupted_jobs(kernel, tmp_path):
    kernel.execute("nx.use_dask(n_workers=1)", timeout=120)
    for name in ("spin1", "spin2"):
        kernel.execute(f"%%bg -n {name} --executor process\n{SPIN}")
    kernel.execute(f"%%bg -n on_dask --executor dask\n{SPIN}")
    # Wait for the state: both process workers up, the Dask job on its worker.
    kernel.execute("import time\nt0 = time.monotonic()\nsched = nx.get_scheduler()\n"
                   "while time.monotonic() - t0 < 60 and not (\n"
                   "        len(sched.executor('process').worker_pids()) == 2\n"
                   "        and sched.executor('dask').worker_of(nx.jobs['on_dask'])):\n"
                   "    time.sleep(0.05)", timeout=90)
    kernel_pid = kernel.km.provisioner.process.pid
    ours = [p.pid for p in psutil.Process(kernel_pid).children(recursive=True)]
    workers = eval(kernel.value("nx.get_scheduler().executor('process').worker_pids()"))
    assert len(workers) == 2 and set(workers) <= set(ours)
    assert kernel.value("[nx.jobs[n].state for n in ('spin1', 'spin2', 'on_dask')]") == \
        "['running', 'running', 'running']"
    assert len(ours) >= 5  # 2 process workers, forkserver, resource tracker, the cluster's processes
    kernel.execute("nx.get_scheduler().store.flush()")
    os.kill(kernel_pid, signal.SIGKILL)
    wait_until(lambda: all(gone(pid) for pid in ours), timeout=10,
               message=f"alive 10 s after the kernel died: {[p for p in ours if not gone(p)]}")
    with Scheduler(slots=1, history=tmp_path / "history.sqlite3") as later:
        rows = {r.name: r.state for r in later.store.load(sessions="earlier")}
    assert rows["spin1"] == rows["spin2"] == rows["on_dask"] == "interrupted"
