"""Scheduling: priorities, slots, timeouts, retries, dependencies, cancel.

Timeouts, back-off and grace run on a `FakeClock`: time moves only when the
test says so, so these tests are exact and take milliseconds.
"""

import asyncio
import threading
import time

import pytest

from notebook_ext.core import (
    CANCELLED,
    DONE,
    FAILED,
    PENDING,
    QUEUED,
    RUNNING,
    TIMED_OUT,
    JobCancelled,
    JobTimedOut,
    Scheduler,
    checkpoint,
    progress,
    report,
)
from notebook_ext.testing import FakeClock, wait_until


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def fake(clock):
    s = Scheduler(slots=2, history=None, clock=clock, thread_grace=1.0)
    yield s
    s.shutdown()


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
    gate = threading.Event()
    named = sched.submit(gate.wait, 5, name="x")
    with pytest.raises(ValueError, match="still"):
        sched.submit(int, name="x")
    gate.set()
    named.result(5)
    again = sched.submit(int, name="x")  # a finished name may be reused
    assert sched.jobs["x"] is again and named in sched.all_jobs()


def test_priority_order_under_one_slot():
    s = Scheduler(slots=1, history=None)
    try:
        started = []
        gate = threading.Event()
        blocker = s.submit(gate.wait, 5, name="blocker")
        wait_until(lambda: blocker.state == RUNNING)
        for name, prio in [("low", 0), ("high", 10), ("mid", 5), ("high2", 10), ("low2", 0)]:
            s.submit(started.append, name, name=name, priority=prio)
        wait_until(lambda: all(s.jobs[n].state == QUEUED for n in ("low", "high", "mid", "high2", "low2")))
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
        time.sleep(0.002)  # the work itself
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


# -- time: on the fake clock ---------------------------------------------------


def test_timeout_ends_a_long_coroutine_as_timed_out(fake, clock):
    job = fake.submit(asyncio.sleep, 3600, timeout=0.5)
    wait_until(lambda: job.state == RUNNING)
    clock.advance(0.499)
    assert job.state == RUNNING
    clock.advance(0.001)
    wait_until(job.done)
    assert job.state == TIMED_OUT and job.timed_out and job.cancelled_caught
    with pytest.raises(JobTimedOut, match="timed out after 0.5 s"):
        job.result()


def test_timeout_of_a_thread_job_at_its_checkpoint(fake, clock):
    released = threading.Event()

    def loop():
        for _ in progress(range(10**9)):
            released.wait(0.001)

    job = fake.submit(loop, timeout=0.5)
    wait_until(lambda: job.state == RUNNING)
    clock.advance(0.5)
    wait_until(job.done)
    assert job.state == TIMED_OUT and not job.abandoned  # it stopped itself at a checkpoint


def test_timeout_abandons_a_thread_that_never_checks_after_its_grace(fake, clock):
    gate = threading.Event()
    job = fake.submit(gate.wait, 60, timeout=0.5)
    wait_until(lambda: job.state == RUNNING)
    clock.advance(0.5)
    assert clock.pending()  # the grace timer
    clock.advance(0.999)
    assert job.state == RUNNING  # still within its grace
    clock.advance(0.001)
    wait_until(job.done)
    assert job.state == TIMED_OUT and job.abandoned
    gate.set()


def test_retries_wait_their_backoff_on_the_clock(fake, clock):
    calls = []

    def flaky():
        calls.append(clock.monotonic())
        if len(calls) < 3:
            raise ConnectionError(f"try {len(calls)}")
        return "ok"

    job = fake.submit(flaky, retries=3, backoff=0.1)
    wait_until(lambda: len(calls) == 1 and job.state == QUEUED and clock.pending())
    clock.advance(0.099)
    assert len(calls) == 1  # the back-off has not passed
    clock.advance(0.001)
    wait_until(lambda: len(calls) == 2 and job.state == QUEUED and clock.pending())
    assert clock.pending() == [pytest.approx(0.1 + 0.2)]  # 0.1 * 2**(attempt-1)
    clock.advance(0.2)
    assert job.result(timeout=5) == "ok"
    assert calls == [0.0, pytest.approx(0.1), pytest.approx(0.3)]
    assert job.attempts == 3 and job.attempt_errors == ["ConnectionError: try 1", "ConnectionError: try 2"]


def test_retries_exhausted_fail_with_last_error(fake, clock):
    job = fake.submit(lambda: 1 / 0, retries=2, backoff=0.01)
    for attempt in (1, 2):
        wait_until(lambda: job.attempts == attempt and job.state == QUEUED and clock.pending())
        clock.advance(0.01 * 2 ** (attempt - 1))
    assert isinstance(job.exception(timeout=5), ZeroDivisionError)
    assert job.state == FAILED and job.attempts == 3
    assert "ZeroDivisionError" in job.traceback


