"""2. Parallel search: our fan-out vs GridSearchCV(n_jobs=cores) vs sequential,
both parallel sides on every core."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import GridSearchCV, HalvingGridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline as SkPipeline
from sklearn.svm import SVC

import notebook_ext as nx
import notebook_ext.ml

from ._table import Row, median_spread


def problem(quick: bool):
    X, y = load_digits(return_X_y=True)
    if quick:
        X, y = X[:300], y[:300]
    grid = {"C": [0.1, 1, 10, 100], "gamma": [1e-4, 5e-4, 1e-3, 5e-3]}  # 16 candidates
    return SVC(), grid, X, y, StratifiedKFold(5, shuffle=True, random_state=0)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(sides: dict, reps: int) -> dict[str, list[float]]:
    """Seconds of each side's ``reps`` runs: every side once untimed first,
    then rounds of one run each, the order reversed every other round."""
    for fn in sides.values():
        fn()
    out: dict[str, list[float]] = {key: [] for key in sides}
    order = list(sides)
    for rep in range(reps):
        for key in (order if rep % 2 == 0 else order[::-1]):
            out[key].append(timed(sides[key]))
    return out


def ours(est, grid, X, y, cv, s: nx.Scheduler, executor: str = "process"):
    """One search on scheduler ``s``, submit to result."""
    return lambda: nx.ml.search(est, grid, X, y, cv=cv, executor=executor, scheduler=s).result(600)


def item_workers(s: nx.Scheduler) -> int:
    """Worker processes our searches run their items on: what the process
    executor gives a run of items that names no ``cpu`` (as a search's)."""
    runner = s.executor("process").item_runner()
    try:
        return runner.slots
    finally:
        runner.close()


def run(quick: bool) -> list[Row]:
    est, grid, X, y, cv = problem(quick)
    cores = os.cpu_count() or 1
    reps = 2 if quick else 5
    s = nx.Scheduler(history=None)
    try:
        t = interleaved({"ours": ours(est, grid, X, y, cv, s),
                         "grid": lambda: GridSearchCV(est, grid, cv=cv, n_jobs=cores).fit(X, y),
                         "seq": lambda: GridSearchCV(est, grid, cv=cv, n_jobs=1).fit(X, y)}, reps)
        workers = item_workers(s)
        more = run_text(quick, s, cores, reps) + run_halving(quick, s, cores, reps)
    finally:
        s.shutdown()
    assert workers == cores, f"our search ran on {workers} worker processes, GridSearchCV on {cores}"
    m, ms = median_spread(t["ours"])
    g, gs = median_spread(t["grid"])
    q, qs = median_spread(t["seq"])
    anchor = f"GridSearchCV(n_jobs={cores})"
    return [
        Row("search", "16 candidates x 5 folds, process executor", m, g, anchor, "s", ms,
            "<= 1.0x GridSearchCV", "yes" if m <= 1.0 * g else "NO",
            note=f"both sides on {cores} worker processes (ours: the process executor's item workers, one per "
                 f"core, at nice 10; GridSearchCV: joblib's loky pool); {anchor}: {gs}. Every side warmed by one "
                 f"untimed run (one scheduler, one loky pool, kept warm), then {reps} rounds interleaved, the "
                 "order reversed every other round; one item per (candidate, fold), longest expected first"),
        Row("search", "same, sequential GridSearchCV(n_jobs=1)", q, g, anchor, "s", qs),
        *more,
    ]


# -- a text pipeline: the vectorizer fitted once per (its parameters, fold) --------------------------


def corpus(n: int, seed: int = 0) -> tuple[list[str], "np.ndarray"]:
    """A synthetic corpus of ``n`` documents in 4 topics: each document
    draws most of its 60 words from its topic's vocabulary, the rest from all."""
    rng = np.random.RandomState(seed)
    vocabulary = [f"w{i}" for i in range(4000)]
    y = rng.randint(0, 4, n)
    docs = []
    for topic in y:
        own = vocabulary[topic * 800:topic * 800 + 1600]
        words = [own[rng.randint(len(own))] if rng.rand() < 0.6 else vocabulary[rng.randint(len(vocabulary))]
                 for _ in range(60)]
        docs.append(" ".join(words))
    return docs, y


def text_problem(quick: bool):
    X, y = corpus(600 if quick else 3000)
    pipe = SkPipeline([("tfidf", TfidfVectorizer()), ("clf", SGDClassifier(random_state=0))])
    grid = {"tfidf__ngram_range": [(1, 1), (1, 2)], "tfidf__sublinear_tf": [False, True],  # 4 vectorizers
            "clf__alpha": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]}  # x 6 classifiers
    return pipe, grid, X, y, StratifiedKFold(5, shuffle=True, random_state=0)


