"""Jobs still active when the scheduler shuts down (the kernel stops) are
`interrupted` in the history, whatever their executor."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from notebook_ext.core import Scheduler, checkpoint
from notebook_ext.testing import wait_until


def spin(marker):
    open(marker, "a").close()
    while True:
        checkpoint()
        time.sleep(0.01)


async def aspin(marker):
    open(marker, "a").close()
    while True:
        await asyncio.sleep(0.01)


def shut_down_and_read(sched, path):
    """Shut ``sched`` down; its session's rows (name -> row), as the next
    session's scheduler reads them."""
    session = sched.store.session
    sched.shutdown()
    with Scheduler(slots=1, history=path) as again:
        return {r.name: r for r in again.store.load(sessions="earlier") if r.session == session}


@pytest.mark.parametrize("executor", ["loop", "thread", "process"])
def test_running_and_queued_jobs_are_interrupted_in_the_history(executor, tmp_path, flat):
    path = tmp_path / "history.sqlite3"
    sched = Scheduler(slots=1, history=path)
    body = aspin if executor == "loop" else spin
    slots = sched.executor(executor).slots
    finished = sched.submit(len, "abc", name="finished")
    finished.result(timeout=30)
    running = [sched.submit(body, str(tmp_path / f"r{i}"), executor=executor, name=f"run{i}") for i in range(slots)]
    sched.submit(body, str(tmp_path / "q"), executor=executor, name="waiting")
    wait_until(lambda: all(os.path.exists(tmp_path / f"r{i}") for i in range(slots)), timeout=30)
    rows = shut_down_and_read(sched, path)
    assert rows["finished"].state == "done"
    for name in [j.name for j in running] + ["waiting"]:
        assert rows[name].state == "interrupted", (name, rows[name].state, rows[name].error)
        assert rows[name].error == "the kernel stopped while this job was active"


def test_a_job_cancelled_by_the_user_before_shutdown_stays_cancelled(tmp_path, flat):
    path = tmp_path / "history.sqlite3"
    sched = Scheduler(slots=1, history=path)
    job = sched.submit(spin, str(tmp_path / "m"), name="mine")
    wait_until(lambda: os.path.exists(tmp_path / "m"), timeout=30)
    job.cancel("I stopped it")
    job.wait(10)
    rows = shut_down_and_read(sched, path)
    assert rows["mine"].state == "cancelled" and rows["mine"].error == "I stopped it"