def test_cancel_during_backoff_ends_the_job_and_its_timer(fake, clock):
    job = fake.submit(lambda: 1 / 0, retries=5, backoff=10)
    wait_until(lambda: job.state == QUEUED and job.attempts == 1 and clock.pending())
    assert job.cancel("enough")
    assert job.state == CANCELLED and clock.pending() == []
    clock.advance(100)
    assert job.state == CANCELLED and job.attempts == 1


# -- cancel ----------------------------------------------------------------------


def test_cancel_is_never_retried(sched):
    job = sched.submit(asyncio.sleep, 10, retries=5)
    wait_until(lambda: job.state == RUNNING)
    job.cancel("enough")
    assert job.wait(5) and job.state == CANCELLED and job.attempts == 1


def test_cancel_a_queued_job_at_once():
    s = Scheduler(slots=1, history=None)
    try:
        gate = threading.Event()
        s.submit(gate.wait, 5)
        queued = s.submit(int)
        wait_until(lambda: queued.state == QUEUED)
        assert queued.cancel("not needed")
        assert queued.state == CANCELLED  # confirmed before cancel() returns
        with pytest.raises(JobCancelled, match="not needed"):
            queued.result()
        gate.set()
    finally:
        s.shutdown()


def test_cancel_a_running_coroutine(sched):
    started = threading.Event()

    async def forever():
        started.set()
        await asyncio.sleep(3600)

    job = sched.submit(forever)
    assert started.wait(5) and job.state == RUNNING  # really running, not queued
    job.cancel()
    assert job.wait(5) and job.state == CANCELLED and job.cancelled_caught
    assert job.error == "cancelled by the user"


def _forever_checking():
    while True:
        checkpoint()
        time.sleep(0.001)


def _forever_spinning():
    while True:
        pass


async def _forever_awaiting():
    await asyncio.sleep(3600)


@pytest.mark.parametrize("executor, fn", [("loop", _forever_awaiting), ("thread", _forever_checking),
                                          ("process", _forever_spinning)])
def test_cancel_right_after_submit_is_never_lost(sched, executor, fn):
    # Whatever instant the cancel lands at (before the loop saw the job,
    # queued, starting, running), the job ends cancelled and frees its slot.
    jobs = []
    for _ in range(10):
        job = sched.submit(fn, executor=executor)
        assert job.cancel("changed my mind")
        jobs.append(job)
    done, pending = sched.wait(*jobs, timeout=60)
    assert not pending and [j.state for j in jobs] == [CANCELLED] * 10
    assert sched.submit(int, executor="thread").result(10) == 0


def test_a_storm_of_cancels_right_after_submit_frees_every_slot():
    s = Scheduler(slots=2, history=None)
    try:
        async def forever():
            await asyncio.sleep(3600)

        jobs = [s.submit(forever) for _ in range(500)]
        for job in jobs:
            job.cancel("storm")
        done, pending = s.wait(*jobs, timeout=30)
        assert not pending and all(j.state == CANCELLED for j in jobs)
        after = s.submit(asyncio.sleep, 0, result="still scheduling")
        assert after.result(timeout=10) == "still scheduling"
    finally:
        s.shutdown()


def test_cancel_a_running_thread_at_its_next_report(sched):
    seen = []
    started = threading.Event()

    def work():
        for i in range(10_000):
            started.set()
            time.sleep(0.005)  # the work of one step
            report(i, 10_000)
            seen.append(i)

    job = sched.submit(work)
    assert started.wait(5) and job.state == RUNNING
    job.cancel("stop now")
    assert job.cancel_called
    assert job.wait(5) and job.state == CANCELLED
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
    assert flag.wait(5)
    job.cancel()
    assert job.wait(5) and job.state == CANCELLED


def test_an_error_raised_after_an_ignored_cancel_stands(sched):
    asked = threading.Event()
    release = threading.Event()

    def stubborn():
        asked.set()
        release.wait(10)  # never reaches a checkpoint
        raise OSError("disk full")

    job = sched.submit(stubborn)
    assert asked.wait(5)
    job.cancel("please stop")
    assert job.cancel_called and not job.done()
    release.set()
    assert job.wait(5)
    assert job.state == FAILED and not job.cancelled_caught
    assert isinstance(job.exception(), OSError) and job.error == "OSError: disk full"
    assert "please stop" in job.cancel_note and "OSError" in job.cancel_note


def test_a_job_honouring_the_cancel_ends_cancelled(sched):
    asked = threading.Event()

    def polite():
        asked.set()
        while True:
            checkpoint()
            time.sleep(0.005)

    job = sched.submit(polite)
    assert asked.wait(5)
    job.cancel("please stop")
    assert job.wait(5) and job.state == CANCELLED and job.cancelled_caught
    assert job.cancel_note is None


