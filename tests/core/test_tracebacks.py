"""A failing job's traceback shows the user's frames with the cell's own
lines; notebook_ext's and asyncio's frames are counted, not shown (the full
traceback keeps them)."""

import pytest

from notebook_ext.cells import submit_cell
from notebook_ext.core import Scheduler

CELLS = {
    "thread": "x = 1\nopen('data/missing.csv')\n",
    "process": "x = 1\nopen('data/missing.csv')\n",
    "loop": "import asyncio\nawait asyncio.sleep(0)\nopen('data/missing.csv')\n",
}


@pytest.fixture(scope="module")
def sched():
    s = Scheduler(slots=2, history=None)
    yield s
    s.shutdown()


@pytest.mark.parametrize("executor", sorted(CELLS))
def test_a_failing_cell_shows_its_own_line_and_no_machinery(sched, executor):
    job = submit_cell(CELLS[executor], {}, name=f"boom-{executor}", executor=executor, scheduler=sched)
    assert job.wait(60) and job.state == "failed"
    tb = job.traceback
    lines = tb.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("  File "))
    assert lines[first].startswith(f'  File "<bg cell boom-{executor}>", line {len(CELLS[executor].splitlines())}')
    assert lines[first + 1].strip() == "open('data/missing.csv')"  # the cell's own source line
    assert "notebook_ext/" not in tb and "asyncio/" not in tb
    assert "FileNotFoundError" in tb and len(lines) <= 15
    assert f"%result boom-{executor} --full" in lines[-1] and "hidden" in lines[-1]
    assert "notebook_ext/" in job.full_traceback  # nothing is lost
    # Re-raised in a notebook cell (job.result(), %result), IPython shows the short form.
    assert job.exception()._render_traceback_() == tb.rstrip("\n").split("\n")


def test_an_error_of_the_machinery_alone_is_its_line_and_the_hint(sched):
    # A worker that dies raises WorkerDied in notebook_ext's own code: no user frame to show.
    import os

    job = sched.submit(os._exit, 3, name="dies", executor="process")
    assert job.wait(60) and job.state == "failed"
    lines = job.traceback.splitlines()
    assert lines[0].startswith("notebook_ext.core._states.WorkerDied:") or lines[0].startswith("WorkerDied:")
    assert len(lines) == 2 and "hidden" in lines[1] and "Traceback" not in job.traceback
    assert "notebook_ext/" in job.full_traceback
