"""A search card tells the truth: the leaderboard says how many candidates
it leaves out, the sub-jobs are counted in words, and the executor named is
the one the (candidate, fold) items ran on."""

import json
import threading

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from faults.conftest import kernel, run_in  # noqa: F401 - the real-kernel fixture, shared
from notebook_ext.core import Scheduler, current_job
from notebook_ext.ml import search
from notebook_ext.testing import wait_until
from notebook_ext.ui import snapshot_state
from notebook_ext.ui._render import children_summary

GRID_16 = {"max_depth": [1, 2, 3, 4], "min_samples_leaf": [1, 2, 4, 8]}


@pytest.fixture
def sched():
    s = Scheduler(slots=2, history=None)
    yield s
    s.shutdown()


@pytest.mark.kernel
@pytest.mark.slow
def test_a_16_candidate_search_card_says_what_it_leaves_out(kernel):
    kc = kernel()
    run_in(kc, "%load_ext notebook_ext\nimport json, notebook_ext as nx\n"
               "from sklearn.datasets import load_iris\nfrom sklearn.tree import DecisionTreeClassifier\n"
               "from notebook_ext.testing import wait_until\n"
               "X, y = load_iris(return_X_y=True)\n"
               f"grid = {GRID_16!r}\n")
    run_in(kc, "%search DecisionTreeClassifier(random_state=0) grid X y --cv 3 --executor thread -n grid16")
    msgs = run_in(kc, "job = nx.jobs['grid16']\njob.result(45)\ncard = nx.ui.card(job)\n"
                      "wait_until(lambda: card.snap['state'] == 'done' and card.snap['children'], timeout=45)\n"
                      "print(json.dumps(card.snap))")
    snap = json.loads("".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream"))
    assert snap["total"] == 16 and len(snap["leaderboard"]) < 16  # the card shows fewer rows ...
    assert snap["leaderboard_note"] == f"showing the best {len(snap['leaderboard'])} of 16 candidates"  # says so
    assert snap["children_text"] == "1 sub-job done"  # the refit, in words (not "1 jobs: 1 done")
    assert snap["executor"] == "thread"  # where the folds ran, not "loop"


def test_a_search_that_shows_every_candidate_adds_no_note(sched):
    X, y = load_iris(return_X_y=True)
    job = search(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3]}, X, y, cv=3,
                 executor="thread", refit=False, scheduler=sched)
    job.result(timeout=60)
    state = snapshot_state(job.snapshot())
    assert len(state["leaderboard"]) == 3 and state["leaderboard_note"] is None


def test_while_running_the_note_counts_the_candidates_not_yet_scored(sched):
    X, y = load_iris(return_X_y=True)
    gate, first = threading.Event(), threading.Lock()

    class Gated(LogisticRegression):
        def fit(self, X, y):
            if self.C > 1 and first.acquire(blocking=False):  # one fold of one candidate waits for the test
                gate.wait(30)
            return super().fit(X, y)

    job = search(Gated(max_iter=500), {"C": [0.5, 1.0, 2.0]}, X, y, cv=2, executor="thread", refit=False,
                 scheduler=sched)
    try:
        # the costliest (C=2) goes first, one of its folds waits; the other two are scored
        wait_until(lambda: len(job.snapshot().detail.leaderboard) == 2, timeout=60)
        assert snapshot_state(job.snapshot())["leaderboard_note"] == "showing 2 of 3 candidates (1 not scored yet)"
    finally:
        gate.set()
    job.result(timeout=60)
    assert snapshot_state(job.snapshot())["leaderboard_note"] is None


def test_the_children_summary_in_words_for_one_and_for_three_children(sched):
    release = threading.Event()

    def boom():
        raise ValueError("no")

    async def parent_of(n):
        me = current_job()
        kids = [sched.submit(int, parent=me, name=f"{me.name}-ok")]
        if n == 3:
            kids.append(sched.submit(boom, parent=me, name=f"{me.name}-boom"))
            kids.append(sched.submit(release.wait, 30, parent=me, name=f"{me.name}-waits"))
        for k in kids:
            await k.wait_async()

    one = sched.submit(parent_of, 1, name="one")
    one.result(timeout=30)
    state = snapshot_state(one.snapshot(), children_summary(c.state for c in one.children))
    assert state["children_text"] == "1 sub-job done"

    three = sched.submit(parent_of, 3, name="three")
    try:
        wait_until(lambda: sorted(c.state for c in three.children) == ["done", "failed", "running"], timeout=30)
        state = snapshot_state(three.snapshot(), children_summary(c.state for c in three.children))
        assert state["children_text"] == "3 sub-jobs: 1 running, 1 done, 1 failed"
    finally:
        release.set()
    three.result(timeout=30)
    state = snapshot_state(three.snapshot(), children_summary(c.state for c in three.children))
    assert state["children_text"] == "3 sub-jobs: 2 done, 1 failed"


@pytest.mark.slow
def test_a_search_on_dask_names_dask_as_its_executor():
    distributed = pytest.importorskip("distributed")
    from notebook_ext import use_dask

    X, y = load_iris(return_X_y=True)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        s = Scheduler(slots=2, history=None)
        try:
            use_dask(client, scheduler=s)
            job = search(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3]}, X, y, cv=3,
                         executor="dask", refit=False, scheduler=s)
            job.result(timeout=120)
            snap = job.snapshot()
            assert snap.executor == "dask"  # the (candidate, fold) items ran there, not on "loop"
            assert snapshot_state(snap)["executor"] == "dask"  # and the card says so
            assert job.record.executor == "dask"  # as does the history
        finally:
            s.shutdown()