def test_a_result_that_beats_the_cancel_stands(sched):
    asked = threading.Event()
    release = threading.Event()

    def quick():
        asked.set()
        release.wait(10)
        return 42

    job = sched.submit(quick)
    assert asked.wait(5)
    job.cancel("too late")
    release.set()
    assert job.result(5) == 42 and job.state == DONE and not job.cancelled_caught
    assert "too late" in job.cancel_note


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt(), StopIteration(7), GeneratorExit()])
@pytest.mark.parametrize("executor", ["loop", "thread"])
def test_any_base_exception_fails_only_its_job(sched, exc, executor):
    def boom():
        raise exc

    async def aboom():
        raise exc

    job = sched.submit(aboom if executor == "loop" else boom, executor=executor)
    assert job.wait(5) and job.state == FAILED, job
    assert sched.submit(asyncio.sleep, 0, result="alive").result(5) == "alive"
    assert sched.submit(int).result(5) == 0


# -- dependencies, errors, waiting -------------------------------------------------


def test_failed_dependency_cancels_dependent(sched):
    def bad():
        raise RuntimeError("no data")

    prep = sched.submit(bad, name="prep")
    train = sched.submit(int, name="train", after=["prep"])
    assert train.wait(5)
    assert prep.state == FAILED and train.state == CANCELLED
    assert train.error == "dependency 'prep' failed"


def test_dependent_waits_pending_then_runs(sched):
    order = []
    gate = threading.Event()
    a = sched.submit(lambda: (gate.wait(5), order.append("a")), name="a")
    b = sched.submit(order.append, "b", after=a)
    wait_until(lambda: a.state == RUNNING)
    assert b.state == PENDING and order == []  # held back while a runs
    gate.set()
    b.result(5)
    assert order == ["a", "b"] and b.started >= a.ended


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
    quick.result(5)
    done, pending = sched.wait(quick, slow, timeout=0.05)
    assert done == [quick] and pending == [slow]


def test_ten_thousand_noop_jobs_complete():
    s = Scheduler(history=None)

    async def noop():
        return None

    try:
        jobs = [s.submit(noop) for _ in range(5_000)] + s.submit_many(noop, [()] * 5_000)
        done, pending = s.wait(*jobs, timeout=120)
        assert not pending and all(j.state == DONE for j in done) and len(done) == 10_000
    finally:
        s.shutdown()


def test_submit_many_keeps_options_and_order():
    s = Scheduler(slots=1, history=None)
    try:
        seen = []
        gate = threading.Event()
        s.submit(gate.wait, 5)
        jobs = s.submit_many(seen.append, [1, 2, (3,)], priority=4, kind="item")
        assert [j.name for j in jobs] == ["item-1", "item-2", "item-3"] and all(j.priority == 4 for j in jobs)
        gate.set()
        s.wait(*jobs, timeout=10)
        assert seen == [1, 2, 3]
        with pytest.raises(ValueError, match="`name`"):
            s.submit_many(int, [()], name="x")
    finally:
        s.shutdown()


def test_shutdown_cancels_everything_and_leaks_no_threads():
    before = {t.ident for t in threading.enumerate()}
    s = Scheduler(slots=2, history=None)
    running = s.submit(asyncio.sleep, 30)
    queued = [s.submit(time.sleep, 0.01, after=running) for _ in range(3)]
    looping = s.submit(lambda: [time.sleep(0.01) or checkpoint() for _ in range(10_000)])
    wait_until(lambda: running.state == RUNNING and looping.state == RUNNING)
    s.shutdown()
    assert running.state == CANCELLED and looping.state == CANCELLED
    assert all(j.state == CANCELLED for j in queued)
    wait_until(lambda: not [t for t in threading.enumerate() if t.ident not in before and t.is_alive()],
               message="threads left after shutdown")


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


def test_finished_jobs_drop_their_packed_call(sched):
    gate = threading.Event()
    first = sched.submit(gate.wait, 10)
    job = sched.submit(len, b"x" * 1_000_000, executor="process", after=first)
    assert job.state == PENDING and len(job.shipment) > 1_000_000  # packed at submit
    gate.set()
    assert job.result(60) == 1_000_000
    assert job.shipment is None


def test_a_part_that_fails_to_close_is_told_and_the_rest_is_released():
    from notebook_ext.executors import ThreadExecutor

    class Stuck(ThreadExecutor):
        name = "stuck"

        def shutdown(self) -> None:
            raise OSError("the device is busy")

    s = Scheduler(slots=1, history=None, executors=[Stuck()])
    assert s.submit(lambda: 3, executor="stuck").result(timeout=30) == 3
    with pytest.warns(RuntimeWarning, match=r"could not close the stuck executor \(OSError: the device is busy\)"):
        s.shutdown()
    assert not s.loop_thread.running  # the loop was released all the same
