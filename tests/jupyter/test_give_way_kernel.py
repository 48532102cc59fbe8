"""In a real kernel, thread jobs give way while a cell runs: the kernel's
status hook tells the core when the main shell starts and ends a request
(issue 28, responsive thread jobs; the mechanism is tested in
tests/core/test_give_way.py)."""

import json

import pytest

pytestmark = pytest.mark.kernel

JOBS = """\
from notebook_ext.core.lowlevel import RESPONSIVE
from notebook_ext.testing import wait_until
def spin(n=10**12):
    for _ in progress(range(n)):
        pass
jobs = [nx.submit(spin, executor='thread') for _ in range(2)]
done = lambda: sum(j.ctx.done or 0 for j in jobs)
wait_until(lambda: done() > 1000)
"""


def test_thread_jobs_wait_while_a_cell_runs_and_only_for_the_grace(kernel):
    kernel.execute(JOBS)
    kernel.execute("nx.give_way(10)")
    # a cell of its own: the jobs reached progress() since the last one ended, and give way now
    _, msgs = kernel.execute(
        "wait_until(lambda: RESPONSIVE.waiting == 2, timeout=10)\n"
        "parked = done()\n"
        "time.sleep(0.3)  # the cell's own work, the jobs parked meanwhile\n"
        "print(json.dumps([parked, done(), RESPONSIVE.busy]))"
        .replace("json.dumps", "__import__('json').dumps"))
    parked, after, busy = json.loads(kernel.stdout(msgs))
    assert busy and after == parked, (parked, after)
    # a short grace: a cell longer than it does not stall the jobs
    kernel.execute("nx.give_way(0.2)")
    _, msgs = kernel.execute("start = done()\nwait_until(lambda: done() > start + 10_000, timeout=20)\n"
                             "print(RESPONSIVE.busy)")
    assert kernel.stdout(msgs).strip() == "False"
    kernel.execute("for j in jobs: j.cancel()\nnx.wait(*jobs, timeout=10)")
