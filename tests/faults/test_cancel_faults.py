"""Cancellation cannot be lost at any instant of a job's life, on any
executor: right after submit, pending on a dependency, queued behind full
slots, running, waiting out a retry's back-off, finishing. Every cancelled
job ends final, gives its slot back, and the next job of that executor runs;
storms of 500 cancels right after submit never stall the scheduler."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from notebook_ext.core import Scheduler
from notebook_ext.testing import wait_until

from .conftest import assert_flat, fail_once, resources, touch_then_wait

EXECUTORS = ["loop", "thread", "process"]


# -- job bodies (module level: the process executor ships them) ----------------

async def touch_then_wait_async(marker: str, release: str, limit: float = 60.0) -> str:
    open(marker, "a").close()
    deadline = time.monotonic() + limit
    while not os.path.exists(release) and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    return "released"


async def fail_once_async(marker: str) -> None:
    fail_once(marker)


def quick(x: int) -> int:
    return x


async def quick_async(x: int) -> int:
    return x


def body(executor: str, sync, coro):
    return coro if executor == "loop" else sync


def next_job_runs(sched: Scheduler, executor: str) -> None:
    """The executor's slot came back: a fresh job runs to done."""
    job = sched.submit(body(executor, quick, quick_async), 7, executor=executor)
    assert job.result(timeout=60) == 7


# -- one case per state ---------------------------------------------------------

@pytest.mark.parametrize("executor", EXECUTORS)
def test_cancel_right_after_submit(executor, paths, flat):
    with Scheduler(slots=2, history=None) as sched:
        fn = body(executor, touch_then_wait, touch_then_wait_async)
        jobs = [sched.submit(fn, paths.marker(f"j{i}"), paths.release, executor=executor) for i in range(10)]
        for job in jobs:
            assert job.cancel("at once")
        for job in jobs:
            assert job.wait(30), job
        assert [j.state for j in jobs] == ["cancelled"] * 10
        assert all(j.cancelled_caught and j.error == "at once" for j in jobs)
        assert sched._dispatcher.running == {} and sched._dispatcher.compute_running == 0
        next_job_runs(sched, executor)
        # None of them ran to its end (some may have begun: a cancel is not
        # guaranteed to beat the start, it is guaranteed to stop the job).
        paths.open_gate()
        assert all(j.state == "cancelled" for j in jobs)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_cancel_pending_on_a_dependency(executor, paths, flat):
    with Scheduler(slots=2, history=None) as sched:
        fn = body(executor, touch_then_wait, touch_then_wait_async)
        first = sched.submit(fn, paths.marker("first"), paths.release, executor=executor)
        second = sched.submit(fn, paths.marker("second"), paths.release, executor=executor, after=[first])
        wait_until(lambda: paths.ran("first"), timeout=30)
        assert second.state == "pending"
        assert second.cancel("not needed")
        assert second.state == "cancelled"  # confirmed before cancel() returned
        paths.open_gate()
        assert first.result(timeout=30) == "released"
        assert not paths.ran("second")
        next_job_runs(sched, executor)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_cancel_queued_behind_full_slots(executor, paths, flat):
    with Scheduler(slots=1, history=None) as sched:
        fn = body(executor, touch_then_wait, touch_then_wait_async)
        slots = sched.executor(executor).slots or 1
        holders = [sched.submit(fn, paths.marker(f"h{i}"), paths.release, executor=executor)
                   for i in range(slots)]
        queued = sched.submit(fn, paths.marker("queued"), paths.release, executor=executor)
        wait_until(lambda: all(paths.ran(f"h{i}") for i in range(slots)), timeout=30)
        # its admission is a separate call to the loop: it may still be on the way (seen under load)
        wait_until(lambda: queued.state != "pending", timeout=10)
        assert queued.state == "queued"
        assert queued.cancel("changed my mind")
        assert queued.state == "cancelled"
        paths.open_gate()
        assert [h.result(timeout=30) for h in holders] == ["released"] * slots
        assert not paths.ran("queued")
        next_job_runs(sched, executor)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_cancel_running(executor, paths, flat):
    with Scheduler(slots=2, history=None) as sched:
        fn = body(executor, touch_then_wait, touch_then_wait_async)
        job = sched.submit(fn, paths.marker("run"), paths.release, executor=executor)
        wait_until(lambda: paths.ran("run"), timeout=30)
        assert job.cancel("stop it")
        assert job.wait(30)
        assert job.state == "cancelled" and job.cancelled_caught
        assert sched._dispatcher.running == {}
        next_job_runs(sched, executor)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_cancel_during_retry_backoff(executor, paths, flat):
    with Scheduler(slots=2, history=None) as sched:
        fn = body(executor, fail_once, fail_once_async)
        marker = paths.marker("tries")
        job = sched.submit(fn, marker, executor=executor, retries=3, backoff=600)
        wait_until(lambda: job.attempt_errors, timeout=30)
        assert job.state == "queued"  # waiting out ten minutes of back-off
        assert job.cancel("no more tries")
        assert job.state == "cancelled"
        assert open(marker).read() == "x"  # it never ran again
        assert sched.loop_thread.call_and_wait(lambda: dict(sched._dispatcher._timers)) == {}
        next_job_runs(sched, executor)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_cancel_while_finishing_lets_the_result_stand(executor, flat):
    entered, leave = threading.Event(), threading.Event()

    def finalize(job, value):  # runs on the scheduler's loop after the body returned
        entered.set()
        leave.wait(30)
        return value * 2

    with Scheduler(slots=2, history=None) as sched:
        job = sched.submit(body(executor, quick, quick_async), 21, executor=executor, finalize=finalize)
        assert entered.wait(30)
        assert job.cancel("too late")  # the loop is busy finishing: the request waits
        leave.set()
        assert job.result(timeout=30) == 42
        assert job.state == "done" and not job.cancelled_caught
        assert "finished first" in job.cancel_note
        next_job_runs(sched, executor)


# -- storms ---------------------------------------------------------------------

@pytest.mark.parametrize("executor", EXECUTORS)
def test_storm_of_500_cancels_right_after_submit(executor, paths, flat):
    with Scheduler(slots=2, history=None) as sched:
        fn = body(executor, touch_then_wait, touch_then_wait_async)
        jobs = []
        for i in range(500):
            job = sched.submit(fn, paths.marker(f"s{i % 5}"), paths.release, executor=executor)
            job.cancel("storm")
            jobs.append(job)
        for job in jobs:
            assert job.wait(60), job
        states = [j.state for j in jobs]
        assert states.count("cancelled") == 500, {s: states.count(s) for s in set(states)}
        assert sched._dispatcher.running == {} and sched._dispatcher.compute_running == 0
        next_job_runs(sched, executor)


def test_threads_fds_children_flat_after_many_schedulers(paths):
    """Twenty schedulers, each with running jobs of every executor cancelled
    at shutdown, leave nothing behind."""
    before = resources()
    for round_ in range(20):
        sched = Scheduler(slots=2, history=None)
        jobs = [sched.submit(body(ex, touch_then_wait, touch_then_wait_async),
                             paths.marker(f"{ex}{round_}"), paths.release, executor=ex) for ex in EXECUTORS]
        wait_until(lambda: all(paths.ran(f"{ex}{round_}") for ex in EXECUTORS), timeout=30)
        sched.shutdown()
        assert all(j.state == "cancelled" for j in jobs), jobs
    assert_flat(before, slack=2)
