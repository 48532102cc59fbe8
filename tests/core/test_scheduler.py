"""Scheduling: priorities, slots, timeouts, retries, dependencies, cancel."""

import asyncio
import threading
import time

import pytest

from notebook_ext.core import (
    CANCELLED, DONE, FAILED, TIMED_OUT, JobCancelled, JobTimedOut, Scheduler, checkpoint,
    progress, report,
)


def test_plain_function_runs_in_a_thread_and_returns(sched):
    job = sched.submit(lambda a, b=0: (a + b, threading.current_thread().name), 2, b=3)
    value, thread = job.result(timeout=5)
    assert value == 5 and thread != threading.main_thread().name
    assert job.state == DONE and job.attempts == 1 and job.executor == "thread"


def test_coroutine_runs_on_the_scheduler_loop(sched):
    async def double(x):
        await asyncio.sleep(0.01)
        return 2 * x, threading.current_thread().name

    job = sched.submit(double, 21)
    assert job.result(timeout=5) == (42, "notebook_ext-scheduler")
    assert job.executor == "loop"


def test_default_names_are_numbered_and_unique(sched):
    a, b = sched.submit(int), sched.submit(int)
    assert (a.name, b.name) == ("job-1", "job-2")
    named = sched.submit(time.sleep, 0.3, name="x")
    with pytest.raises(ValueError, match="still"):
        sched.submit(int, name="x")
    named.result(5)
    again = sched.submit(int, name="x")  # a finished name may be reused
    assert sched.jobs["x"] is again and named in sched.all_jobs()


def test_priority_order_under_one_slot():
    s = Scheduler(slots=1, history=None)
    try:
        started = []
        gate = threading.Event()
        s.submit(gate.wait, 5, name="blocker")
        time.sleep(0.05)
        for name, prio in [("low", 0), ("high", 10), ("mid", 5), ("high2", 10), ("low2", 0)]:
            s.submit(started.append, name, name=name, priority=prio)
        gate.set()
        s.wait(timeout=10)
        assert started == ["high", "high2", "mid", "low", "low2"]
    finally:
        s.shutdown()


def test_slot_limit_never_exceeded_under_200_jobs():
    s = Scheduler(slots=3, history=None)
    lock = threading.Lock()
    running = [0]
    peak = [0]

    def work():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.002)
        with lock:
            running[0] -= 1

    try:
        jobs = [s.submit(work) for _ in range(200)]
        s.wait(*jobs, timeout=60)
        assert all(j.state == DONE for j in jobs)
        assert peak[0] == 3  # reached, never exceeded
        assert s.max_running_seen == 3
    finally:
        s.shutdown()


def test_timeout_ends_a_long_coroutine_as_timed_out(sched):
    job = sched.submit(asyncio.sleep, 30, timeout=0.5)
    t0 = time.monotonic()
    assert job.wait(2.0)
    assert job.state == TIMED_OUT and time.monotonic() - t0 < 2.0
    with pytest.raises(JobTimedOut, match="timed out after 0.5 s"):
        job.result()


def test_timeout_of_a_thread_job_at_its_checkpoint(sched):
    def loop():
        for _ in progress(range(30_000)):
            time.sleep(0.001)

    job = sched.submit(loop, timeout=0.5)
    assert job.wait(2.0) and job.state == TIMED_OUT
    assert "abandoned" not in job.info  # it stopped itself at a checkpoint


def test_timeout_abandons_a_thread_that_never_checks(sched):
    job = sched.submit(time.sleep, 30, timeout=0.5)
    assert job.wait(2.5) and job.state == TIMED_OUT
    assert job.info["abandoned"] is True


def test_retries_with_backoff(sched):
    calls = []

    def flaky():
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionError(f"try {len(calls)}")
        return "ok"

    job = sched.submit(flaky, retries=3, backoff=0.1)
    assert job.result(timeout=10) == "ok"
    assert job.attempts == 3 and len(calls) == 3
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2  # 0.1 * 2**(attempt-1)
    assert len(job.info["attempt_errors"]) == 2


def test_retries_exhausted_fail_with_last_error(sched):
    job = sched.submit(lambda: 1 / 0, retries=2, backoff=0.01)
    assert isinstance(job.exception(timeout=5), ZeroDivisionError)
    assert job.state == FAILED and job.attempts == 3
    assert "ZeroDivisionError" in job.traceback


def test_cancel_is_never_retried(sched):
    job = sched.submit(asyncio.sleep, 10, retries=5)
    time.sleep(0.1)
    job.cancel("enough")
    assert job.wait(2) and job.state == CANCELLED and job.attempts == 1


def test_cancel_a_queued_job_at_once():
    s = Scheduler(slots=1, history=None)
    try:
        gate = threading.Event()
        s.submit(gate.wait, 5)
        queued = s.submit(int)
        time.sleep(0.05)
        assert queued.state == "queued"
        assert queued.cancel("not needed")
        assert queued.state == CANCELLED  # synchronous for queued jobs
        with pytest.raises(JobCancelled, match="not needed"):
            queued.result()
        gate.set()
    finally:
        s.shutdown()


