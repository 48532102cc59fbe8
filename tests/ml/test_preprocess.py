"""Preprocessing: order kept, failures listed and retried alone,
back-pressure bound respected, lazy and async sources."""

import asyncio
import threading
import time

import numpy as np
import pytest

from notebook_ext.core import Scheduler
from notebook_ext.ml import preprocess, retry_failed
from notebook_ext.testing import wait_until


@pytest.fixture
def sched():
    s = Scheduler(slots=2, history=None)
    yield s
    s.shutdown()


FLAKY = {"fixed": False}


def square_unless_13(x):
    time.sleep(0.002)
    if x == 13 and not FLAKY["fixed"]:
        raise ValueError("corrupt chunk 13")
    return x * x


def test_one_failing_item_keeps_the_other_99_in_order_and_retry_reruns_only_it(sched):
    FLAKY["fixed"] = False
    calls = []
    counting = lambda x: calls.append(x) or square_unless_13(x)  # noqa: E731
    job = preprocess(counting, range(100), workers=4, scheduler=sched, name="prep")
    res = job.result(timeout=60)
    assert job.state == "done" and len(res) == 100
    assert res.failed == {13: "ValueError: corrupt chunk 13"} and res.failed_items == {13: 13}
    assert [r for i, r in enumerate(res.results) if i != 13] == [i * i for i in range(100) if i != 13]
    (failure,) = job.detail.failed_items
    assert (failure.index, failure.error, failure.item) == (13, "ValueError: corrupt chunk 13", "13")
    assert failure.traceback.startswith("Traceback") and "in square_unless_13" in failure.traceback
    assert "_items.py" not in failure.traceback  # the item's own frames, not ours
    assert "%retry prep" in job.progress.message
    calls.clear()
    FLAKY["fixed"] = True
    again = sched.retry("prep")  # what %retry does
    merged = again.result(timeout=30)
    assert calls == [13] and merged.ok and merged.results == [i * i for i in range(100)]
    assert sched.jobs["prep"] is again


def test_max_pending_bounds_items_in_flight(sched):
    lock = threading.Lock()
    live = [0]
    peak = [0]
    taken = [0]
    finished = [0]

    def work(x):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.01)
        with lock:
            live[0] -= 1
            finished[0] += 1
        return x

    def source():  # a lazy source: counts how far it was read
        for i in range(60):
            taken[0] += 1
            yield i

    job = preprocess(work, source(), workers=4, max_pending=4, scheduler=sched)
    wait_until(lambda: taken[0] >= 10, timeout=5)
    # never read far ahead of the work (the card's count is published 4 times
    # a second with its other counts: the work's own count is the live one)
    assert taken[0] - finished[0] <= 4 + 1
    assert job.result(30).results == list(range(60))
    assert job.detail.max_in_flight <= 4 and peak[0] <= 4


def test_async_source_and_process_executor(sched):
    async def chunks():
        for i in range(8):
            await asyncio.sleep(0.01)
            yield np.full(1000, i, dtype=float)

    job = preprocess(np.sum, chunks(), executor="process", workers=2, scheduler=sched)
    assert job.result(60).results == [1000.0 * i for i in range(8)]


def test_cancel_stops_taking_items(sched):
    job = preprocess(time.sleep, [0.2] * 200, workers=2, scheduler=sched)
    wait_until(lambda: job.progress.done >= 2)  # it is taking items
    job.cancel()
    assert job.wait(5) and job.state == "cancelled"
    assert job.progress.done < 50


def test_bad_input(sched):
    with pytest.raises(TypeError, match="`func` must be callable"):
        preprocess(42, [1], scheduler=sched)
    with pytest.raises(TypeError, match="`items` must be iterable"):
        preprocess(abs, 5, scheduler=sched)
    with pytest.raises(ValueError, match="`max_pending` must be a positive integer"):
        preprocess(abs, [1], max_pending=0, scheduler=sched)
    done = preprocess(abs, [-1], scheduler=sched)
    done.result(10)
    with pytest.raises(ValueError, match="no failed items"):
        retry_failed(done)
    assert list(sched.jobs) == [done.name] and not done.children  # items are not jobs
