"""The progress path: cheap to call, throttled towards observers, final always sent."""

import asyncio
import sys
import threading
import time

import pytest

from notebook_ext.core import DONE, RUNNING, Scheduler, progress, report, stop_requested
from notebook_ext.core.lowlevel import JobContext, Notifier
from notebook_ext.testing import FakeClock, wait_until


def test_report_a_million_times_is_throttled():
    s = Scheduler(slots=2, history=None)
    snaps = []
    s.subscribe(lambda snap: snaps.append(snap))

    def hammer():
        t0 = time.monotonic()
        for i in range(1_000_000):
            report(i + 1, 1_000_000, loss=1.0 / (i + 1)) if i % 1000 == 0 else report(i + 1)
        return time.monotonic() - t0

    try:
        job = s.submit(hammer, name="hammer")
        duration = job.result(timeout=60)
        s.notifier.close()  # everything is delivered
        mine = [x for x in snaps if x.id == job.id]
        run_span = job.ended - job.created
        assert len(mine) <= run_span * 10 + 2, (len(mine), run_span, duration)
        assert mine[-1].state == DONE and mine[-1].progress.done == 1_000_000
        assert len(mine[-1].metrics["loss"]) == 1000
    finally:
        s.shutdown()


def test_progress_outside_a_job_just_iterates():
    assert list(progress(iter([1, 2, 3]))) == [1, 2, 3]
    report(1, 2, loss=3.0)  # no job: a no-op
    assert stop_requested() is False


def test_snapshots_are_immutable_and_carry_rate_and_eta():
    clock = FakeClock()
    s = Scheduler(slots=2, history=None, clock=clock)
    step = threading.Semaphore(0)
    at = []

    def work():
        for i in progress(range(50)):
            at.append(i)
            step.acquire()

    try:
        job = s.submit(work)
        for i in range(1, 31):  # one step per fake second
            wait_until(lambda: len(at) == i)
            clock.advance(1.0)
            job.snapshot()  # the rate is smoothed over the snapshots taken
            step.release()
        wait_until(lambda: job.ctx.done == 30)
        snap = job.snapshot()
        assert snap.progress.total == 50 and snap.progress.done == 30
        assert snap.progress.rate == pytest.approx(1.0, rel=0.05)
        assert snap.progress.eta == pytest.approx(20, rel=0.05)
        assert snap.elapsed == pytest.approx(30, abs=1)
        with pytest.raises(AttributeError):
            snap.state = "done"  # type: ignore[misc]
        for _ in range(20):
            step.release()
        job.result(5)
    finally:
        s.shutdown()


def test_final_state_always_delivered_even_for_instant_jobs(sched):
    finals = []
    sched.subscribe(lambda s: finals.append(s.name) if s.finished else None)
    for i in range(20):
        sched.submit(int, name=f"quick-{i}")
    sched.wait(timeout=10)
    sched.notifier.close()
    assert sorted(finals) == sorted(f"quick-{i}" for i in range(20))


def test_notifier_throttles_with_an_injected_clock():
    clock = FakeClock()

    class FakeJob:
        version = 0

        def __init__(self):
            self.id, self.state, self.ctx = 1, "running", JobContext(1)

        def done(self):
            return False

        def snapshot(self):
            return self.ctx.done

    job = FakeJob()
    n = Notifier(lambda: [job], interval=0.1, clock=clock)
    n.close()  # stop its thread; drive tick() by hand with the fake clock
    got = []
    n.subscribe(got.append)
    for step in range(100):  # 100 changes within 0.99 s of fake time
        job.ctx.done = step
        clock.advance(0.01)
        n.tick()
    assert len(got) == 10 and got == sorted(got)
    n.tick()
    assert len(got) == 10  # within the interval: held back
    clock.advance(0.1)
    n.tick()
    assert got[-1] == 99 and len(got) == 11  # the newest value goes out once the interval passed
    clock.advance(1)
    n.tick()
    assert len(got) == 11  # nothing new without a change


def test_job_prints_are_captured_per_job_not_on_stdout(sched, capsys):
    def chatty(tag):
        for i in range(3):
            print(tag, i)
            print("warn", tag, file=sys.stderr)
        return tag

    a = sched.submit(chatty, "A")
    b = sched.submit(chatty, "B")

    async def co():
        print("from coroutine")
        await asyncio.sleep(0)

    c = sched.submit(co)
    sched.wait(a, b, c, timeout=5)
    print("foreground")
    out = capsys.readouterr()
    assert "A 0" in a.output and "B" not in a.output and "warn A" in a.output
    assert "B 2" in b.output and c.output == "from coroutine\n"
    assert "A 0" not in out.out and "foreground" in out.out


def test_output_is_bounded_and_keeps_the_tail(sched):
    def spam():
        for i in range(20_000):
            print(f"line {i:05d}")

    job = sched.submit(spam)
    job.result(10)
    assert len(job.output) < 70_000
    assert job.output.rstrip().endswith("line 19999") and "dropped" in job.output


def test_stop_and_keep_is_seen_by_job_code(sched):
    started = threading.Event()

    def epochs():
        done = 0
        for _ in range(100_000):
            started.set()
            if stop_requested():
                break
            time.sleep(0.001)  # an epoch's work
            done += 1
        return done

    job = sched.submit(epochs)
    assert started.wait(5) and job.state == RUNNING
    assert job.request_stop()
    n = job.result(5)
    assert 0 < n < 100_000 and job.state == DONE and job.stop_requested
