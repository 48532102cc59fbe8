"""Work items: `map`, `pipeline` and `preprocess` on them, with real threads,
coroutines and worker processes; concurrency instrumented inside the item
functions themselves."""

import asyncio
import random
import threading
import time

import pytest

import notebook_ext as nx
from notebook_ext.core import ItemsDetail, Scheduler
from notebook_ext.ml import preprocess, retry_failed
from notebook_ext.testing import wait_until


@pytest.fixture
def sched():
    s = Scheduler(slots=2, history=None)
    yield s
    s.shutdown()


class Gauge:
    """Counts how many calls run at once (the instrument of these tests)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.live = 0
        self.peak = 0
        self.calls = 0

    def __enter__(self):
        with self.lock:
            self.live += 1
            self.calls += 1
            self.peak = max(self.peak, self.live)

    def __exit__(self, *exc):
        with self.lock:
            self.live -= 1


def test_async_items_return_awaited_values_in_input_order(sched):
    delays = [random.Random(i).uniform(0, 0.02) for i in range(200)]

    async def slow_square(i):
        await asyncio.sleep(delays[i])  # items finish out of order
        return i * i

    assert list(nx.map(slow_square, range(200), scheduler=sched)) == [i * i for i in range(200)]
    unordered = list(nx.map(slow_square, range(200), ordered=False, scheduler=sched))
    assert sorted(unordered) == [i * i for i in range(200)] and unordered != sorted(unordered)


@pytest.mark.parametrize("kind", ["thread", "async"])
def test_64_io_items_really_run_64_at_a_time(sched, kind):
    gauge = Gauge()

    def wait_io(x):
        with gauge:
            time.sleep(0.01)
        return x

    async def wait_io_async(x):
        with gauge:
            await asyncio.sleep(0.01)
        return x

    func = wait_io if kind == "thread" else wait_io_async
    got = list(nx.map(func, range(640), workers=64, scheduler=sched))
    assert got == list(range(640))
    assert gauge.peak == 64  # not capped at the 2 slots of this scheduler, never above `workers`


def test_100_000_items_make_one_job_record(tmp_path):
    s = Scheduler(slots=2, history=tmp_path / "h.sqlite")
    try:
        job = preprocess(abs, range(-100_000, 0), workers=4, scheduler=s, name="many")
        res = job.result(120)
        assert res.count == 100_000 and res.results[:3] == [100_000, 99_999, 99_998] and res.ok
        assert [j.name for j in s.all_jobs()] == ["many"] and not job.children
        s.store.flush()
        assert [r.name for r in s.store.load()] == ["many"]
    finally:
        s.shutdown()


def test_a_failing_item_keeps_the_others_and_retry_reruns_only_it(sched):
    seen = []
    broken = {7}

    def parse(x):
        seen.append(x)
        if x in broken:
            raise ValueError(f"bad row {x}")
        return -x

    job = preprocess(parse, range(20), workers=3, scheduler=sched, name="rows")
    res = job.result(30)
    assert res.failed == {7: "ValueError: bad row 7"} and res.results[6] == -6 and res.results[7] is None
    assert "item 7 (7) failed in parse: ValueError: bad row 7" in job.output
    broken.clear()
    seen.clear()
    merged = retry_failed(job).result(30)
    assert seen == [7] and merged.ok and merged.results == [-x for x in range(20)]


def test_per_item_retries(sched):
    attempts = {}

    def flaky(x):
        attempts[x] = attempts.get(x, 0) + 1
        if x % 5 == 0 and attempts[x] < 3:
            raise OSError("try again")
        return x

    items = nx.map(flaky, range(20), retries=2, scheduler=sched)
    assert list(items) == list(range(20)) and not items.failed
    assert attempts[5] == 3 and attempts[6] == 1
    never = nx.map(flaky, [100], retries=0, scheduler=sched)
    assert list(never) == [] and never.failed[0].error == "OSError: try again" and never.failed[0].item == "100"


def test_three_stage_pipeline_keeps_each_bound_and_its_card_adds_up(sched):
    gauges = [Gauge(), Gauge(), Gauge()]

    async def read(i):
        with gauges[0]:
            await asyncio.sleep(0.005)
        return i

    def parse(i):
        with gauges[1]:
            time.sleep(0.004)
        if i == 33:
            raise ValueError("unparsable")
        return i * 2

    def featurize(i):
        with gauges[2]:
            time.sleep(0.001)
        return i + 1

    pipe = nx.pipeline(range(200), nx.stage(read, workers=16), nx.stage(parse, workers=3),
                       nx.stage(featurize, workers=2, queue=4))
    job = preprocess(pipe, scheduler=sched, name="pipe")
    res = job.result(60)
    assert res.results[:3] == [1, 3, 5] and res.failed == {33: "ValueError: unparsable"}
    assert gauges[0].peak <= 16 and gauges[1].peak <= 3 and gauges[2].peak <= 2
    assert gauges[1].peak == 3  # the slow stage was kept full
    detail = job.detail
    assert isinstance(detail, ItemsDetail) and [s.name for s in detail.stages] == ["read", "parse", "featurize"]
    read_s, parse_s, feat_s = detail.stages
    assert read_s.done == 200 and parse_s.done + parse_s.failed == read_s.done
    assert parse_s.failed == 1 and feat_s.done == parse_s.done == 199
    assert all(s.in_flight == 0 and s.queued == 0 for s in detail.stages)
    from notebook_ext.ui._render import snapshot_state

    state = snapshot_state(job.snapshot())
    assert [(s["name"], s["done"], s["failed"]) for s in state["stages"]] == [
        ("read", 200, 0), ("parse", 199, 1), ("featurize", 199, 0)]
    assert state["failed_count"] == 1 and state["failed_items"][0]["stage"] == "parse"


def test_pipeline_retry_starts_at_the_stage_that_failed(sched):
    reads = []
    broken = {4}

    def read(i):
        reads.append(i)
        return i * 10

    def parse(x):
        if x // 10 in broken:
            raise ValueError("later stage")
        return x + 1

    job = preprocess(nx.pipeline(range(8), read, parse), scheduler=sched, name="p2")
    res = job.result(30)
    assert res.failed == {4: "ValueError: later stage"} and res.failed_items == {4: 40}
    broken.clear()
    reads.clear()
    merged = retry_failed(job).result(30)
    assert reads == [] and merged.results == [i * 10 + 1 for i in range(8)]


def test_sync_and_async_sinks_get_every_result_in_order_and_nothing_is_kept(sched):
    got, got_async = [], []

    async def store(x):
        await asyncio.sleep(0)
        got_async.append(x)

    res = preprocess(str, range(3000), into=got.append, scheduler=sched).result(60)
    assert got == [str(i) for i in range(3000)] and res.results == [] and res.count == 3000 and res.into
    res2 = preprocess(str, range(500), into=store, scheduler=sched).result(60)
    assert got_async == [str(i) for i in range(500)] and res2.results == []


def test_a_sink_that_raises_fails_the_job_with_its_error(sched):
    def full(_):
        raise OSError("disk full")

    job = preprocess(str, range(1000), into=full, scheduler=sched)
    assert job.wait(30) and job.state == "failed" and "OSError: disk full" in job.error


def test_map_inside_thread_and_coroutine_jobs_counts_progress_and_output(sched):
    def shout(x):
        print("item", x)
        return x

    def whisper(x):
        print("loop item", x)
        return x

    def thread_job():
        return sum(nx.map(shout, range(50), workers=8))

    async def loop_job():
        return sum(await nx.map(whisper, range(30)))

    a = sched.submit(thread_job, name="t")
    b = sched.submit(loop_job, name="c")
    assert a.result(30) == sum(range(50)) and b.result(30) == sum(range(30))
    assert a.progress.done == 50 and a.progress.total == 50 and "item 49" in a.output
    assert b.progress.done == 30 and "loop item 29" in b.output and "loop item" not in a.output


def test_stop_and_keep_finishes_the_items_in_flight_and_keeps_them(sched):
    job = preprocess(time.sleep, [0.01] * 100_000, workers=4, scheduler=sched, name="long")
    wait_until(lambda: job.progress.done >= 20)
    sched.request_stop(job)
    res = job.result(10)
    assert job.state == "done" and res.stopped and 20 <= res.count < 100_000
    assert res.results == [None] * res.count and not res.failed


def test_process_items_in_chunks_keep_order_failures_and_prints(sched):
    def crunch(x):
        if x == 3:
            raise ZeroDivisionError("three")
        print("crunched", x)
        return x * 3

    job = preprocess(crunch, range(400), executor="process", cpu=2, scheduler=sched, name="proc")
    res = job.result(120)
    assert res.failed == {3: "ZeroDivisionError: three"} and res.results[4] == 12 and len(res) == 400
    assert "crunched 399" in job.output
    assert "in crunch" in job.detail.failed_items[0].traceback


def test_bad_stage_arguments_are_clear():
    async def fetch(x):
        return x

    with pytest.raises(ValueError, match="is an `async def` function: it runs on the loop"):
        nx.stage(fetch, executor="thread")
    with pytest.raises(ValueError, match="would block the loop"):
        nx.stage(len, executor="loop")
    with pytest.raises(ValueError, match="`workers` must be a positive integer, got 0"):
        nx.stage(len, workers=0)
    with pytest.raises(TypeError, match="a pipeline brings its own items"):
        preprocess(nx.pipeline([1], len), [1, 2])
    with pytest.raises(ValueError, match="at least one stage"):
        nx.pipeline([1])
    lock = threading.Lock()
    with pytest.raises(TypeError, match="cannot send 'holds_a_lock' to a worker process"):
        def holds_a_lock(x, lock=lock):
            return x
        preprocess(holds_a_lock, [1], executor="process")


def test_a_failing_source_fails_the_job(sched):
    def source():
        yield 1
        raise OSError("the share went away")

    job = preprocess(str, source(), scheduler=sched)
    assert job.wait(10) and job.state == "failed" and "OSError: the share went away" in job.error
