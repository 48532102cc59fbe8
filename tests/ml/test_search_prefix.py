"""Prefix-aware search over a Pipeline and successive halving (issue 28):
each distinct fitted prefix once per fold, a cache that keeps to its cap,
scores equal to GridSearchCV's; rungs equal to HalvingGridSearchCV's."""

import threading
from collections import Counter

import joblib
import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_digits, load_iris
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, HalvingGridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import notebook_ext.ml as ml
from notebook_ext.core import Scheduler
from notebook_ext.ml._search import _nbytes, _PrefixCache

FITS: Counter = Counter()  # (transformer name, fold fingerprint) -> fits
_LOCK = threading.Lock()


def _fingerprint(X) -> str:
    return joblib.hash(list(X) if isinstance(X, list) else np.asarray(X))


class Counted(BaseEstimator, TransformerMixin):
    """Wraps a transformer and counts its fits per training set."""

    def __init__(self, inner=None, label="t"):
        self.inner, self.label = inner, label

    def fit(self, X, y=None):
        with _LOCK:
            FITS[(self.label, _fingerprint(X))] += 1
        self.inner_ = (self.inner if self.inner is not None else StandardScaler()).__class__(
            **(self.inner or StandardScaler()).get_params()).fit(X, y)
        return self

    def transform(self, X):
        return self.inner_.transform(X)


def _fits(label: str) -> list[int]:
    return sorted(n for (name, _), n in FITS.items() if name == label)


@pytest.fixture
def one_slot():
    FITS.clear()
    s = Scheduler(slots=1, history=None)
    yield s
    s.shutdown()


def _corpus(n=400, seed=0):
    rng = np.random.RandomState(seed)
    words = [f"w{i}" for i in range(300)]
    y = rng.randint(0, 3, n)
    X = [" ".join(rng.choice(words[c * 60:c * 60 + 120] if rng.rand() < 0.7 else words, 25)) for c in y]
    return X, y


def test_each_distinct_prefix_is_fitted_once_per_fold(one_slot):
    X, y = _corpus()
    pipe = Pipeline([("vec", Counted(TfidfVectorizer(), "vec")), ("clf", LogisticRegression(max_iter=300))])
    grid = {"vec__inner": [TfidfVectorizer(min_df=1), TfidfVectorizer(min_df=2), TfidfVectorizer(ngram_range=(1, 2))],
            "clf__C": [0.1, 1, 10, 100]}
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    result = ml.search(pipe, grid, X, y, cv=cv, executor="thread", refit=False, scheduler=one_slot).result(120)
    assert _fits("vec") == [3] * 4  # fits per fold (one training set each) = the 3 distinct prefixes, not 12
    assert result.fits_saved == (12 - 3) * 4

    FITS.clear()
    reference = GridSearchCV(pipe, grid, cv=cv).fit(X, y)
    assert _fits("vec") == [1] + [12] * 4  # GridSearchCV: per (candidate, fold), and its refit on all rows
    np.testing.assert_allclose(result.cv_results_["mean_test_score"], reference.cv_results_["mean_test_score"],
                               rtol=0, atol=1e-9)
    for k in range(4):
        np.testing.assert_allclose(result.cv_results_[f"split{k}_test_score"],
                                   reference.cv_results_[f"split{k}_test_score"], rtol=0, atol=1e-9)
    assert result.best_params_ == reference.best_params_


@pytest.mark.parametrize("scoring", [None, "f1_macro", "callable"])
def test_scores_equal_grid_search_on_a_text_pipeline(scoring):
    X, y = _corpus(300, seed=1)
    if scoring == "callable":
        def scoring(model, X_, y_):  # the user's scorer sees the whole fitted pipeline
            assert isinstance(model, Pipeline) and hasattr(model.named_steps["tfidf"], "vocabulary_")
            return float(np.mean(model.predict(X_) == y_))
    pipe = Pipeline([("tfidf", TfidfVectorizer()), ("clf", LogisticRegression(max_iter=300))])
    grid = {"tfidf__min_df": [1, 2], "tfidf__sublinear_tf": [False, True], "clf__C": [0.5, 5]}
    s = Scheduler(slots=2, history=None)
    try:
        result = ml.search(pipe, grid, X, y, cv=3, scoring=scoring, executor="thread", scheduler=s).result(300)
    finally:
        s.shutdown()
    reference = GridSearchCV(pipe, grid, cv=3, scoring=scoring).fit(X, y)
    np.testing.assert_allclose(result.cv_results_["mean_test_score"], reference.cv_results_["mean_test_score"],
                               rtol=0, atol=1e-9)
    assert result.best_params_ == reference.best_params_
    assert result.fits_saved == (8 - 4) * 3
    assert result.best_estimator_.named_steps["tfidf"].min_df == reference.best_params_["tfidf__min_df"]


def _three_step(cap: int | None, s):
    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scale", Counted(StandardScaler(), "scale")), ("pca", PCA()),
                     ("clf", LogisticRegression(max_iter=500))])
    grid = {"pca__n_components": [1, 2, 3], "clf__C": [0.1, 1]}
    kwargs = {} if cap is None else {"prefix_cache": cap}
    result = ml.search(pipe, grid, X, y, cv=5, executor="thread", refit=False, scheduler=s, **kwargs).result(120)
    return result, pipe, grid, X, y


def _entry_bytes(X, y) -> int:
    """What one cached prefix of the three-step pipeline holds: a fitted scaler, rows through it."""
    train, test = next(StratifiedKFold(5).split(X, y))
    scaler = Counted(StandardScaler(), "probe").fit(X[train])
    return _nbytes(((("scale", scaler),), scaler.transform(X[train]), scaler.transform(X[test])))


