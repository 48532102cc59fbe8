"""The Dask executor under faults, on a real LocalCluster: cancel in every
state (and a storm of 500), user objects and garbage on our event topic
(the client's event callback survives them), a graceful shutdown with a job
running, the kernel SIGKILLed (no worker outlives it), and the ways a job on
the cluster can end. One cluster serves the module; the shutdown and SIGKILL
cases start their own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import warnings

import psutil
import pytest

from notebook_ext import use_dask
from notebook_ext.core import (
    CANCELLED,
    DONE,
    FAILED,
    RUNNING,
    Scheduler,
    checkpoint,
    progress,
    report,
)
from notebook_ext.testing import wait_until

from .conftest import fail_once, pid_alive, touch_then_wait

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def dsched():
    s = Scheduler(slots=2, history=None)
    use_dask(scheduler=s, n_workers=2)
    yield s
    s.shutdown()


@pytest.fixture
def dask_warm(dsched):
    """Before a `flat` baseline: distributed's process-wide threads
    (Dask-Offload, Dask-Callback-Thread) are started by a first job."""
    assert dsched.submit(sum, [1, 2], executor="dask").result(timeout=60) == 3


# -- job bodies (module level: the workers import them) ----------------------------

def meet(folder: str, name: str, n: int, limit: float = 30.0) -> str:
    """Arrive in ``folder``, then wait until ``n`` jobs arrived: only jobs
    running at the same time (in different slots) meet."""
    open(os.path.join(folder, name), "a").close()
    deadline = time.monotonic() + limit
    while len(os.listdir(folder)) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {os.listdir(folder)} arrived")
        time.sleep(0.005)
    return name


def steps(n: int) -> int:
    for _ in progress(range(n)):
        time.sleep(0.03)
    return n


def spin_steps() -> None:
    for _ in progress(range(10**9)):
        checkpoint()
        time.sleep(0.01)


class StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def print_surrogate() -> str:
    print("\udcff")
    return "printed"


def raise_str_raises() -> None:
    raise StrRaises()


def raise_surrogate() -> None:
    raise ValueError("\udcff")


def report_text() -> None:
    report(loss="abc")  # type: ignore[arg-type]


def report_huge() -> str:
    report(2**64, 2**65, **{"\udcff": 1.0})  # msgpack carries neither
    time.sleep(0.3)  # shipped while it runs, not only with the result
    return "reported"


def raise_it(exc: BaseException) -> None:
    raise exc


def lock_result() -> threading.Lock:
    return threading.Lock()


def lambda_result():
    return lambda x: x + 1


# -- helpers -----------------------------------------------------------------------

def both_slots_work(sched: Scheduler, tmp_path) -> None:
    """Two dask jobs run at the same time, to done: no slot (scheduler side)
    nor worker thread (cluster side) is still held by a cancelled job."""
    folder = tmp_path / f"meet-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    jobs = [sched.submit(meet, str(folder), name, 2, executor="dask") for name in ("a", "b")]
    assert [j.result(timeout=60) for j in jobs] == ["a", "b"]
    assert sched._dispatcher.running == {}


def delivers_progress(sched: Scheduler) -> None:
    """A normal dask job reports progress while it runs and ends done."""
    seen: list[tuple[int, float]] = []
    unsubscribe = sched.subscribe(lambda s: seen.append((s.id, s.progress.done)) if s.state == RUNNING else None)
    try:
        job = sched.submit(steps, 20, executor="dask")
        assert job.result(timeout=60) == 20 and job.state == DONE
    finally:
        unsubscribe()
    assert {d for i, d in seen if i == job.id} & set(range(1, 20)), seen


def settle(predicate, timeout: float, why) -> None:
    """`wait_until`; its failure says ``why()``, as things are by then."""
    try:
        wait_until(predicate, timeout=timeout)
    except AssertionError:
        raise AssertionError(why()) from None


def _children() -> set[int]:
    return {c.pid for c in psutil.Process().children(recursive=True) if pid_alive(c.pid)}


# -- 1. cancel in every state --------------------------------------------------------

def test_cancel_right_after_submit(dsched, paths, tmp_path):
    jobs = [dsched.submit(touch_then_wait, paths.marker(f"j{i}"), paths.release, executor="dask")
            for i in range(10)]
    for job in jobs:
        assert job.cancel("at once")
    for job in jobs:
        assert job.wait(30), job
    assert [j.state for j in jobs] == [CANCELLED] * 10
    assert all(j.cancelled_caught and j.error == "at once" for j in jobs)
    both_slots_work(dsched, tmp_path)  # any that began were stopped at a checkpoint
    paths.open_gate()
    assert all(j.state == CANCELLED for j in jobs)


def test_cancel_pending_on_a_dependency(dsched, paths, tmp_path):
    first = dsched.submit(touch_then_wait, paths.marker("first"), paths.release, executor="dask")
    second = dsched.submit(touch_then_wait, paths.marker("second"), paths.release, executor="dask",
                           after=[first])
    wait_until(lambda: paths.ran("first"), timeout=30)
    assert second.state == "pending"
    assert second.cancel("not needed")
    assert second.state == CANCELLED  # confirmed before cancel() returned
    paths.open_gate()
    assert first.result(timeout=30) == "released"
    assert not paths.ran("second")
    both_slots_work(dsched, tmp_path)


def test_cancel_queued_behind_full_slots(dsched, paths, tmp_path):
    slots = dsched.executor("dask").slots
    assert slots == 2
    holders = [dsched.submit(touch_then_wait, paths.marker(f"h{i}"), paths.release, executor="dask")
               for i in range(slots)]
    queued = dsched.submit(touch_then_wait, paths.marker("queued"), paths.release, executor="dask")
    wait_until(lambda: all(paths.ran(f"h{i}") for i in range(slots)), timeout=30)
    assert queued.state == "queued"
    assert queued.cancel("changed my mind")
    assert queued.state == CANCELLED
    paths.open_gate()
    assert [h.result(timeout=30) for h in holders] == ["released"] * slots
    assert not paths.ran("queued")
    both_slots_work(dsched, tmp_path)


def test_cancel_running(dsched, paths, tmp_path):
    job = dsched.submit(touch_then_wait, paths.marker("run"), paths.release, executor="dask")
    wait_until(lambda: paths.ran("run"), timeout=30)
    assert job.state == RUNNING
    assert job.cancel("stop it")
    assert job.wait(10)
    assert job.state == CANCELLED and job.cancelled_caught and job.error == "stop it"
    assert "Dask cannot stop a running task" in job.cancel_note
    assert dsched._dispatcher.running == {}
    # The gate stays shut: only the cancel reaching the worker frees its thread.
    both_slots_work(dsched, tmp_path)


def test_cancel_during_retry_backoff(dsched, paths, tmp_path):
    marker = paths.marker("tries")
    job = dsched.submit(fail_once, marker, executor="dask", retries=3, backoff=600)
    wait_until(lambda: job.attempt_errors, timeout=30)
    assert job.state == "queued"  # waiting out ten minutes of back-off
    assert job.cancel("no more tries")
    assert job.state == CANCELLED
    assert open(marker).read() == "x"  # it never ran again
    assert dsched.loop_thread.call_and_wait(lambda: dict(dsched._dispatcher._timers)) == {}
    both_slots_work(dsched, tmp_path)


def test_storm_of_500_cancels_right_after_submit(dsched, paths, tmp_path):
    jobs = []
    for i in range(500):
        job = dsched.submit(touch_then_wait, paths.marker(f"s{i % 5}"), paths.release, executor="dask")
        job.cancel("storm")
        jobs.append(job)
    for job in jobs:
        assert job.wait(60), job
    states = [j.state for j in jobs]
    assert states.count(CANCELLED) == 500, {s: states.count(s) for s in set(states)}
    assert dsched._dispatcher.running == {}
    assert dsched.submit(steps, 2, executor="dask").result(timeout=60) == 2
    both_slots_work(dsched, tmp_path)


# -- 2. the event callback survives user objects and garbage ---------------------------

@pytest.mark.parametrize("fn, state, says", [
    (print_surrogate, DONE, None),
    (raise_str_raises, FAILED, "StrRaises"),
    (raise_surrogate, FAILED, "ValueError"),
    (report_text, FAILED, None),
    (report_huge, DONE, None),
    (steps, DONE, None),
], ids=["print-surrogate", "str-raises", "surrogate-error", "metric-not-float", "huge-number-odd-key",
        "name-surrogate"])
def test_event_callback_survives_user_objects(dsched, fn, state, says):
    args = (3,) if fn is steps else ()
    job = dsched.submit(fn, *args, executor="dask", name="\udcff" if fn is steps else None)
    assert job.wait(30) and job.state == state, (job.state, job.error)
    if says is not None:
        assert says in job.error, job.error
    if fn is print_surrogate:
        wait_until(lambda: "udcff" in job.output.encode("utf-8", "backslashreplace").decode(), timeout=10)
    assert dsched.executor("dask").event_errors == 0  # our own events never count as errors
    delivers_progress(dsched)


def print_twice_then_return() -> str:
    print("shipped by the sender")
    time.sleep(0.4)  # the sender ships the first line as an event meanwhile
    print("in the result's last update")
    return "done"


def test_what_a_dask_job_printed_is_in_its_output_once_when_it_is_done(dsched):
    job = dsched.submit(print_twice_then_return, executor="dask")
    assert job.result(timeout=60) == "done"
    assert job.output.splitlines() == ["shipped by the sender", "in the result's last update"]


def garbage(job_id: int) -> list:
    """Events our workers never send; the last three aim at a live job."""
    return ["garbage", 42, None, [], ["start"], ["progress"], ["nonsense", 1, 2],
            job_id, ["progress", job_id], ["progress", job_id, "x"]]


def test_event_callback_survives_garbage_on_its_topic(dsched, paths):
    ex = dsched.executor("dask")
    live = dsched.submit(touch_then_wait, paths.marker("live"), paths.release, executor="dask")
    wait_until(lambda: paths.ran("live"), timeout=30)
    errors, bad = ex.event_errors, garbage(live.id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for msg in bad:
            ex.client.log_event(ex.topic, msg)
        settle(lambda: ex.event_errors >= errors + len(bad), 10,
               lambda: f"{ex.event_errors - errors} of {len(bad)} garbage events counted")
    told = [w for w in caught if "notebook_ext" in str(w.message)]
    # Told once per executor (the first garbage of this module's), never per event.
    assert len(told) == (1 if errors == 0 else 0), [str(w.message) for w in told]
    paths.open_gate()
    assert live.result(timeout=30) == "released"
    delivers_progress(dsched)


# -- 5. how a job on the cluster can end ------------------------------------------------

@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(3), GeneratorExit(), ValueError("bad")],
                         ids=lambda e: type(e).__name__)
def test_a_dask_job_raising_any_exception_fails_with_it(dsched, exc):
    job = dsched.submit(raise_it, exc, executor="dask")
    assert job.wait(30) and job.state == FAILED, (job.state, job.error)
    assert type(job.exception()) is type(exc), repr(job.exception())
    assert job.error.startswith(type(exc).__name__), job.error
    assert dsched.submit(steps, 2, executor="dask").result(timeout=30) == 2


def test_an_unpicklable_result_fails_naming_pickling(dsched, tmp_path):
    job = dsched.submit(lock_result, executor="dask")
    assert job.wait(30) and job.state == FAILED
    assert "pickle" in job.error, job.error
    fn = dsched.submit(lambda_result, executor="dask").result(timeout=30)  # cloudpickle sends it
    assert fn(1) == 2
    both_slots_work(dsched, tmp_path)


# -- 3. graceful shutdown with a running job --------------------------------------------

def test_shutdown_with_a_running_dask_job_is_interrupted_and_stops_the_cluster(dask_warm, tmp_path, flat):
    path = tmp_path / "h.sqlite3"
    before = _children()
    sched = Scheduler(slots=2, history=path)
    try:
        use_dask(scheduler=sched, n_workers=1)
        started = _children() - before
        assert started, "the cluster started no process"
        job = sched.submit(spin_steps, executor="dask", name="spinning")
        wait_until(lambda: job.progress.done >= 3, timeout=60)
        assert job.state == RUNNING
        session = sched.store.session
    finally:
        sched.shutdown()
    settle(lambda: not _children() - before, 10, lambda: f"still alive 10 s after shutdown: {_children() - before}")
    again = Scheduler(slots=1, history=path)
    try:
        rows = {r.name: r for r in again.store.load(sessions="earlier") if r.session == session}
    finally:
        again.shutdown()
    assert rows["spinning"].state == "interrupted", rows["spinning"]
    assert rows["spinning"].error == "the kernel stopped while this job was active"


# -- 4. the kernel SIGKILLed -------------------------------------------------------------

def test_no_dask_process_outlives_a_sigkilled_kernel(tmp_path, flat):
    history = tmp_path / "h.sqlite3"
    script = tmp_path / "kernel.py"
    script.write_text(textwrap.dedent(f"""
        import json, os, threading, time
        import psutil
        from notebook_ext import checkpoint, use_dask
        from notebook_ext.core import Scheduler, progress
        from notebook_ext.testing import wait_until

        def forever():
            for _ in progress(range(10**9)):
                checkpoint()
                time.sleep(0.01)

        if __name__ == "__main__":
            s = Scheduler(slots=2, history={str(history)!r})
            client = use_dask(scheduler=s, n_workers=2)
            jobs = [s.submit(forever, executor="dask", name=f"forever{{i}}") for i in range(2)]
            wait_until(lambda: all(j.state == "running" and j.progress.done >= 3 for j in jobs), timeout=120)
            print(json.dumps({{"session": s.store.session, "workers": list(client.run(os.getpid).values()),
                              "pids": [p.pid for p in psutil.Process().children(recursive=True)]}}), flush=True)
            threading.Event().wait()
    """))
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    pids: list[int] = []
    try:
        info = json.loads(proc.stdout.readline())
        pids = info["pids"]
        assert len(info["workers"]) == 2 and set(info["workers"]) <= set(pids), info
        assert all(pid_alive(p) for p in pids), pids
        proc.kill()
        proc.wait()
        settle(lambda: not any(pid_alive(p) for p in pids), 10,
               lambda: f"still alive 10 s after the kernel died: {[p for p in pids if pid_alive(p)]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        for pid in pids:  # processes this test started, if a failed run left them
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    again = Scheduler(slots=1, history=history)
    try:
        rows = {r.name: r.state for r in again.store.load(sessions="earlier")
                if r.session == info["session"]}
    finally:
        again.shutdown()
    assert rows == {"forever0": "interrupted", "forever1": "interrupted"}, rows
