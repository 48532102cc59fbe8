"""The GIL switch interval: shortened only while job code runs on our
threads, the user's value back when the last one ends, never touched while
none runs (issue 28)."""

import sys
import threading

import pytest

import notebook_ext as nx
from notebook_ext.core import Scheduler
from notebook_ext.core.lowlevel import RESPONSIVE
from notebook_ext.testing import wait_until

USER = 0.004  # a value of the user's own, so "restored" cannot pass by landing on the default


@pytest.fixture
def sched():
    s = Scheduler(slots=4, history=None)
    yield s
    s.shutdown()


@pytest.fixture
def user_interval():
    # a thread job left running by an earlier test would hold the interval: wait it out, say so if not
    wait_until(lambda: RESPONSIVE.running == 0, timeout=30,
               message=f"{RESPONSIVE.running} thread(s) of earlier tests still run job code")
    before = sys.getswitchinterval()
    sys.setswitchinterval(USER)
    was = nx.switch_interval()
    nx.switch_interval(0.0002)
    yield USER
    nx.switch_interval(was)
    sys.setswitchinterval(before)


@pytest.fixture
def calls(monkeypatch):
    """Every sys.setswitchinterval call made from now on."""
    seen: list[float] = []
    real = sys.setswitchinterval

    def recording(value: float) -> None:
        seen.append(value)
        real(value)

    monkeypatch.setattr(sys, "setswitchinterval", recording)
    return seen


def _gated(gate: threading.Event) -> float:
    gate.wait(30)
    return sys.getswitchinterval()


def test_shortened_while_thread_jobs_run_and_restored_when_the_last_ends(sched, user_interval):
    first, second = threading.Event(), threading.Event()
    a = sched.submit(_gated, first, executor="thread")
    b = sched.submit(_gated, second, executor="thread")
    wait_until(lambda: RESPONSIVE.running == 2)
    assert sys.getswitchinterval() == pytest.approx(0.0002)
    first.set()
    assert a.result(10) == pytest.approx(0.0002)
    assert sys.getswitchinterval() == pytest.approx(0.0002), "restored while a thread job still runs"
    second.set()
    assert b.result(10) == pytest.approx(0.0002)
    assert sys.getswitchinterval() == USER  # exactly the user's value, as soon as the result is in


def test_never_changed_while_no_thread_job_runs(sched, user_interval, calls):
    async def coro():
        return 1

    assert sched.submit(coro).result(10) == 1
    assert sched.submit(abs, -2, executor="process").result(60) == 2
    assert nx.wait(*sched.submit_many(coro, [()] * 20), timeout=10)
    other = Scheduler(history=None)  # making and closing a scheduler changes nothing either
    other.shutdown()
    assert calls == []
    assert sys.getswitchinterval() == USER


def test_a_value_the_user_sets_meanwhile_is_kept(sched, user_interval):
    gate = threading.Event()
    job = sched.submit(_gated, gate, executor="thread")
    wait_until(lambda: RESPONSIVE.running == 1)
    sys.setswitchinterval(0.002)  # the user's own change, while the job runs
    gate.set()
    job.result(10)
    assert sys.getswitchinterval() == pytest.approx(0.002)


def test_off_leaves_the_interpreter_alone(sched, user_interval, calls):
    nx.switch_interval(None)
    assert sched.submit(sum, range(10), executor="thread").result(10) == 45
    assert calls == []


def test_thread_stage_workers_count_too(sched, user_interval):
    gate = threading.Event()
    seen: list[float] = []

    def item(x):
        gate.wait(30)
        seen.append(sys.getswitchinterval())
        return x

    job = sched.submit(lambda: list(nx.map(item, range(4), executor="thread", workers=2, scheduler=sched)),
                       executor="thread")
    wait_until(lambda: RESPONSIVE.running >= 2)
    gate.set()
    assert sorted(job.result(30)) == [0, 1, 2, 3]
    assert seen and all(v == pytest.approx(0.0002) for v in seen)
    assert sys.getswitchinterval() == USER


def test_an_abandoned_thread_keeps_it_until_it_really_ends(sched, user_interval):
    gate = threading.Event()
    job = sched.submit(_gated, gate, executor="thread")
    wait_until(lambda: RESPONSIVE.running == 1)
    sched.cancel(job, abandon=True)
    wait_until(lambda: job.done())
    assert sys.getswitchinterval() == pytest.approx(0.0002), "the thread still computes: keep the kernel responsive"
    gate.set()
    wait_until(lambda: RESPONSIVE.running == 0)
    assert sys.getswitchinterval() == USER


def test_changing_it_while_jobs_run_takes_effect_and_still_restores(sched, user_interval):
    gate = threading.Event()
    job = sched.submit(_gated, gate, executor="thread")
    wait_until(lambda: RESPONSIVE.running == 1)
    nx.switch_interval(0.001)
    assert sys.getswitchinterval() == pytest.approx(0.001)
    gate.set()
    job.result(10)
    assert sys.getswitchinterval() == USER


def test_bad_values_are_refused_in_one_line():
    with pytest.raises(ValueError, match="seconds in"):
        nx.switch_interval(0)
    with pytest.raises(ValueError, match="seconds in"):
        nx.switch_interval("fast")  # type: ignore[arg-type]
