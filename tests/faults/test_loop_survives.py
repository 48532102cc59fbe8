"""Nothing a job's code does can stop the scheduler's loop: a
KeyboardInterrupt or SystemExit raised by an item source, by pickling an
item's result in a worker or by unpickling it in the kernel, is the job's
(or the item's) error, and the next job runs. If the loop thread dies
anyway (user code reaching the loop itself), every job it held fails with
one error that says so and the next submit gets a fresh loop."""

from __future__ import annotations

import asyncio
import sys

import pytest

import notebook_ext as nx
from notebook_ext.core import Scheduler


@pytest.fixture
def sched():
    s = Scheduler(slots=2, history=None)
    yield s
    s.shutdown()


def _source_raising(exc: BaseException):
    async def src():
        yield 1
        raise exc
    return src


async def ident(x):
    return x


@pytest.mark.parametrize("exc", [KeyboardInterrupt("from the source"), SystemExit("from the source")],
                         ids=["KeyboardInterrupt", "SystemExit"])
def test_an_async_source_raising_a_base_exception_fails_its_job_only(sched, exc):
    src = _source_raising(exc)

    async def job():
        return await nx.map(ident, src(), scheduler=sched)

    j = sched.submit(job)
    assert j.wait(10), f"the job hangs: {j.state}"
    assert j.state == "failed" and type(j.exception()) is type(exc)
    assert sched.loop_thread.running
    assert sched.submit(lambda: 42).result(timeout=10) == 42


def test_a_sync_source_raising_keyboardinterrupt_fails_its_job_only(sched):
    def src():
        yield 1
        raise KeyboardInterrupt("from a plain source")

    def job():
        return list(nx.map(lambda x: x, src(), scheduler=sched))

    j = sched.submit(job)
    assert j.wait(10) and j.state == "failed" and isinstance(j.exception(), KeyboardInterrupt)
    assert sched.submit(lambda: 42).result(timeout=10) == 42


def test_an_async_item_raising_systemexit_is_that_items_failure(sched):
    async def item(x):
        if x == 2:
            raise SystemExit("item 2")
        return x

    async def job():
        m = nx.map(item, range(5), scheduler=sched)
        return await m, sorted(m.failed)

    ok, failed = sched.submit(job).result(timeout=10)
    assert ok == [0, 1, 3, 4] and failed == [2]
    assert sched.submit(lambda: 42).result(timeout=10) == 42


class RefusesToTravel:
    """Its pickling (in the worker) raises SystemExit."""

    def __reduce__(self):
        raise SystemExit("no pickling for me")


def _boom_kbi():
    raise KeyboardInterrupt("unpickled in the kernel")


class BlowsUpOnArrival:
    """Pickles fine; unpickling it (in the kernel) raises KeyboardInterrupt."""

    def __reduce__(self):
        return (_boom_kbi, ())


def make_refusing(x):
    return RefusesToTravel() if x == 1 else x


def make_exploding(x):
    return BlowsUpOnArrival() if x == 1 else x


@pytest.mark.slow
@pytest.mark.parametrize("func", [make_refusing, make_exploding], ids=["pickle-in-worker", "unpickle-in-kernel"])
def test_a_process_items_result_that_cannot_travel_fails_alone(sched, func):
    def job():
        m = nx.map(func, range(4), executor="process", cpu=1, scheduler=sched)
        return list(m), sorted(m.failed)

    j = sched.submit(job)
    assert j.wait(60), f"the job hangs: {j.state}"
    ok, failed = j.result()
    assert 1 in failed and 1 not in ok and {0, 2, 3} - set(failed) <= set(ok)
    assert sched.submit(lambda: 42).result(timeout=10) == 42


@pytest.mark.slow
def test_a_process_jobs_result_whose_unpickling_raises_fails_that_job(sched):
    j = sched.submit(make_exploding, 1, executor="process")
    assert j.wait(60), f"the job hangs: {j.state}"
    assert j.state == "failed" and isinstance(j.exception(), KeyboardInterrupt)
    assert sched.submit(lambda: 42).result(timeout=10) == 42


def test_a_callback_raising_systemexit_on_the_loop_is_survived(sched):
    before = sched.loop_thread.errors
    sched.loop_thread.call_soon(sys.exit, 3)
    assert sched.submit(lambda: 42).result(timeout=10) == 42
    assert sched.loop_thread.errors == before + 1


@pytest.mark.parametrize("killer", ["call_soon", "task"])
def test_if_the_loop_dies_anyway_its_jobs_fail_and_the_next_submit_gets_a_fresh_loop(sched, killer):
    """User code that reaches the loop itself (a raw handle or task of its
    own) can still end run_forever: the watchdog says so on every job."""
    import threading

    gate = threading.Event()
    spawned = []
    waiting = sched.submit(gate.wait, 30, name="waiting")     # a thread job, running
    queued = sched.submit(lambda: 1, name="queued", after=[waiting])

    async def killer_job():
        loop = asyncio.get_running_loop()
        if killer == "call_soon":
            loop.call_soon(sys.exit, "the user's handle")
        else:
            async def boom():
                raise KeyboardInterrupt("the user's task")
            spawned.append(asyncio.ensure_future(boom()))
        await asyncio.sleep(30)

    old = sched.loop_thread
    k = sched.submit(killer_job, name="killer")
    try:
        for j in (k, waiting, queued):
            assert j.wait(10), f"{j.name} hangs: {j.state}"
            assert j.state == "failed", (j.name, j.state)
            assert "loop thread died" in str(j.exception()), str(j.exception())
        assert sched.submit(lambda: 42).result(timeout=10) == 42
        assert sched.loop_thread is not old and sched.loop_thread.running and not old.running
    finally:
        gate.set()
        for task in spawned:  # retrieved: else its collection logs a traceback from whichever thread
            assert isinstance(task.exception(), KeyboardInterrupt)  # collects it (CPython 3.11's ast
            # module then races pytest's own ast.parse: "AST constructor recursion depth mismatch")
