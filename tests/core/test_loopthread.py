"""The one bridge to the scheduler's loop: calls in order, answers or
errors handed back, a timeout instead of a hang, and a loop that survives
the callbacks it runs."""

import threading

import pytest

from notebook_ext.core.lowlevel import LoopThread


@pytest.fixture
def lt():
    loop_thread = LoopThread("test-loop")
    yield loop_thread
    loop_thread.stop()


def test_call_soon_runs_in_order_on_the_loop_thread(lt):
    seen = []
    for i in range(1000):
        lt.call_soon(lambda i=i: seen.append((i, lt.in_thread())))
    assert lt.call_and_wait(len, seen) == 1000
    assert seen == [(i, True) for i in range(1000)] and not lt.in_thread()


def test_call_and_wait_returns_the_value_or_raises_the_error(lt):
    assert lt.call_and_wait(lambda: 6 * 7) == 42
    with pytest.raises(ZeroDivisionError):
        lt.call_and_wait(lambda: 1 / 0)


def test_call_and_wait_raises_on_timeout_instead_of_hanging(lt):
    release = threading.Event()
    lt.call_soon(release.wait, 10)  # something blocks the loop
    ran = []
    with pytest.raises(TimeoutError, match="did not answer within 0.1 s"):
        lt.call_and_wait(ran.append, 1, timeout=0.1)
    release.set()
    assert lt.call_and_wait(len, ran) == 0  # a call that timed out is dropped, not run late


def test_call_soon_confirmed_says_whether_it_ran_in_time_and_runs_anyway(lt):
    assert lt.call_soon_confirmed(lambda: None, timeout=5) is True
    release = threading.Event()
    lt.call_soon(release.wait, 10)
    ran = []
    assert lt.call_soon_confirmed(ran.append, 1, timeout=0.1) is False
    release.set()
    assert lt.call_and_wait(list, ran) == [1]  # it still ran, late


def test_a_raising_callback_does_not_stop_the_loop(lt, capsys):
    lt.call_soon(lambda: 1 / 0)
    assert lt.call_and_wait(lambda: "alive") == "alive"
    assert lt.errors == 1 and lt.running


def test_stop_ends_the_thread_and_later_calls_are_dropped():
    lt = LoopThread("short-lived")
    lt.stop()
    assert not lt.running
    lt.call_soon(print, "never")  # no error, nothing runs
