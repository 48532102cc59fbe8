"""Fault: `%retry` of a pipeline whose items failed in two different stages
raised "-2 of 2 items were lost inside notebook_ext" instead of retrying
them. The retry runs one group per stage, and the second group's start
count was put into the run's own `consumed`, which its completeness check
compares with the items it fed."""

from notebook_ext import Scheduler, pipeline, stage
from notebook_ext.ml import preprocess, retry_failed


def test_retrying_items_that_failed_in_two_stages(tmp_path):
    sched = Scheduler(2, history=None)
    broken = {"a": {3, 4}, "b": {7, 8}}

    def a(i):
        if i in broken["a"]:
            raise ValueError(f"a {i}")
        return i

    def b(i):
        if i in broken["b"]:
            raise ValueError(f"b {i}")
        return i * 10

    try:
        job = preprocess(pipeline(list(range(10)), stage(a), stage(b)), scheduler=sched)
        first = job.result(30)
        assert sorted(first.failed) == [3, 4, 7, 8]
        broken["a"], broken["b"] = set(), set()
        again = retry_failed(job)
        result = again.result(30)
        assert again.state == "done" and result.ok
        assert result.results == [i * 10 for i in range(10)]
        # counted against the original run (issue 27): its 6 good items, then the 4 retried
        assert (again.progress.done, again.progress.total) == (10, 10)
        assert again.progress.message.startswith("retry of 4 failed items: 4 ok, 0 failed"), again.progress
    finally:
        sched.shutdown()
