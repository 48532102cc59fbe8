"""Job threads give way to the kernel: while its main shell handles a request,
thread jobs (at `progress`, `report`, `checkpoint`) and thread stage workers
(between items) wait until it is idle, at most `give_way()` seconds from the
request's start; nothing else ever waits (issue 28)."""

import threading

import pytest

import notebook_ext as nx
from notebook_ext.core import checkpoint, progress, report
from notebook_ext.core.lowlevel import RESPONSIVE
from notebook_ext.testing import FakeClock, wait_until


@pytest.fixture
def grace():
    """Set the grace for one test; the kernel is idle again afterwards whatever happened."""
    was = nx.give_way()
    yield nx.give_way
    RESPONSIVE.foreground(False)
    nx.give_way(was)


def _spin(stop):
    for _ in progress(range(10**12)):
        if stop.is_set():
            return "stopped"


def _spin_report(stop):
    n = 0
    while not stop.is_set():
        n += 1
        report(n)
    return n


def _spin_checkpoint(stop, counter):
    while not stop.is_set():
        checkpoint()
        counter[0] += 1


def _done(jobs):
    return sum(j.ctx.done or 0 for j in jobs)


def test_thread_jobs_wait_while_the_kernel_is_busy_and_go_on_when_it_is_idle(sched, grace):
    grace(10)
    stop = threading.Event()
    jobs = [sched.submit(_spin, stop, executor="thread") for _ in range(2)]
    try:
        wait_until(lambda: _done(jobs) > 1000)
        RESPONSIVE.foreground(True)
        wait_until(lambda: RESPONSIVE.waiting == 2, message="both job threads give way")
        parked = _done(jobs)
        wait_until(lambda: RESPONSIVE.waiting == 2)  # (the kernel's thread has run meanwhile)
        assert _done(jobs) == parked, "a job stepped on while the kernel was busy"
        RESPONSIVE.foreground(False)
        wait_until(lambda: _done(jobs) > parked + 1000, message="the jobs go on when the kernel is idle")
        assert RESPONSIVE.waiting == 0
    finally:
        stop.set()
    assert [j.result(10) for j in jobs] == ["stopped", "stopped"]


def test_report_and_checkpoint_give_way_too(sched, grace):
    grace(10)
    stop, counter = threading.Event(), [0]
    a = sched.submit(_spin_report, stop, executor="thread")
    b = sched.submit(_spin_checkpoint, stop, counter, executor="thread")
    try:
        wait_until(lambda: (a.ctx.done or 0) > 100 and counter[0] > 100)
        RESPONSIVE.foreground(True)
        wait_until(lambda: RESPONSIVE.waiting == 2)
        seen = (a.ctx.done, counter[0])
        wait_until(lambda: RESPONSIVE.waiting == 2)
        assert (a.ctx.done, counter[0]) == seen
        RESPONSIVE.foreground(False)
        wait_until(lambda: a.ctx.done > seen[0] and counter[0] > seen[1])
    finally:
        stop.set()
    a.result(10), b.result(10)


def test_a_long_request_stalls_the_jobs_only_for_the_grace(sched, grace, monkeypatch):
    clock = FakeClock()  # the grace runs out when the test says so
    monkeypatch.setattr(RESPONSIVE, "clock", clock)
    grace(0.5)
    stop = threading.Event()
    jobs = [sched.submit(_spin, stop, executor="thread") for _ in range(2)]
    try:
        wait_until(lambda: _done(jobs) > 1000)
        RESPONSIVE.foreground(True)  # and no idle ever comes (a long cell; or the hook undone)
        wait_until(lambda: RESPONSIVE.waiting == 2)
        parked = _done(jobs)
        clock.advance(0.4)
        wait_until(lambda: RESPONSIVE.waiting == 2)
        assert _done(jobs) == parked, "went on before the grace ran out"
        clock.advance(0.2)
        wait_until(lambda: _done(jobs) > parked + 1000, timeout=20,
                   message="the jobs go on once the request's grace has run out")
        assert not RESPONSIVE.busy  # and stop testing for it until the next request
    finally:
        stop.set()
    nx.wait(*jobs, timeout=10)


