"""Bursts of submissions: a burst reaches the loop as one batch, and nothing
about a job changes for it (its states, its history, its cancel, its wait)."""

import asyncio

import pytest

from notebook_ext.core import CANCELLED, DONE, Scheduler
from notebook_ext.executors import LoopExecutor
from notebook_ext.testing import wait_until


class Picky(LoopExecutor):
    """A loop executor that refuses to pack one argument, as the process
    executor refuses what cannot be pickled."""

    name = "picky"

    def prepare(self, job):
        if job.args == ("bad",):
            raise TypeError("`args` cannot be packed: 'bad'")


async def echo(x):
    await asyncio.sleep(0)
    return x


@pytest.fixture
def sched():
    s = Scheduler(slots=2, history=None, executors=[Picky()])
    yield s
    s.shutdown()


def test_a_burst_keeps_every_state_transition_and_record(tmp_path):
    with Scheduler(slots=2, history=tmp_path / "h.sqlite") as s:
        seen = []
        s.subscribe(lambda snap: seen.append((snap.name, snap.state)))
        jobs = [s.submit(echo, i) for i in range(50)] + s.submit_many(echo, range(50, 100))
        s.wait(*jobs, timeout=30)
        assert [j.result() for j in jobs] == list(range(100))
        assert all(j.state == DONE and j.started is not None and j.ended >= j.started for j in jobs)
        wait_until(lambda: {name for name, state in seen if state == DONE} == {j.name for j in jobs})
        s.store.flush()
        for job in jobs[::7]:
            states = [state for state, _ in s.store.transitions(f"{s.session}:{job.id}")]
            assert states == ["pending", "queued", "running", "done"], (job.name, states)


def test_a_job_refused_halfway_through_submit_many_leaves_the_others_running(sched):
    with pytest.raises(TypeError, match="cannot be packed"):
        sched.submit_many(echo, ["a", "b", "bad", "c"], executor="picky")
    made = sched.all_jobs()
    assert len(made) == 2  # the refused job never existed, the one after it was never made
    sched.wait(*made, timeout=10)
    assert [j.result(timeout=5) for j in made] == ["a", "b"]


def test_cancel_right_after_submit_in_a_burst_cancels_before_the_job_runs(sched):
    ran = []

    async def note(i):
        ran.append(i)

    gate = asyncio.Event()

    async def hold():
        await asyncio.wait_for(gate.wait(), 10)

    holders = [sched.submit(hold) for _ in range(256)]  # every loop slot taken
    jobs = [sched.submit(note, i) for i in range(20)]
    assert jobs[7].cancel("not this one")
    assert jobs[7].state == CANCELLED  # confirmed before cancel() returned
    sched.loop_thread.call_soon(gate.set)
    sched.wait(*holders, *jobs, timeout=30)
    assert 7 not in ran and sorted(ran) == [i for i in range(20) if i != 7]
    assert jobs[7].cancelled_caught and jobs[7].error == "not this one"


def test_wait_returns_when_jobs_end_out_of_submission_order(sched):
    async def sleeps(delay):
        await asyncio.sleep(delay)
        return delay

    jobs = [sched.submit(sleeps, d) for d in (0.3, 0.0, 0.1, 0.0)]
    done, pending = sched.wait(*jobs, timeout=10)
    assert len(done) == 4 and not pending
    assert [j.result() for j in jobs] == [0.3, 0.0, 0.1, 0.0]
