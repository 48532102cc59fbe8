"""A kernel SIGKILLed with process jobs running leaves no process of ours
behind, and the next session's history shows those jobs `interrupted`."""

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


def test_sigkilled_kernel_leaves_no_orphans_and_interrupted_jobs(kernel, tmp_path):
    for name in ("spin1", "spin2"):
        kernel.execute(f"%%bg -n {name} --executor process\n"
                       "import time\n"
                       "while True:\n"
                       "    checkpoint()\n"
                       "    time.sleep(0.01)\n")
    kernel.execute("import time\nt0 = time.monotonic()\n"
                   "while time.monotonic() - t0 < 60 and len(nx.get_scheduler().executor('process').worker_pids()) < 2:\n"
                   "    time.sleep(0.05)")
    kernel_pid = kernel.km.provisioner.process.pid
    ours = [p.pid for p in psutil.Process(kernel_pid).children(recursive=True)]
    workers = eval(kernel.value("nx.get_scheduler().executor('process').worker_pids()"))
    assert len(workers) == 2 and set(workers) <= set(ours)
    assert kernel.value("[nx.jobs[n].state for n in ('spin1', 'spin2')]") == "['running', 'running']"
    kernel.execute("nx.get_scheduler().store.flush()")
    os.kill(kernel_pid, signal.SIGKILL)
    wait_until(lambda: all(gone(pid) for pid in ours), timeout=10,
               message=f"alive 10 s after the kernel died: {[p for p in ours if not gone(p)]}")
    with Scheduler(slots=1, history=tmp_path / "history.sqlite3") as later:
        rows = {r["name"]: r["state"] for r in later.store.load(sessions="earlier")}
    assert rows["spin1"] == rows["spin2"] == "interrupted"