def test_nothing_but_job_threads_waits(sched, grace):
    grace(10)
    RESPONSIVE.foreground(True)

    async def coro():  # on the scheduler's loop: it must never block there
        return sum(1 for _ in progress(range(5000)))

    assert sched.submit(coro).result(10) == 5000
    assert sched.submit(abs, -3, executor="process").result(60) == 3
    # the kernel's own thread, and a plain thread, outside any job
    assert sum(1 for _ in progress(range(5000))) == 5000
    report(1, 2)
    checkpoint()
    plain = threading.Thread(target=lambda: [RESPONSIVE.give_way() for _ in range(1000)])
    plain.start()
    plain.join(10)
    assert not plain.is_alive()
    assert RESPONSIVE.waiting == 0 and RESPONSIVE.busy


def test_thread_stage_workers_of_a_job_give_way_between_items(sched, grace):
    grace(10)
    started = []

    def work(x):
        started.append(x)
        return x

    def job_body():
        return list(nx.map(work, range(200), executor="thread", workers=3))

    RESPONSIVE.foreground(True)
    job = sched.submit(job_body, executor="thread")
    wait_until(lambda: RESPONSIVE.waiting == 3, message="each stage worker gives way before its first item")
    assert started == []
    RESPONSIVE.foreground(False)
    assert job.result(30) == list(range(200))


def test_a_map_the_kernel_itself_runs_does_not_wait_for_the_kernel(grace):
    grace(10)
    RESPONSIVE.foreground(True)  # a cell runs nx.map in the foreground: its workers must not wait for it
    assert list(nx.map(abs, range(-100, 0), executor="thread", workers=3)) == list(range(100, 0, -1))
    assert RESPONSIVE.waiting == 0


def test_off_means_nothing_waits(sched, grace):
    grace(None)
    RESPONSIVE.foreground(True)
    assert not RESPONSIVE.busy
    stop = threading.Event()
    jobs = [sched.submit(_spin, stop, executor="thread") for _ in range(2)]
    wait_until(lambda: _done(jobs) > 1000)
    assert RESPONSIVE.waiting == 0
    stop.set()
    nx.wait(*jobs, timeout=10)


@pytest.mark.parametrize("bad", [0, -1, 11, "fast", True])
def test_a_bad_grace_is_one_line(bad, grace):
    with pytest.raises(ValueError, match=r"give_way must be a number of seconds in \(0, 10\]"):
        nx.give_way(bad)


def test_a_job_giving_way_is_cancelled_at_once(sched, grace):
    grace(10)  # far longer than the cancel may take
    stop = threading.Event()
    job = sched.submit(_spin, stop, executor="thread")
    try:
        wait_until(lambda: (job.ctx.done or 0) > 1000)
        RESPONSIVE.foreground(True)
        wait_until(lambda: RESPONSIVE.waiting == 1)
        job.cancel()
        assert job.wait(timeout=3) and job.state == "cancelled", job.state  # not after the 10 s grace
        assert RESPONSIVE.busy  # the request itself goes on
    finally:
        stop.set()


def test_a_job_started_during_a_request_gives_way_too(sched, grace):
    grace(10)
    RESPONSIVE.foreground(True)
    stop = threading.Event()
    job = sched.submit(_spin, stop, executor="thread")
    try:
        wait_until(lambda: RESPONSIVE.waiting == 1)
        assert (job.ctx.done or 0) == 0  # it waits before its first item
        RESPONSIVE.foreground(False)
        wait_until(lambda: (job.ctx.done or 0) > 1000)
    finally:
        stop.set()
    assert job.result(10) == "stopped"
