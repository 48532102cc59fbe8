"""Finished jobs let go of their inputs: memory per finished job stays
bounded whatever its arguments were."""

from __future__ import annotations

import gc
import weakref

import pytest

from notebook_ext.core import Scheduler
from notebook_ext.ml import preprocess


class Big:
    """100 KB of payload we can watch die (bytes cannot be weakly referenced)."""

    def __init__(self, i):
        self.i = i
        self.payload = bytes(100_000)


def size(item):
    return len(item.payload) + item.i


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_preprocess_items_are_freed_when_it_ends(executor, flat):
    refs = []

    def items():
        for i in range(300):
            item = Big(i)
            refs.append(weakref.ref(item))
            yield item

    with Scheduler(slots=2, history=None) as sched:
        job = preprocess(size, items(), workers=4, executor=executor, scheduler=sched)
        result = job.result(timeout=120)
        assert result.results == [100_000 + i for i in range(300)]
        gc.collect()
        alive = sum(r() is not None for r in refs)
        assert alive == 0, f"{alive} of 300 items still held after the job ended"
        assert all(c.args == () and c.shipment is None for c in job.children)


def test_a_top_level_job_keeps_its_call_for_retry(flat):
    with Scheduler(slots=2, history=None) as sched:
        job = sched.submit(size, Big(3))
        assert job.result(timeout=10) == 100_003
        again = sched.retry(job)
        assert again.result(timeout=10) == 100_003