def test_a_prefix_of_the_prefix_is_cached_within_its_cap(one_slot):
    result, pipe, grid, X, y = _three_step(None, one_slot)  # default cap: plenty for five scalers
    assert _fits("scale") == [1] * 5  # the scaler: once per fold, shared by the three PCA prefixes
    reference = GridSearchCV(pipe, grid, cv=5, refit=False).fit(X, y)
    np.testing.assert_allclose(result.cv_results_["mean_test_score"], reference.cv_results_["mean_test_score"],
                               rtol=0, atol=1e-9)

    FITS.clear()
    one = _entry_bytes(X, y)
    result, *_ = _three_step(int(one * 1.5), one_slot)  # room for one fold's scaler at a time
    # items go (prefix, fold) by prefix: with one entry, every next fold evicts the last one
    assert _fits("scale") == [3] * 5  # evicted, so fitted again: once per PCA prefix per fold
    np.testing.assert_allclose(result.cv_results_["mean_test_score"], reference.cv_results_["mean_test_score"],
                               rtol=0, atol=1e-9)

    FITS.clear()
    _three_step(0, one_slot)  # no cache
    assert _fits("scale") == [3] * 5


def test_the_cache_never_holds_more_than_its_cap():
    cache = _PrefixCache(cap=10_000)
    rows = np.zeros((100, 4))  # 3,200 bytes, twice in an entry
    for k in range(6):
        cache.put(k, ((), rows, rows))
        assert cache.used <= cache.cap
    assert cache.peak <= cache.cap and cache.evicted == 5  # one entry (6,400 B + its steps) fits at a time
    assert cache.get(5) is not None and cache.get(0) is None  # least recently used went first
    cache.put("big", ((), np.zeros((1000, 4)), rows))  # bigger than the cap: not kept at all
    assert cache.get("big") is None and cache.get(5) is not None


def test_a_pipeline_wide_parameter_fits_every_candidate_whole(one_slot):
    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scale", Counted(StandardScaler(), "scale")), ("clf", LogisticRegression(max_iter=500))])
    grid = {"clf__C": [0.1, 1], "verbose": [False]}
    result = ml.search(pipe, grid, X, y, cv=3, executor="thread", refit=False, scheduler=one_slot).result(60)
    assert _fits("scale") == [2] * 3 and result.fits_saved == 0
    reference = GridSearchCV(pipe, grid, cv=3, refit=False).fit(X, y)
    np.testing.assert_allclose(result.cv_results_["mean_test_score"], reference.cv_results_["mean_test_score"],
                               rtol=0, atol=1e-9)


# -- successive halving ------------------------------------------------------


def _per_rung(cv_results) -> list[list[dict]]:
    iters = np.asarray(cv_results["iter"])
    return [[cv_results["params"][i] for i in np.flatnonzero(iters == r)] for r in range(iters.max() + 1)]


def test_halving_equals_halving_grid_search_on_64_svc_candidates():
    X, y = load_digits(return_X_y=True)
    X, y = X[:700], y[:700]
    grid = {"C": list(np.logspace(-1, 3, 8)), "gamma": list(np.logspace(-5, -1, 8))}
    s = Scheduler(slots=2, history=None)
    try:
        job = ml.search(SVC(), grid, X, y, cv=3, halving=True, factor=3, random_state=0, scheduler=s)
        result = job.result(300)
        rungs = job.detail.rungs
    finally:
        s.shutdown()
    reference = HalvingGridSearchCV(SVC(), grid, cv=3, factor=3, random_state=0, n_jobs=2).fit(X, y)
    assert result.n_resources_ == reference.n_resources_ and result.n_candidates_ == reference.n_candidates_
    assert _per_rung(result.cv_results_) == _per_rung(reference.cv_results_)  # same candidates, same order
    np.testing.assert_allclose(result.cv_results_["mean_test_score"], reference.cv_results_["mean_test_score"],
                               rtol=0, atol=1e-9)
    assert result.best_params_ == reference.best_params_ and result.best_index_ == reference.best_index_
    assert len(rungs) == len(reference.n_resources_) and rungs[0].startswith(f"rung 1 of {len(rungs)}: 64 candidates")


def test_halving_on_a_parameter_resource_equals_scikit_learn():
    X, y = load_digits(return_X_y=True)
    X, y = X[:500], y[:500]
    est = RandomForestClassifier(random_state=0, n_jobs=1)
    grid = {"max_depth": [3, 6, None], "max_features": ["sqrt", 0.5], "min_samples_leaf": [1, 3]}
    kwargs = dict(factor=2, resource="n_estimators", min_resources=4, max_resources=32)
    s = Scheduler(slots=2, history=None)
    try:
        result = ml.search(est, grid, X, y, cv=3, halving=True, random_state=0, executor="thread",
                           scheduler=s, **kwargs).result(300)
    finally:
        s.shutdown()
    reference = HalvingGridSearchCV(est, grid, cv=3, random_state=0, **kwargs).fit(X, y)
    assert result.n_resources_ == reference.n_resources_
    assert _per_rung(result.cv_results_) == _per_rung(reference.cv_results_)
    np.testing.assert_allclose(result.cv_results_["mean_test_score"], reference.cv_results_["mean_test_score"],
                               rtol=0, atol=1e-9)
    assert result.best_params_ == reference.best_params_  # n_estimators included, as scikit-learn's
    assert result.best_estimator_.n_estimators == reference.best_params_["n_estimators"]


def test_halving_settings_without_halving_are_refused():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="halving=True"):
        ml.search(SVC(), {"C": [1, 2]}, X, y, factor=2)
    with pytest.raises(ValueError, match="not supported by estimator SVC"):
        ml.search(SVC(), {"C": [1, 2]}, X, y, halving=True, resource="n_trees")
