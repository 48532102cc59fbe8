"""A job blocked waiting on other jobs lends its compute slot while it
waits, so fan-out from inside jobs cannot deadlock."""

from __future__ import annotations

import pytest

from notebook_ext.core import Scheduler, current_job


def square(x):
    return x * x


def fan_out_result(n):
    sched = current_job().scheduler
    kids = [sched.submit(square, i) for i in range(n)]
    return sum(k.result(timeout=20) for k in kids)


def fan_out_wait(n):
    sched = current_job().scheduler
    kids = [sched.submit(square, i) for i in range(n)]
    done, pending = sched.wait(*kids, timeout=20)
    assert not pending
    return sum(k.result() for k in kids)


def nested(depth):
    if depth == 0:
        return 1
    sched = current_job().scheduler
    kids = [sched.submit(nested, depth - 1) for _ in range(2)]
    return sum(k.result(timeout=20) for k in kids)


@pytest.mark.parametrize("body", [fan_out_result, fan_out_wait])
def test_parents_holding_every_slot_still_get_their_children_run(body, flat):
    with Scheduler(slots=2, history=None) as sched:
        parents = [sched.submit(body, 3, timeout=60) for _ in range(2)]
        assert [p.result(timeout=30) for p in parents] == [5, 5]
        assert sched.loop_thread.call_and_wait(lambda: sched._dispatcher.compute_running) == 0
        # The slots are whole again: two at a time, no more.
        sched._dispatcher.max_running_seen = 0
        assert [j.result(timeout=10) for j in [sched.submit(square, 3) for _ in range(6)]] == [9] * 6
        assert sched.max_running_seen <= 2


def test_a_tree_of_waits_three_deep_on_one_slot(flat):
    with Scheduler(slots=1, history=None) as sched:
        assert sched.submit(nested, 3).result(timeout=30) == 8
        assert sched.loop_thread.call_and_wait(lambda: sched._dispatcher.compute_running) == 0


def test_await_in_a_coroutine_job_on_thread_children(flat):
    async def parent():
        sched = current_job().scheduler
        kids = [sched.submit(square, i) for i in range(4)]
        return [await k for k in kids]

    with Scheduler(slots=1, history=None) as sched:
        assert sched.submit(parent).result(timeout=30) == [0, 1, 4, 9]