def run_text(quick: bool, s: nx.Scheduler, cores: int, reps: int) -> list[Row]:
    pipe, grid, X, y, cv = text_problem(quick)
    got: dict[str, Any] = {}

    def ours_side():
        got["ours"] = nx.ml.search(pipe, grid, X, y, cv=cv, scheduler=s).result(900)

    def grid_side():
        got["grid"] = GridSearchCV(pipe, grid, cv=cv, n_jobs=cores).fit(X, y)

    t = interleaved({"ours": ours_side, "grid": grid_side}, reps)
    ours, ref = got["ours"], got["grid"]
    diff = float(np.max(np.abs(ours.cv_results_["mean_test_score"] - ref.cv_results_["mean_test_score"])))
    assert diff <= 1e-9, f"cv_results_ means differ from GridSearchCV's by {diff}"
    m, ms = median_spread(t["ours"])
    g, gs = median_spread(t["grid"])
    anchor = f"GridSearchCV(n_jobs={cores})"
    return [Row("search", f"text pipeline: TfidfVectorizer grid of 4 x SGDClassifier grid of 6, 5 folds, "
                          f"{len(X):,} documents", m, g, anchor, "s", ms, "<= 0.6x GridSearchCV",
                "yes" if m <= 0.6 * g else "NO",
                note=f"{anchor}: {gs}. cv_results_ means equal to {diff:.0e}; best_params_ "
                     f"{'equal' if ours.best_params_ == ref.best_params_ else 'DIFFER'}. Ours fits each vectorizer "
                     f"once per fold and each classifier on its output: {ours.fits_saved} vectorizer fits saved "
                     f"of {24 * 5}; both sides refit the best on all rows. Interleaved, {reps} rounds after one "
                     "untimed run each")]


# -- successive halving -------------------------------------------------------------------------------


def run_halving(quick: bool, s: nx.Scheduler, cores: int, reps: int) -> list[Row]:
    X, y = load_digits(return_X_y=True)
    if quick:
        X, y = X[:600], y[:600]
    grid = {"C": list(np.logspace(-2, 3, 8)), "gamma": list(np.logspace(-5, -1, 8))}  # 64 candidates
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    got: dict[str, Any] = {}

    def ours_side():
        got["ours"] = nx.ml.search(SVC(), grid, X, y, cv=cv, halving=True, factor=3, random_state=0,
                                   scheduler=s).result(900)

    def sk_side():
        got["sk"] = HalvingGridSearchCV(SVC(), grid, cv=cv, factor=3, random_state=0, n_jobs=cores).fit(X, y)

    t = interleaved({"ours": ours_side, "sk": sk_side}, reps)
    ours, ref = got["ours"], got["sk"]
    same = ours.best_params_ == ref.best_params_ and ours.n_candidates_ == list(ref.n_candidates_)
    m, ms = median_spread(t["ours"])
    h, hs = median_spread(t["sk"])
    anchor = f"HalvingGridSearchCV(n_jobs={cores})"
    return [Row("search", f"successive halving, SVC on digits, 64 candidates (8 C x 8 gamma), factor 3, 5 folds",
                m, h, anchor, "s", ms, "<= 1.0x, same best_params_",
                "yes" if m <= 1.0 * h and same else "NO",
                note=f"{anchor}: {hs}. Rungs {ours.n_candidates_} candidates on {ours.n_resources_} rows; "
                     f"best_params_ {'the same' if same else 'DIFFER'} ({ours.best_params_}). Interleaved, "
                     f"{reps} rounds after one untimed run each")]
