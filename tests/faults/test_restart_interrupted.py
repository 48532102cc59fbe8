"""A graceful kernel restart records the process and Dask jobs alive at
shutdown as `interrupted` (as the README promises), not `failed
(WorkerDied …)`: the kernel terminates its child processes before Python's
atexit runs, so the scheduler must stop first."""

from __future__ import annotations

import os
import queue
import time

import pytest
from jupyter_client.manager import start_new_kernel

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


def run(kc, code, timeout=120):
    msg_id = kc.execute(code)
    deadline = time.monotonic() + timeout
    while True:
        reply = kc.get_shell_msg(timeout=max(1, deadline - time.monotonic()))
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    assert reply["content"]["status"] == "ok", reply["content"]
    result = None
    while True:  # the value, if any, from IOPub
        try:
            msg = kc.get_iopub_msg(timeout=0.2)
        except queue.Empty:
            return result
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_result":
            result = msg["content"]["data"]["text/plain"]


@pytest.mark.parametrize("executor", ["process", "dask"])
def test_a_graceful_restart_records_worker_jobs_as_interrupted(executor, tmp_path):
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=60,
                              env={**os.environ, "NOTEBOOK_EXT_HISTORY": str(tmp_path / "h.sqlite3")})
    try:
        run(kc, "%load_ext notebook_ext\nimport notebook_ext as nx, time\n"
                "def spin():\n    import itertools, time\n    for _ in nx.progress(itertools.count()):\n        time.sleep(0.01)\n")
        if executor == "dask":
            run(kc, "nx.use_dask(n_workers=1, threads_per_worker=1)")
        run(kc, f"job = nx.submit(spin, executor={executor!r}, name='spinner')\n"
                "nx.testing.wait_until(lambda: job.progress.done >= 5, timeout=60)  # its body runs in the worker")
        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=60)
        run(kc, "import notebook_ext as nx")
        rows = run(kc, "[(r.name, r.state, r.error) for r in nx.history() if r.name == 'spinner']")
        assert rows is not None and "'interrupted'" in rows, rows
        assert "WorkerDied" not in rows and "failed" not in rows, rows
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