def test_cancel_a_running_coroutine(sched):
    job = sched.submit(asyncio.sleep, 30)
    time.sleep(0.1)
    job.cancel()
    assert job.wait(1) and job.state == CANCELLED
    assert job.error == "cancelled by the user"


def test_cancel_a_running_thread_at_its_next_report(sched):
    seen = []

    def work():
        for i in range(10_000):
            time.sleep(0.005)
            report(i, 10_000)
            seen.append(i)

    job = sched.submit(work)
    time.sleep(0.2)
    assert job.state == "running"
    job.cancel("stop now")
    assert job.cancel_requested
    assert job.wait(2) and job.state == CANCELLED
    assert len(seen) < 10_000


def test_checkpoint_raises_only_when_cancelled(sched):
    flag = threading.Event()

    def work():
        checkpoint()
        flag.set()
        while True:
            time.sleep(0.01)
            checkpoint()

    job = sched.submit(work)
    assert flag.wait(2)
    job.cancel()
    assert job.wait(2) and job.state == CANCELLED


def test_failed_dependency_cancels_dependent(sched):
    def bad():
        raise RuntimeError("no data")

    prep = sched.submit(bad, name="prep")
    train = sched.submit(int, name="train", after=["prep"])
    assert train.wait(5)
    assert prep.state == FAILED and train.state == CANCELLED
    assert train.error == "dependency 'prep' failed"


def test_dependent_waits_then_runs(sched):
    order = []
    a = sched.submit(lambda: (time.sleep(0.2), order.append("a")), name="a")
    b = sched.submit(order.append, "b", after=a)
    assert b.state in ("pending",)
    b.result(5)
    assert order == ["a", "b"]


def test_bad_arguments_are_refused_with_clear_messages(sched):
    with pytest.raises(TypeError, match="`priority` must be an integer, got 'high'"):
        sched.submit(int, priority="high")
    with pytest.raises(ValueError, match="`timeout`"):
        sched.submit(int, timeout=-1)
    with pytest.raises(ValueError, match="`retries`"):
        sched.submit(int, retries=-1)
    with pytest.raises(ValueError, match="`executor` must be one of"):
        sched.submit(int, executor="gpu")
    with pytest.raises(ValueError, match="no job named 'ghost'"):
        sched.submit(int, after=["ghost"])
    with pytest.raises(TypeError, match="callable"):
        sched.submit(42)
    assert sched.jobs == {}


def test_a_failing_job_leaves_others_intact(sched):
    bad = sched.submit(lambda: [][1])
    good = sched.submit(lambda: "fine")
    assert good.result(5) == "fine"
    assert isinstance(bad.exception(5), IndexError)


def test_await_a_job_from_another_loop(sched):
    job = sched.submit(lambda: 7)

    async def main():
        return await job

    assert asyncio.run(main()) == 7


def test_wait_returns_done_and_pending(sched):
    quick = sched.submit(int)
    slow = sched.submit(asyncio.sleep, 5)
    done, pending = sched.wait(quick, slow, timeout=0.3)
    assert done == [quick] and pending == [slow]


def test_ten_thousand_noop_jobs_complete():
    s = Scheduler(history=None)

    async def noop():
        return None

    try:
        jobs = [s.submit(noop) for _ in range(10_000)]
        done, pending = s.wait(*jobs, timeout=120)
        assert not pending and all(j.state == DONE for j in done)
    finally:
        s.shutdown()


def test_shutdown_cancels_everything_and_leaks_no_threads():
    before = {t.ident for t in threading.enumerate()}
    s = Scheduler(slots=2, history=None)
    running = s.submit(asyncio.sleep, 30)
    queued = [s.submit(time.sleep, 0.01, after=running) for _ in range(3)]
    looping = s.submit(lambda: [time.sleep(0.01) or checkpoint() for _ in range(10_000)])
    time.sleep(0.2)
    s.shutdown()
    assert running.state == CANCELLED and looping.state == CANCELLED
    assert all(j.state == CANCELLED for j in queued)
    time.sleep(0.2)
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert leftover == []


def test_retry_reruns_a_finished_job_under_its_name(sched):
    calls = []

    def flaky(x):
        calls.append(x)
        if len(calls) == 1:
            raise ValueError("first time")
        return x * 2

    first = sched.submit(flaky, 4, name="flaky", priority=3)
    assert isinstance(first.exception(5), ValueError)
    second = sched.retry("flaky")
    assert second is not first and second.name == "flaky" and second.priority == 3
    assert second.result(5) == 8 and sched.jobs["flaky"] is second
    running = sched.submit(asyncio.sleep, 5, name="busy")
    with pytest.raises(ValueError, match="still"):
        sched.retry(running)


def test_current_job_lets_a_coroutine_fan_out_children(sched):
    from notebook_ext.core import current_job

    async def parent():
        me = current_job()
        kids = [sched.submit(pow, 2, i, parent=me) for i in range(4)]
        return [await k for k in kids], me

    job = sched.submit(parent, name="group")
    values, me = job.result(5)
    assert values == [1, 2, 4, 8] and me is job
    assert [k.parent for k in job.children] == [job] * 4
    assert job.snapshot().children == tuple(k.name for k in job.children)
