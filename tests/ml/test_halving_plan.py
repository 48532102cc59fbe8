"""Successive halving run rung by rung with notebook_ext.ml._halving gives
what scikit-learn's HalvingGridSearchCV / HalvingRandomSearchCV give: the
same plan, the same rows per rung, the same survivors in the same order,
the same scores and the same winner."""

import math

import numpy as np
import pytest
from scipy.stats import randint
from sklearn.base import clone, is_classifier
from sklearn.datasets import load_breast_cancer, load_digits, load_iris
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.experimental import enable_halving_search_cv  # noqa: F401  (enables the import below)
from sklearn.model_selection import HalvingGridSearchCV, HalvingRandomSearchCV, ParameterGrid, ParameterSampler, check_cv
from sklearn.model_selection._search_successive_halving import BaseSuccessiveHalving, _top_k  # the reference
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from notebook_ext.ml._halving import (
    HalvingPlan,
    best_index,
    check_resource_not_searched,
    plan_halving,
    rung_candidates,
    rung_splits,
    top_k,
)


def _plan_for(search, n_candidates, X, y):
    est = search.estimator
    splitter = check_cv(search.cv, y, classifier=is_classifier(est))
    return plan_halving(n_candidates, len(X), factor=search.factor, resource=search.resource,
                        min_resources=search.min_resources, max_resources=search.max_resources,
                        aggressive_elimination=search.aggressive_elimination,
                        n_splits=splitter.get_n_splits(X, y), n_classes=len(np.unique(y)), estimator=est)


def _assert_plan_equals(plan, search):
    assert plan.n_resources == tuple(search.n_resources_)
    assert plan.n_candidates == tuple(search.n_candidates_)
    assert plan.n_iterations == search.n_iterations_
    assert plan.n_required_iterations == search.n_required_iterations_
    assert plan.n_possible_iterations == search.n_possible_iterations_
    assert plan.min_resources == search.min_resources_ and type(plan.min_resources) is type(search.min_resources_)
    assert plan.max_resources == search.max_resources_
    assert plan.n_remaining_candidates == search.n_remaining_candidates_


def _run_rungs(estimator, candidates, X, y, splits, plan, random_state):
    """What our scheduler does: every (candidate, fold) of a rung, then top_k."""
    params, means, iters, folds_of = [], [], [], []
    for rung, n_resources in enumerate(plan.n_resources):
        candidates = rung_candidates(candidates, plan.resource, n_resources)
        folds = rung_splits(splits, n_resources, len(X), random_state=random_state, resource=plan.resource)
        folds_of.append(folds)
        rung_means = []
        for p in candidates:
            scores = []
            for train, test in folds:
                model = clone(estimator).set_params(**p).fit(X[train], y[train])
                scores.append(float(model.score(X[test], y[test])))
            rung_means.append(float(np.mean(scores)))
        params += candidates
        means += rung_means
        iters += [rung] * len(candidates)
        candidates = top_k(candidates, rung_means, plan.n_kept(rung))
    return params, np.array(means), np.array(iters), candidates, folds_of


def _assert_same_search(search, params, means, iters, survivors):
    res = search.cv_results_
    assert np.array_equal(iters, res["iter"])
    for rung in range(search.n_iterations_):
        mine = [p for p, i in zip(params, iters) if i == rung]
        theirs = [p for p, i in zip(res["params"], res["iter"]) if i == rung]
        assert mine == theirs, f"rung {rung}: candidates or their order differ"
    np.testing.assert_allclose(means, res["mean_test_score"], rtol=0, atol=1e-12)
    assert len(survivors) == search.n_remaining_candidates_
    best = best_index(means, iters)
    assert best == search.best_index_
    assert params[best] == search.best_params_
    assert means[best] == pytest.approx(search.best_score_, abs=1e-12)


@pytest.mark.parametrize("aggressive", [False, True])
def test_svc_digits_grid_of_64_on_n_samples_equals_halving_grid_search(aggressive):
    X, y = load_digits(return_X_y=True)
    X, y = X[:900] / 16.0, y[:900]
    grid = {"C": list(np.logspace(-2, 5, 8)), "gamma": list(np.logspace(-5, -1, 8))}
    est = SVC()
    search = HalvingGridSearchCV(est, grid, factor=3, random_state=0, n_jobs=1,
                                 aggressive_elimination=aggressive).fit(X, y)

    candidates = list(ParameterGrid(grid))
    plan = _plan_for(search, len(candidates), X, y)
    _assert_plan_equals(plan, search)
    assert plan.n_iterations == (4 if aggressive else 3)
    assert len(set(plan.n_resources)) < plan.n_iterations or not aggressive  # aggressive repeats the first

    splits = list(check_cv(5, y, classifier=True).split(X, y))
    params, means, iters, survivors, folds_of = _run_rungs(est, candidates, X, y, splits, plan, 0)
    _assert_same_search(search, params, means, iters, survivors)
    # the rows really are a subsample: each fold of a rung holds at most n_resources rows, train plus test
    for folds, n_resources in zip(folds_of, plan.n_resources):
        assert all(n_resources - 2 <= len(tr) + len(te) <= n_resources for tr, te in folds)
    # ties at chance level are frequent on 100 rows, so the order test above means something
    first = means[iters == 0]
    assert len(np.unique(first)) < len(first)


