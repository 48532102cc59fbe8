"""The process executor under faults: Ctrl-C (a kernel "Interrupt" signals
its whole process group), the kernel SIGKILLed (no orphans left), churn of
killed and crashing workers (the receiver thread lives on), a worker that
cannot start (the job says why), and the ways a worker or its job can end."""

from __future__ import annotations

import ctypes
import json
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from notebook_ext.core import (
    CANCELLED,
    DONE,
    FAILED,
    RUNNING,
    Scheduler,
    WorkerDied,
    progress,
)
from notebook_ext.testing import wait_until

from .conftest import assert_flat, pid_alive, resources

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# -- job bodies (module level: the process executor ships them) ----------------

def wait_for_file(release: str, beat: str, value: str = "finished", limit: float = 60.0) -> str:
    """Append a byte to ``beat`` every few ms until ``release`` exists."""
    deadline = time.monotonic() + limit
    while not os.path.exists(release) and time.monotonic() < deadline:
        with open(beat, "ab") as f:
            f.write(b".")
        time.sleep(0.005)
    return value


def spin(limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(0.01)


def exit_now(code: int) -> None:
    os._exit(code)


def kill_self(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(60)


def segfault() -> None:
    ctypes.string_at(0)


def raise_it(exc: BaseException) -> None:
    raise exc


def steps(n: int) -> int:
    for _ in progress(range(n)):
        time.sleep(0.03)
    return n


def send_garbage() -> str:
    """Write messages the parent cannot use into this slot's progress pipe."""
    from notebook_ext.executors import _process

    with _process._conn_lock:
        _process._conn.send_bytes(b"not a pickle")
    _process._send(("start",))  # too short
    _process._send(None)
    return "sent"


def lock_result() -> threading.Lock:
    return threading.Lock()


def lambda_result():
    return lambda x: x + 1


def big_result(n: int) -> bytes:
    return b"x" * n


# -- helpers ---------------------------------------------------------------------

def _beats(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def _sigint_pending(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        masks = dict(line.split(":\t", 1) for line in f if line.startswith(("SigPnd", "ShdPnd")))
    return any(int(v, 16) & (1 << (signal.SIGINT - 1)) for v in masks.values())


def _script(tmp_path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _sigkill_all(pids) -> None:
    for pid in pids:  # processes this test started, if a failed run left them
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


# -- 1. SIGINT -------------------------------------------------------------------

def test_sigint_to_a_worker_does_not_end_its_job(tmp_path, flat):
    release, beat = str(tmp_path / "release"), str(tmp_path / "beat")
    with Scheduler(slots=2, history=None) as s:
        job = s.submit(wait_for_file, release, beat, executor="process")
        wait_until(lambda: s.executor("process").worker_pid(job) and _beats(beat) > 0, timeout=30)
        pid = s.executor("process").worker_pid(job)
        os.kill(pid, signal.SIGINT)
        wait_until(lambda: not _sigint_pending(pid), timeout=10)
        seen = _beats(beat)
        # ~40 more loops of the job after the signal, or its end
        wait_until(lambda: job.state != RUNNING or _beats(beat) >= seen + 40, timeout=30)
        open(release, "w").close()
        assert job.wait(30)
        assert job.state == DONE, job.error
        assert job.result() == "finished"


def test_sigint_to_the_forkserver_does_not_break_later_jobs(flat):
    with Scheduler(slots=1, history=None) as s:
        first = s.submit(os.getpid, executor="process").result(timeout=30)
        server = multiprocessing.forkserver._forkserver._forkserver_pid
        assert server is not None and pid_alive(server)
        os.kill(server, signal.SIGINT)
        wait_until(lambda: not pid_alive(server) or not _sigint_pending(server), timeout=10)
        crash = s.submit(exit_now, 3, executor="process")  # so the next job needs a new worker
        assert crash.wait(30) and crash.state == FAILED
        second = s.submit(os.getpid, executor="process").result(timeout=30)
        assert second != first and pid_alive(server)


def test_sigint_to_the_whole_process_group_spares_the_jobs(tmp_path, flat):
    """As a kernel "Interrupt" does: SIGINT to the group of a process that
    runs process jobs (its forkserver and workers are in that group)."""
    release = str(tmp_path / "release")
    script = _script(tmp_path, "group.py", f"""
        import json, os, signal, sys, threading, time
        import multiprocessing.forkserver
        from notebook_ext.core import Scheduler
        from notebook_ext.testing import wait_until

        def wait_for_file(release, beat):
            while not os.path.exists(release):
                with open(beat, "ab") as f:
                    f.write(b".")
                time.sleep(0.005)
            return "finished"

        if __name__ == "__main__":
            interrupted = threading.Event()
            signal.signal(signal.SIGINT, lambda *_: interrupted.set())
            s = Scheduler(slots=2, history=None)
            beats = [{str(tmp_path)!r} + f"/beat{{i}}" for i in range(2)]
            jobs = [s.submit(wait_for_file, {release!r}, b, executor="process") for b in beats]
            ex = s.executor("process")
            wait_until(lambda: all(ex.worker_pid(j) for j in jobs)
                       and all(os.path.exists(b) for b in beats), timeout=60)
            print("ready", flush=True)
            interrupted.wait(60)
            seen = [os.path.getsize(b) for b in beats]
            wait_until(lambda: any(j.state != "running" for j in jobs)
                       or all(os.path.getsize(b) >= n + 40 for b, n in zip(beats, seen)), timeout=60)
            open({release!r}, "w").close()
            out = {{"states": [j.wait(30) and j.state for j in jobs],
                    "errors": [j.error for j in jobs],
                    "later": s.submit(os.getpid, executor="process").result(timeout=30) > 0}}
            print(json.dumps(out), flush=True)
            s.shutdown()
    """)
    proc = subprocess.Popen([sys.executable, script], stdout=subprocess.PIPE, text=True,
                            env=_env(), start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        os.killpg(proc.pid, signal.SIGINT)
        out = json.loads(proc.stdout.readline())
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert out == {"states": ["done", "done"], "errors": [None, None], "later": True}


# -- 2. no orphans ---------------------------------------------------------------

def test_no_process_outlives_a_sigkilled_parent(tmp_path, flat):
    script = _script(tmp_path, "parent.py", """
        import json, os, threading, time
        import multiprocessing.forkserver, multiprocessing.resource_tracker
        from notebook_ext.core import Scheduler
        from notebook_ext.testing import wait_until

        def spin():
            while True:
                time.sleep(0.01)

        if __name__ == "__main__":
            s = Scheduler(slots=2, history=None)
            jobs = [s.submit(spin, executor="process") for _ in range(2)]
            ex = s.executor("process")
            wait_until(lambda: all(ex.worker_pid(j) for j in jobs), timeout=60)
            print(json.dumps({
                "workers": [ex.worker_pid(j) for j in jobs],
                "forkserver": multiprocessing.forkserver._forkserver._forkserver_pid,
                "tracker": multiprocessing.resource_tracker._resource_tracker._pid,
            }), flush=True)
            threading.Event().wait()
    """)
    proc = subprocess.Popen([sys.executable, script], stdout=subprocess.PIPE, text=True,
                            env=_env(), start_new_session=True)
    pids: list[int] = []
    try:
        info = json.loads(proc.stdout.readline())
        pids = info["workers"] + [info["forkserver"], info["tracker"]]
        assert len(set(pids)) == 4 and all(pid_alive(p) for p in pids)
        proc.kill()
        proc.wait()
        t0 = time.monotonic()
        try:
            wait_until(lambda: not any(pid_alive(p) for p in pids), timeout=10)
        finally:
            left = {name: [p for p in (v if isinstance(v, list) else [v]) if pid_alive(p)]
                    for name, v in info.items()}
        assert not any(left.values()), f"still alive 10 s after the parent died: {left}"
        assert time.monotonic() - t0 < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _sigkill_all(pids)


# -- 3. receiver churn -----------------------------------------------------------

ROUNDS, PER_ROUND = 5, 100  # 5 x (100 cancelled + 100 crashing): 1,000 dead workers in a row


@pytest.mark.slow
def test_receiver_survives_churn_of_killed_and_crashing_workers(flat):
    """Also: the 1,000 dead workers leave the fds where they were while the
    scheduler and every finished job (their errors included) are still
    alive, as in a kernel (each used to keep two pipe fds: 32 -> 1,047)."""
    with Scheduler(slots=2, history=None) as s:
        ex = s.executor("process")
        assert s.submit(steps, 1, executor="process").result(timeout=30) == 1
        before = resources()  # the scheduler up, one slot's worker alive
        for _ in range(ROUNDS):
            spinners, crashers = [], []
            for _ in range(PER_ROUND):
                spinners.append(s.submit(spin, executor="process"))
                crashers.append(s.submit(exit_now, 3, executor="process"))
            for job in spinners:
                wait_until(lambda job=job: job.state != "queued", timeout=60)
                job.cancel("churn")
            for job in spinners + crashers:
                assert job.wait(60)
            assert {j.state for j in spinners} == {CANCELLED}
            assert {j.state for j in crashers} == {FAILED}
            wrong = [j.error for j in crashers
                     if not (isinstance(j.exception(), WorkerDied) and "exit code 3" in j.error)]
            assert not wrong
        assert ex._receiver.is_alive()
        assert_flat(before, slack=2)
        later = [s.submit(steps, 8, executor="process") for _ in range(10)]
        seen: dict[int, set] = {j.id: set() for j in later}
        s.subscribe(lambda snap: seen[snap.id].add(snap.progress.done)
                    if snap.id in seen and snap.state == RUNNING else None)
        assert [j.result(timeout=60) for j in later] == [8] * 10
        assert all(j.progress.done == 8 for j in later)
        assert all(seen[j.id] & set(range(1, 8)) for j in later), seen
        assert ex._receiver.is_alive()


def test_receiver_survives_garbage_in_a_progress_pipe(flat):
    with Scheduler(slots=1, history=None) as s:
        ex = s.executor("process")
        assert s.submit(send_garbage, executor="process").result(timeout=30) == "sent"
        wait_until(lambda: ex.receiver_errors >= 3, timeout=10)
        assert ex._receiver.is_alive()
        seen: set = set()
        s.subscribe(lambda snap: seen.add(snap.progress.done) if snap.state == RUNNING else None)
        job = s.submit(steps, 10, executor="process")  # same slot, same worker, same pipe
        assert job.result(timeout=30) == 10
        assert seen & set(range(1, 10))


# -- 4. a worker that cannot start -------------------------------------------------

def test_a_worker_that_cannot_start_says_why(tmp_path, flat):
    script = textwrap.dedent("""
        from notebook_ext.core import Scheduler

        def double(x):
            return 2 * x

        with Scheduler(slots=1, history=None) as s:
            job = s.submit(double, 21, executor="process")
            job.wait(60)
            print(job.state)
            print(job.error)
    """)
    done = subprocess.run([sys.executable, "-"], check=False, input=script, capture_output=True, text=True,
                          env=_env(), cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    state, error = done.stdout.strip().split("\n", 1)
    assert state == FAILED
    assert "could not start" in error and "<stdin>" in error, error
    assert "executor='thread'" in error and "killed or crashed" not in error


# -- 5. how a worker or its job ends -----------------------------------------------

@pytest.mark.parametrize("fn, arg, says", [
    (exit_now, 3, "exit code 3"),
    (kill_self, signal.SIGKILL, "SIGKILL"),
    (kill_self, signal.SIGTERM, "SIGTERM"),
    (segfault, None, "SIGSEGV"),
], ids=["exit-3", "sigkill", "sigterm", "segfault"])
def test_a_dying_worker_fails_its_job_and_the_slot_is_replaced(fn, arg, says, flat):
    with Scheduler(slots=1, history=None) as s:
        job = s.submit(fn, *([] if arg is None else [arg]), executor="process")
        assert job.wait(30) and job.state == FAILED
        assert isinstance(job.exception(), WorkerDied) and says in job.error, job.error
        assert s.submit(steps, 2, executor="process").result(timeout=30) == 2


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(3), GeneratorExit(), ValueError("bad")],
                         ids=lambda e: type(e).__name__)
def test_a_job_raising_any_exception_fails_with_it(exc, flat):
    with Scheduler(slots=1, history=None) as s:
        job = s.submit(raise_it, exc, executor="process")
        assert job.wait(30) and job.state == FAILED
        assert type(job.exception()) is type(exc), repr(job.exception())
        assert s.submit(steps, 2, executor="process").result(timeout=30) == 2


def test_an_unpicklable_result_fails_naming_pickling(flat):
    with Scheduler(slots=1, history=None) as s:
        job = s.submit(lock_result, executor="process")
        assert job.wait(30) and job.state == FAILED
        assert "pickle" in job.error, job.error
        fn = s.submit(lambda_result, executor="process").result(timeout=30)  # cloudpickle sends it
        assert fn(1) == 2
        assert s.submit(steps, 2, executor="process").result(timeout=30) == 2


@pytest.mark.slow
def test_a_300_mb_result_arrives(flat):
    with Scheduler(slots=1, history=None) as s:
        job = s.submit(big_result, 300_000_000, executor="process")
        value = job.result(timeout=120)
        assert len(value) == 300_000_000 and value[:1] == value[-1:] == b"x"
        del value


def test_resources_are_flat_after_a_fault_case_and_its_shutdown():
    """The `flat` check itself: a scheduler that ran process jobs, once shut
    down, leaves no thread, fd or process behind."""
    before = resources()
    s = Scheduler(slots=2, history=None)
    assert s.submit(steps, 2, executor="process").result(timeout=30) == 2
    assert resources()["children"] > before["children"]
    s.shutdown()
    assert_flat(before, slack=2)


# -- exit status read by two threads -------------------------------------------

@pytest.mark.parametrize("guarded", [True, False])
def test_exit_status_read_by_two_threads_at_once(guarded, monkeypatch, flat):
    """CPython lets two threads drain a forkserver worker's one status
    message; the loser records 255. Forced here: both readers meet at a
    barrier inside the read. The process executor starts its workers and
    reads their statuses under one lock (`_START_AND_REAP`): one at a time."""
    import multiprocessing
    from multiprocessing import forkserver

    from notebook_ext.executors._process import _START_AND_REAP

    proc = multiprocessing.get_context("forkserver").Process(target=os._exit, args=(3,))
    proc.start()
    from multiprocessing.connection import wait
    wait([proc.sentinel], 30)  # dead: its status is waiting on the socket
    both_inside = threading.Barrier(2)
    read = forkserver.read_signed

    def read_when_both_are_inside(fd):
        try:
            both_inside.wait(timeout=1)  # the guard keeps the second reader out: gives up
        except threading.BrokenBarrierError:
            pass
        return read(fd)

    monkeypatch.setattr(forkserver, "read_signed", read_when_both_are_inside)
    codes = []

    def status():
        if guarded:  # as the executor reads a worker's status
            with _START_AND_REAP:
                proc.join(5)
                codes.append(proc.exitcode)
        else:  # as two unguarded pollers do (a pool's join, another thread's Process.start)
            codes.append(proc._popen.poll())

    readers = [threading.Thread(target=status) for _ in range(2)]
    for t in readers:
        t.start()
    for t in readers:
        t.join(10)
    if guarded:
        assert codes == [3, 3]
    else:  # the race the guard is for, shown: one reader got end-of-file
        assert sorted(codes) == [3, 255]
