"""What job code can throw at us, per executor: every kind of
BaseException, huge output, markup in names. Each fails (or finishes) only
its own job; the next job of that executor runs."""

from __future__ import annotations

import asyncio

import pytest

from notebook_ext.core import Scheduler
from notebook_ext.ui import jobs_table, summary_html


class Custom(BaseException):
    """Not an Exception: what some libraries raise to unwind."""


RAISES = {
    "KeyboardInterrupt": KeyboardInterrupt,
    "SystemExit": lambda: SystemExit(3),
    "GeneratorExit": GeneratorExit,
    "ValueError": lambda: ValueError("bad value"),
    "Custom": Custom,
}


def raise_(kind):
    raise RAISES[kind]()


async def araise(kind):
    await asyncio.sleep(0)
    raise RAISES[kind]()


def fine():
    return "fine"


async def afine():
    return "fine"


def stop_iteration():
    raise StopIteration(5)


@pytest.mark.parametrize("kind", sorted(RAISES))
@pytest.mark.parametrize("executor", ["loop", "thread"])
def test_every_kind_of_raise_fails_only_its_job(executor, kind, flat):
    with Scheduler(slots=2, history=None) as sched:
        job = sched.submit(araise if executor == "loop" else raise_, kind, executor=executor)
        assert job.wait(30)
        assert job.state == "failed", (job.state, job.error)
        expected = {"Custom": "Custom"}.get(kind, kind)
        assert job.error.split(":")[0] == expected
        assert sched.loop_thread.running
        assert sched.submit(afine if executor == "loop" else fine, executor=executor).result(timeout=30) == "fine"


def test_stop_iteration_from_a_thread_job_is_an_error_not_a_hang(flat):
    with Scheduler(slots=2, history=None) as sched:
        job = sched.submit(stop_iteration)
        assert job.wait(30) and job.state == "failed"
        assert "StopIteration" in job.error


def shout(n_mb):
    print("x" * (n_mb * 1_000_000) + "THE END")


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_50_mb_in_one_print_keeps_its_tail(executor, flat):
    with Scheduler(slots=2, history=None) as sched:
        job = sched.submit(shout, 50, executor=executor)
        job.result(timeout=120)
        out = job.output
        assert out.rstrip().endswith("THE END")
        assert len(out) < 100_000  # bounded: the tail, with a note of what was dropped
        assert "earlier characters dropped" in out


def test_markup_in_names_and_errors_is_escaped_in_html(flat):
    evil = "<img src=x onerror=alert(1)>"
    with Scheduler(slots=2, history=None) as sched:
        job = sched.submit(raise_, "ValueError", name=evil)
        job.wait(10)
        snap = job.snapshot()
        for html in (summary_html(snap), jobs_table([snap])[1]):
            assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
