"""A coroutine job that blocks the scheduler's loop (time.sleep in async
code) delays every other job's timeout and cancel: that cannot be undone
from outside, so the job is told, once, on its own output."""

from __future__ import annotations

import asyncio
import time

import pytest

from notebook_ext.core import Scheduler


async def blocks(seconds):
    await asyncio.sleep(0)
    time.sleep(seconds)  # the mistake: a blocking call in async code
    await asyncio.sleep(0)
    time.sleep(seconds)
    return "done"


async def behaves():
    for _ in range(20):
        await asyncio.sleep(0.01)
    return "fine"


def sync_on_loop(seconds):
    time.sleep(seconds)
    return "sync"


@pytest.mark.parametrize("fn, value", [(blocks, "done"), (sync_on_loop, "sync")])
def test_a_job_holding_the_loop_is_told_once(fn, value, flat):
    with Scheduler(slots=2, history=None) as sched:
        bad = sched.submit(fn, 0.7, executor="loop")
        good = sched.submit(behaves)
        assert bad.result(timeout=30) == value and good.result(timeout=30) == "fine"
        assert bad.output.count("held the scheduler's loop for 0.7 s") == 1
        assert "asyncio.to_thread" in bad.output
        assert good.output == ""
        assert sched.executor("loop").blocked == 1


def test_cancel_and_exceptions_pass_through_the_timing():
    async def waits_forever():
        await asyncio.Event().wait()

    async def raises():
        await asyncio.sleep(0)
        raise KeyError("inner")

    with Scheduler(slots=2, history=None) as sched:
        job = sched.submit(waits_forever)
        failing = sched.submit(raises)
        assert isinstance(failing.exception(timeout=10), KeyError)
        job.cancel("enough")
        assert job.wait(10) and job.state == "cancelled" and job.error == "enough"
