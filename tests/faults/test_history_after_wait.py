"""Fault: a job's final state reached its waiters before the history.

`Job._finish` woke `result()` / `wait()` and only then queued the history
row, so a cell that read the history right after waiting (`nx.history()`,
`%resume`, `%jobs --history`) could see the job still `running`, and
`resume` would act on a job that had already finished. A slow done
callback (a job that deletes its checkpoint files has one) made the
window wide."""

import threading

from notebook_ext import Scheduler


def test_history_has_the_final_state_as_soon_as_a_waiter_wakes(tmp_path):
    sched = Scheduler(2, history=tmp_path / "h.sqlite3")
    try:
        stale = []
        for i in range(20):
            release = threading.Event()
            job = sched.submit(release.wait, 10, name=f"j{i}")
            job.add_done_callback(lambda j: threading.Event().wait(0.05))  # a slow observer, not a sync
            release.set()
            job.result(timeout=10)
            (record,) = [r for r in sched.store.load(sessions="current") if r.name == f"j{i}"]
            if record.state != "done":
                stale.append((i, record.state))
        assert stale == []
    finally:
        sched.shutdown()


def test_a_waiter_wakes_after_the_done_callbacks_ran(tmp_path):
    """`--out VAR` is a done callback: `%wait` returned before it had assigned
    the variable, and a finished training job's checkpoint was still on disk
    when `result()` returned."""
    sched = Scheduler(2, history=None)
    try:
        late = []
        for i in range(20):
            release = threading.Event()
            seen = []
            job = sched.submit(release.wait, 10, name=f"j{i}")

            def callback(j, seen=seen):
                threading.Event().wait(0.02)  # a slow observer, not a sync
                assert j.result() is True  # a callback may read the result on the finishing thread
                seen.append(j.state)

            job.add_done_callback(callback)
            release.set()
            sched.wait(job) if i % 2 else job.result(timeout=10)
            if seen != ["done"]:
                late.append(i)
        assert late == []
    finally:
        sched.shutdown()
