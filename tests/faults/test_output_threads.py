"""Output (and progress, and cancellation) from threads a job starts goes
to that job, not to whatever cell runs at that moment."""

from __future__ import annotations

import asyncio
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from notebook_ext.core import Scheduler, checkpoint, report


def print_lines(tag: str, n: int) -> None:
    for i in range(n):
        print(f"{tag} line {i}")


def starts_a_thread():
    t = threading.Thread(target=print_lines, args=("thread", 80))
    t.start()
    t.join()
    return "ok"


def uses_a_pool():
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(print_lines, ["pool"] * 4, [10] * 4))
    return "ok"


async def uses_run_in_executor():
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, print_lines, "executor", 5)
    return "ok"


@pytest.mark.parametrize("fn, tag, lines", [
    (starts_a_thread, "thread", 80),
    (uses_a_pool, "pool", 40),
    (uses_run_in_executor, "executor", 5),
])
def test_prints_from_threads_a_job_starts_land_in_that_job(fn, tag, lines, capfd, flat):
    with Scheduler(slots=2, history=None) as sched:
        job = sched.submit(fn)
        assert job.result(timeout=30) == "ok"
        assert job.output.count(f"{tag} line ") == lines
    sys.stdout.flush()
    assert f"{tag} line" not in capfd.readouterr().out


def test_a_pool_made_in_a_job_serves_later_callers_as_themselves(capsys, flat):
    pool = ThreadPoolExecutor(2)
    try:
        with Scheduler(slots=2, history=None) as sched:
            job = sched.submit(lambda: pool.submit(print_lines, "in-job", 3).result())
            job.result(timeout=30)
            other = sched.submit(lambda: pool.submit(print_lines, "other-job", 2).result())
            other.result(timeout=30)
        pool.submit(print_lines, "outside", 2).result()  # the pool's threads began in `job`
        assert job.output.count("in-job") == 3 and "other-job" not in job.output
        assert other.output.count("other-job") == 2 and "outside" not in job.output + other.output
        assert capsys.readouterr().out.count("outside line") == 2
    finally:
        pool.shutdown()


def test_a_thread_started_by_a_job_reports_and_is_cancelled_with_it(flat):
    started, stopped = threading.Event(), []

    def helper():
        report(message="helper thread here")
        started.set()
        try:
            while True:
                checkpoint()
                started.wait(0.005)
        except BaseException as exc:  # noqa: BLE001 - we want to see what ended it
            stopped.append(type(exc).__name__)

    def job_body():
        t = threading.Thread(target=helper)
        t.start()
        t.join()
        checkpoint()

    with Scheduler(slots=2, history=None) as sched:
        job = sched.submit(job_body)
        assert started.wait(10)
        assert job.progress.message == "helper thread here"
        job.cancel("stop all of it")
        assert job.wait(10) and job.state == "cancelled"
        assert stopped == ["JobCancelled"]
