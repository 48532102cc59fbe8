"""The process executor: progress from workers, kill on cancel, dead workers."""

import os
import signal
import threading
import time

import pytest

from notebook_ext.core import CANCELLED, FAILED, Scheduler, WorkerDied, progress, report
from notebook_ext.testing import FakeClock, wait_until


def count(n, delay=0.0):
    for i in progress(range(n)):
        if delay:
            time.sleep(delay)
        if i % 10 == 0:
            print("at", i)
    report(message="finished", score=0.5)
    return n


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_process_job_returns_with_progress_output_and_metrics(sched):
    job = sched.submit(count, 30, 0.01, executor="process")
    assert job.result(timeout=30) == 30
    assert job.progress.done == 30 and job.progress.total == 30
    assert job.output.count("at ") == 3
    assert job.metrics["score"][-1][1] == 0.5 and job.progress.message == "finished"


def test_progress_arrives_while_the_process_job_runs(sched):
    seen = []
    sched.subscribe(lambda snap: seen.append(snap.progress.done) if snap.state == "running" else None)
    job = sched.submit(count, 100, 0.02, executor="process")
    job.result(timeout=30)
    intermediate = [d for d in seen if 0 < d < 100]
    assert len(intermediate) >= 5


def test_worker_runs_at_lower_priority(sched):
    job = sched.submit(os.nice, 0, executor="process")
    assert job.result(timeout=30) >= os.nice(0) + 10 or job.result() == 19


def test_notebook_defined_closure_is_shipped(sched):
    factor = 3
    job = sched.submit(lambda x: x * factor, 14, executor="process")
    assert job.result(timeout=30) == 42


def test_unpicklable_call_is_refused_at_submit(sched):
    lock = threading.Lock()
    with pytest.raises(TypeError, match="cannot send .* to a worker process"):
        sched.submit(lambda: lock, executor="process")
    assert sched.jobs == {}


def test_exception_in_worker_keeps_its_type_and_traceback(sched):
    def bad():
        raise KeyError("missing column")

    job = sched.submit(bad, executor="process")
    assert isinstance(job.exception(timeout=30), KeyError)
    assert job.state == FAILED and "missing column" in job.traceback and "bad" in job.traceback


def test_cancel_kills_the_worker_process(sched):
    job = sched.submit(count, 100_000, 0.01, executor="process")
    wait_until(lambda: job.progress.done >= 5, timeout=30)
    pids = sched.executor("process").worker_pids()
    assert len(pids) == 1
    job.cancel("user pressed Cancel")
    assert job.wait(5) and job.state == CANCELLED
    wait_until(lambda: not _alive(pids[0]), timeout=5)
    assert not _alive(pids[0])
    assert sched.submit(count, 3, executor="process").result(timeout=30) == 3


def test_sigkilled_worker_fails_its_job_and_the_pool_recovers(sched):
    other = sched.submit(count, 60, 0.02, executor="process")
    job = sched.submit(count, 100_000, 0.01, executor="process")
    wait_until(lambda: job.progress.done >= 5, timeout=30)
    pid = sched.executor("process").worker_pid(job)
    os.kill(pid, signal.SIGKILL)
    assert job.wait(5) and job.state == FAILED
    assert isinstance(job.exception(), WorkerDied) and "SIGKILL" in job.error
    assert other.result(timeout=30) == 60  # the other slot was not disturbed
    assert sched.submit(count, 3, executor="process").result(timeout=30) == 3


def test_timeout_kills_a_process_job():
    clock = FakeClock()
    s = Scheduler(slots=1, history=None, clock=clock)
    try:
        job = s.submit(count, 100_000, 0.01, executor="process", timeout=0.5)
        wait_until(lambda: job.progress.done >= 1, timeout=60)  # really running in its worker
        pid = s.executor("process").worker_pid(job)
        clock.advance(0.499)
        assert job.state == "running"
        clock.advance(0.001)
        assert job.wait(10) and job.state == "timed_out" and job.timed_out
        wait_until(lambda: not _alive(pid), timeout=10)
    finally:
        s.shutdown()
