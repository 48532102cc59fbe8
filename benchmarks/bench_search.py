"""2. Parallel search: our fan-out vs GridSearchCV(n_jobs=2) vs sequential."""

from __future__ import annotations

import time

from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, StratifiedKFold
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


def ours(est, grid, X, y, cv, executor="process", scheduler=None) -> float:
    own = scheduler is None
    s = scheduler or nx.Scheduler(history=None)
    search = nx.ml.search
    try:
        search(est, grid, X, y, cv=cv, executor=executor, scheduler=s).result(600)  # warm the workers, untimed
        return timed(lambda: search(est, grid, X, y, cv=cv, executor=executor, scheduler=s).result(600))
    finally:
        if own:
            s.shutdown()


def run(quick: bool) -> list[Row]:
    est, grid, X, y, cv = problem(quick)
    reps = 1 if quick else 5
    # Warm GridSearchCV too: one untimed fit each (joblib's worker pool starts and stays).
    GridSearchCV(est, grid, cv=cv, n_jobs=2).fit(X, y)
    GridSearchCV(est, grid, cv=cv, n_jobs=1).fit(X, y)
    mine, gs2, seq = [], [], []
    for _ in range(reps):  # interleaved; ours() warms its own scheduler's workers before timing
        mine.append(ours(est, grid, X, y, cv))
        gs2.append(timed(lambda: GridSearchCV(est, grid, cv=cv, n_jobs=2).fit(X, y)))
        seq.append(timed(lambda: GridSearchCV(est, grid, cv=cv, n_jobs=1).fit(X, y)))
    m, ms = median_spread(mine)
    g, _ = median_spread(gs2)
    q, _ = median_spread(seq)
    return [
        Row("search", "16 candidates x 5 folds, process executor", m, g, "GridSearchCV(n_jobs=2)", "s", ms,
            "<= 1.0x GridSearchCV", "yes" if m <= 1.0 * g else "NO",
            note="every side warmed by one untimed run (our process workers, joblib's pool), then interleaved"
            "; one item per (candidate, fold), longest expected first"),
        Row("search", "same, sequential GridSearchCV(n_jobs=1)", q, g, "GridSearchCV(n_jobs=2)", "s"),
    ]