def test_random_forest_with_n_estimators_as_the_resource_equals_halving_grid_search():
    X, y = load_breast_cancer(return_X_y=True)
    X, y = X[:300], y[:300]
    grid = {"max_depth": [1, 2, 3], "max_features": [0.2, 0.5, 1.0]}
    est = RandomForestClassifier(random_state=0)
    search = HalvingGridSearchCV(est, grid, factor=2, resource="n_estimators", min_resources=4,
                                 max_resources=32, cv=3, random_state=0, n_jobs=1).fit(X, y)

    candidates = list(ParameterGrid(grid))
    check_resource_not_searched(candidates, "n_estimators")
    plan = _plan_for(search, len(candidates), X, y)
    _assert_plan_equals(plan, search)
    assert plan.n_resources == (4, 8, 16, 32)

    splits = list(check_cv(3, y, classifier=True).split(X, y))
    params, means, iters, survivors, folds_of = _run_rungs(est, candidates, X, y, splits, plan, 0)
    _assert_same_search(search, params, means, iters, survivors)
    assert search.best_params_["n_estimators"] == 32  # the resource is part of the stored params
    for folds in folds_of:  # a parameter resource keeps the full folds
        assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(folds, splits))


def test_random_search_exhaust_with_a_randomstate_instance_equals_halving_random_search():
    X, y = load_iris(return_X_y=True)
    dists = {"max_depth": randint(1, 8), "min_samples_split": randint(2, 12)}
    est = DecisionTreeClassifier(random_state=0)
    search = HalvingRandomSearchCV(est, dists, n_candidates="exhaust", min_resources="smallest", factor=2,
                                   cv=3, random_state=np.random.RandomState(0), n_jobs=1).fit(X, y)

    plan = _plan_for(search, "exhaust", X, y)
    _assert_plan_equals(plan, search)
    rng = np.random.RandomState(0)  # in the state scikit-learn's instance started in
    candidates = list(ParameterSampler(dists, plan.n_candidates[0], random_state=rng))  # draws first, as sklearn
    splits = list(check_cv(3, y, classifier=True).split(X, y))
    params, means, iters, survivors, _ = _run_rungs(est, candidates, X, y, splits, plan, rng)
    _assert_same_search(search, params, means, iters, survivors)


def test_an_int_random_state_draws_the_same_rows_whatever_the_order_of_calls():
    splits = list(check_cv(3, np.arange(90) % 3, classifier=True).split(np.zeros((90, 1)), np.arange(90) % 3))
    late_first = rung_splits(splits, 60, 90, random_state=7)
    early = rung_splits(splits, 30, 90, random_state=7)
    again = rung_splits(splits, 60, 90, random_state=7)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(late_first, again))
    assert [(len(tr), len(te)) for tr, te in early] == [(20, 10)] * 3
    rng = np.random.RandomState(7)
    first, second = rung_splits(splits, 60, 90, random_state=rng), rung_splits(splits, 60, 90, random_state=rng)
    assert not np.array_equal(first[0][0], second[0][0])  # an instance advances


