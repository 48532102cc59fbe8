"""Search: same scores as GridSearchCV, a live leaderboard, cancel reaches
its fold workers, folds go longest first, bad grids are refused."""

import os
import time

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    RandomizedSearchCV,
    StratifiedKFold,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from notebook_ext.core import Scheduler
from notebook_ext.ml import search
from notebook_ext.testing import wait_until


@pytest.fixture
def sched():
    s = Scheduler(slots=2, history=None)
    yield s
    s.shutdown()


def test_scores_equal_gridsearchcv_on_the_same_splitter(sched):
    X, y = load_breast_cancer(return_X_y=True)
    est = make_pipeline(StandardScaler(), SVC())
    grid = {"svc__C": [0.1, 1, 10], "svc__gamma": ["scale", 0.01]}
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    job = search(est, grid, X, y, cv=cv, scheduler=sched)
    ours = job.result(timeout=120)
    ref = GridSearchCV(est, grid, cv=cv).fit(X, y)
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"], atol=1e-9)
    np.testing.assert_array_equal(ours.cv_results_["rank_test_score"], ref.cv_results_["rank_test_score"])
    assert ours.best_params_ == ref.best_params_ and abs(ours.best_score_ - ref.best_score_) < 1e-9
    assert ours.best_estimator_.score(X, y) == pytest.approx(ref.best_estimator_.score(X, y))
    assert [c.kind for c in job.children] == ["refit"]  # the 30 folds were work items, not jobs
    board = job.detail.leaderboard
    assert len(board) == 6 and board[0].rank == 1
    assert [r.mean_score for r in board] == sorted((r.mean_score for r in board), reverse=True)
    assert ours.table[0]["rank"] == 1


def test_random_search_and_thread_executor(sched):
    X, y = load_iris(return_X_y=True)
    dists = {"max_depth": [1, 2, 3, 4, 5, None], "min_samples_leaf": [1, 2, 4, 8]}
    cv = KFold(4, shuffle=True, random_state=1)
    ours = search(DecisionTreeClassifier(random_state=0), dists, X, y, cv=cv, n_iter=5, random_state=3,
                  executor="thread", scheduler=sched).result(60)
    ref = RandomizedSearchCV(DecisionTreeClassifier(random_state=0), dists, n_iter=5, cv=cv,
                             random_state=3).fit(X, y)
    assert ours.cv_results_["params"] == list(ref.cv_results_["params"])
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"], atol=1e-9)


def test_failing_candidate_is_recorded_and_the_search_goes_on(sched):
    X, y = load_iris(return_X_y=True)
    grid = {"C": [1.0, -1.0], "max_iter": [200]}  # C must be positive
    res = search(LogisticRegression(), grid, X, y, cv=3, executor="thread", scheduler=sched).result(60)
    assert np.isnan(res.cv_results_["mean_test_score"][1]) and res.best_params_["C"] == 1.0
    ok, failed = res.table
    assert ok["param_C"] == 1.0 and ok["error"] == ""
    assert failed["param_C"] == -1.0
    assert failed["error"].startswith("InvalidParameterError: The 'C' parameter of LogisticRegression"), failed


class SlowClassifier(ClassifierMixin, BaseEstimator):
    def __init__(self, delay=1.0, marker=None):
        self.delay = delay
        self.marker = marker

    def fit(self, X, y):
        if self.marker:
            with open(self.marker, "a") as f:
                f.write(f"{os.getpid()}\n")
        time.sleep(self.delay)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_cancelling_the_search_stops_its_fold_workers(sched, tmp_path):
    X, y = load_iris(return_X_y=True)
    marker = str(tmp_path / "fitting")
    job = search(SlowClassifier(marker=marker), {"delay": [5.0, 5.1, 5.2, 5.3]}, X, y, cv=3, scheduler=sched)
    wait_until(lambda: os.path.exists(marker) and open(marker).read().strip(), timeout=60)  # a fold is fitting
    job.cancel("changed my mind")
    assert job.wait(5) and job.state == "cancelled"
    pids = {int(p) for p in open(marker).read().split()}  # the worker processes that were fitting folds
    assert pids and os.getpid() not in pids

    def alive(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    # killed, not left to finish their 5 s fits (which would end them within 10 s anyway)
    wait_until(lambda: not any(alive(p) for p in pids), timeout=3, message="fold workers alive after the cancel")


class Recorder(ClassifierMixin, BaseEstimator):
    """Fits instantly; remembers the order candidates were fitted in."""
    order = []

    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        Recorder.order.append(self.C)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_folds_go_longest_expected_first():
    X, y = load_iris(return_X_y=True)
    Recorder.order = []
    grid = {"C": [0.1, 100.0, 1.0, 10.0]}
    with Scheduler(slots=1, history=None) as one:  # one fold at a time: the order is the queue's
        res = search(Recorder(), grid, X, y, cv=3, executor="thread", scheduler=one, refit=False).result(60)
    assert Recorder.order == [100.0] * 3 + [10.0] * 3 + [1.0] * 3 + [0.1] * 3  # biggest C (the longest fit) first
    assert len(res.table) == 4 and all(r["error"] == "" for r in res.table)
    from notebook_ext.ml._search import expected_cost

    assert expected_cost({"n_estimators": 300, "max_depth": 4}) > expected_cost({"n_estimators": 100, "max_depth": 4})
    assert expected_cost({"kernel": "rbf"}) == 1.0


@pytest.mark.parametrize("params, match", [
    ({"gamma_typo": [1]}, "'gamma_typo' is not a parameter of SVC"),
    ({"C": []}, "'C' needs a non-empty list"),
    ({}, "`params` is empty"),
    ("C=1", "`params` must be a dict"),
])
def test_bad_grids_are_refused_before_scheduling(sched, params, match):
    X, y = load_iris(return_X_y=True)
    with pytest.raises((ValueError, TypeError), match=match):
        search(SVC(), params, X, y, scheduler=sched)
    with pytest.raises(TypeError, match="`estimator`"):
        search(object(), {"C": [1]}, X, y, scheduler=sched)
    with pytest.raises(ValueError, match="same number of rows"):
        search(SVC(), {"C": [1]}, X, y[:-1], scheduler=sched)
    assert sched.jobs == {}


@pytest.mark.slow
def test_search_on_dask_gives_the_same_scores_as_local():
    pytest.importorskip("distributed")
    from distributed import get_task_stream

    from notebook_ext import use_dask

    X, y = load_iris(return_X_y=True)
    grid = {"max_depth": [1, 2, 3], "min_samples_leaf": [1, 5]}
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    s = Scheduler(slots=2, history=None)
    try:
        client = use_dask(scheduler=s, n_workers=2)
        with get_task_stream(client) as stream:
            job = search(DecisionTreeClassifier(random_state=0), grid, X, y, cv=cv, executor="dask", scheduler=s)
            on_dask = job.result(120)
        local = search(DecisionTreeClassifier(random_state=0), grid, X, y, cv=cv, executor="process",
                       scheduler=s).result(120)
        assert [c.executor for c in job.children] == ["dask"]  # the refit
        assert any(str(task["key"]).startswith("nbx-items-") for task in stream.data)  # the folds ran there
    finally:
        s.shutdown()
    np.testing.assert_allclose(on_dask.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"],
                               atol=1e-12)
    assert on_dask.best_params_ == local.best_params_
