"""A coroutine job's attempt: one task whose coroutine settles the job as it
ends. Whether the job's code ends in its first step or suspends, observers
and the history see every state; a suspended one still cancels and times
out; the code runs inside a real task, in a context of its own."""

import asyncio
import contextvars

import pytest

from notebook_ext.core import CANCELLED, DONE, TIMED_OUT, Scheduler, report
from notebook_ext.testing import wait_until

_leak: contextvars.ContextVar[str | None] = contextvars.ContextVar("leak", default=None)


async def at_once(x):
    report(1, 1)  # the job's context is current in its first step
    return x


async def suspends(x):
    await asyncio.sleep(0.01)
    report(1, 1)
    return x


@pytest.fixture
def sched():
    s = Scheduler(slots=2, history=None)
    yield s
    s.shutdown()


@pytest.mark.parametrize("fn", [at_once, suspends], ids=["ends-in-first-step", "suspends"])
def test_every_state_reaches_observers_and_the_history(tmp_path, fn):
    with Scheduler(slots=2, history=tmp_path / "h.sqlite") as s:
        seen: dict[str, list[str]] = {}
        s.subscribe(lambda snap: seen.setdefault(snap.name, []).append(snap.state))
        jobs = [s.submit(fn, i) for i in range(5)]
        s.wait(*jobs, timeout=30)
        assert [j.result() for j in jobs] == list(range(5))
        assert all(j.state == DONE and j.progress.done == 1 for j in jobs)
        wait_until(lambda: all(seen.get(j.name, [""])[-1] == DONE for j in jobs))
        s.store.flush()
        for job in jobs:
            states = [state for state, _ in s.store.transitions(f"{s.session}:{job.id}")]
            assert states == ["pending", "queued", "running", "done"], (job.name, states)


def test_a_suspended_job_cancels_and_times_out(sched):
    async def forever():
        await asyncio.sleep(60)

    running = sched.submit(forever, name="cancelled")
    wait_until(lambda: running.state == "running")
    assert running.cancel("enough")
    assert running.wait(10) and running.state == CANCELLED and running.cancelled_caught
    assert running.error == "enough"

    slow = sched.submit(forever, name="slow", timeout=0.2)
    assert slow.wait(10) and slow.state == TIMED_OUT and slow.timed_out


def test_a_job_failing_in_its_first_step_retries_then_fails(sched):
    calls = []

    async def flaky():
        calls.append(1)
        raise ValueError(f"attempt {len(calls)}")

    job = sched.submit(flaky, retries=2, backoff=0.01)
    assert job.wait(10)
    assert job.state == "failed" and len(calls) == 3
    assert job.attempt_errors == ["ValueError: attempt 1", "ValueError: attempt 2"]
    assert "flaky" in job.traceback and "ValueError: attempt 3" in job.traceback


def test_the_first_step_runs_inside_a_task(sched):
    """asyncio.timeout, TaskGroup and anything else that asks for the
    current task work from a job's very first line (an eager start without a
    task, as an optimisation, would break exactly these)."""

    async def first_line():
        assert asyncio.current_task() is not None
        async with asyncio.timeout(5):
            async with asyncio.TaskGroup() as tg:
                child = tg.create_task(asyncio.sleep(0, "child"))
        return child.result()

    job = sched.submit(first_line)
    assert job.result(timeout=10) == "child"


def test_a_job_context_does_not_leak_into_the_next_job(sched):
    async def sets():
        before = _leak.get()
        _leak.set("from a job")
        return before

    jobs = [sched.submit(sets) for _ in range(20)]
    sched.wait(*jobs, timeout=10)
    assert [j.result() for j in jobs] == [None] * 20


def test_an_attempt_cancelled_before_its_first_step_still_ends(sched):
    """Someone cancels every other task on the loop: the jobs whose tasks
    had not taken a step yet end cancelled, they do not hang as running."""

    async def rogue(i):
        if i == 0:
            me = asyncio.current_task()
            for task in asyncio.all_tasks():
                if task is not me:
                    task.cancel()
        return i

    jobs = sched.submit_many(rogue, range(4))  # one admission: all four tasks made before any steps
    sched.wait(*jobs, timeout=10)
    assert jobs[0].result() == 0
    assert all(j.done() for j in jobs)
    assert [j.state for j in jobs[1:]] == [CANCELLED] * 3
    assert all(j.cancelled_caught for j in jobs[1:])
    assert sched.submit(at_once, 7).result(timeout=10) == 7  # slots came back