CONFIGS = [
    dict(n=27, n_samples=200),
    dict(n=243, n_samples=2000, cv=2),  # log(243, 3) = 4.999...: five rungs required, not six
    dict(n=100, n_samples=300, factor=2.5),
    dict(n=7, n_samples=150, factor=2.5),  # float factor: min_resources_ = 150 // 2.5**2 = 24.0, a float
    dict(n=50, n_samples=400, factor=2, min_resources="smallest"),
    dict(n=50, n_samples=400, factor=4, min_resources=7, aggressive=True),
    dict(n=30, n_samples=120, factor=2, aggressive=True),
    dict(n=12, n_samples=500, factor=3, max_resources=200, min_resources=10),
    dict(n=1, n_samples=50),
    dict(n=20, n_samples=60, resource="random_state", min_resources=3, max_resources=1000, factor=3),
    dict(n=20, n_samples=60, resource="random_state", min_resources="exhaust", max_resources=100, factor=2,
         aggressive=True),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_plan_equals_sklearns_for_many_settings(cfg):
    n_samples, n_classes = cfg["n_samples"], 2
    X = np.zeros((n_samples, 1))
    y = np.arange(n_samples) % n_classes
    resource = cfg.get("resource", "n_samples")
    key = "constant" if resource != "n_samples" else "random_state"
    grid = {key: list(range(cfg["n"]))}
    search = HalvingGridSearchCV(DummyClassifier(), grid, cv=cfg.get("cv", 2), factor=cfg.get("factor", 3),
                                 resource=resource, min_resources=cfg.get("min_resources", "exhaust"),
                                 max_resources=cfg.get("max_resources", "auto"),
                                 aggressive_elimination=cfg.get("aggressive", False), random_state=0,
                                 n_jobs=1).fit(X, y)
    plan = _plan_for(search, cfg["n"], X, y)
    _assert_plan_equals(plan, search)


def test_top_k_and_best_index_equal_sklearns_on_ties_and_nans():
    rng = np.random.RandomState(0)
    for trial in range(300):
        n = int(rng.randint(1, 60))
        scores = rng.choice([0.1, 0.5, 0.5, 0.9, np.nan], size=n) if trial % 2 else rng.rand(n).round(1)
        iters = np.sort(rng.randint(0, 3, size=n))
        params = [{"i": i} for i in range(n)]
        last = iters.max()
        k = int(rng.randint(1, n + 2))
        results = {"iter": iters, "mean_test_score": scores, "params": params}
        assert top_k(params, scores, k, iterations=iters) == list(_top_k(results, k, last))
        assert best_index(scores, iters) == BaseSuccessiveHalving._select_best_index(None, None, results)
    assert top_k([{"a": 1}, {"a": 2}], [np.nan, np.nan], 1) == [{"a": 2}]
    assert best_index([np.nan, np.nan]) == 0


def test_bad_settings_are_refused_with_a_message_naming_the_setting():
    def plan(**kw):
        args = dict(n_splits=5, n_classes=None)
        args.update(kw)
        return plan_halving(args.pop("n", 10), args.pop("n_samples", 100), **args)

    with pytest.raises(ValueError, match="`factor` must be a number greater than 1, got 1"):
        plan(factor=1)
    with pytest.raises(ValueError, match="`factor`"):
        plan(factor=0.5)
    with pytest.raises(ValueError, match=r"min_resources_=200 is greater than max_resources_=100\."):
        plan(min_resources=200)
    with pytest.raises(ValueError, match="resource can only be 'n_samples' when max_resources='auto'"):
        plan(resource="n_estimators")
    with pytest.raises(ValueError, match="Cannot use resource=foo which is not supported by estimator SVC"):
        plan(resource="foo", max_resources=10, estimator=SVC())
    with pytest.raises(ValueError, match="cannot be both set to 'exhaust'"):
        plan(n="exhaust")
    with pytest.raises(ValueError, match="`min_resources` must be a positive integer"):
        plan(min_resources=0)
    with pytest.raises(ValueError, match="`min_resources`"):
        plan(min_resources=True)
    with pytest.raises(ValueError, match="`max_resources`"):
        plan(max_resources="all")
    with pytest.raises(ValueError, match="`n_candidates`"):
        plan(n=0)
    with pytest.raises(ValueError, match="`n_classes` is needed for the classifier SVC"):
        plan(estimator=SVC())
    with pytest.raises(ValueError, match="`aggressive_elimination`"):
        plan(aggressive_elimination=1)
    with pytest.raises(ValueError, match="Cannot use parameter n_estimators as the resource"):
        check_resource_not_searched([{"max_depth": 1}, {"n_estimators": 3}], "n_estimators")
    with pytest.raises(ValueError, match="leaves no test row"):
        rung_splits([(np.arange(8), np.arange(8, 10))], 2, 10, random_state=0)
    with pytest.raises(ValueError, match="`k` must be a positive integer"):
        top_k([{}], [0.5], 0)
    # and what scikit-learn says for the same settings
    X, y = np.zeros((100, 1)), np.arange(100) % 2
    with pytest.raises(ValueError, match=r"min_resources_=200 is greater than max_resources_=100\."):
        HalvingGridSearchCV(DummyClassifier(), {"random_state": list(range(10))}, min_resources=200).fit(X, y)
    with pytest.raises(ZeroDivisionError):  # why we refuse factor <= 1 up front
        HalvingGridSearchCV(DummyClassifier(), {"random_state": list(range(10))}, factor=1).fit(X, y)


def test_a_classifier_multiplies_the_smallest_rung_by_its_classes_and_a_regressor_does_not():
    from sklearn.svm import SVR

    assert plan_halving(10, 1000, min_resources="smallest", n_splits=5, n_classes=4,
                        estimator=SVC()).min_resources == 40
    assert plan_halving(10, 1000, min_resources="smallest", n_splits=5, n_classes=4,
                        estimator=SVR()).min_resources == 10
    assert plan_halving(10, 1000, min_resources="smallest", n_splits=5, n_classes=None).min_resources == 10
    p = plan_halving(10, 1000, resource="max_iter", max_resources=81, min_resources="smallest",
                     n_splits=5, n_classes=4)
    assert isinstance(p, HalvingPlan) and p.min_resources == 1 and p.n_resources == (1, 3, 9)
    assert p.n_kept(0) == math.ceil(10 / 3) == p.n_candidates[1]
