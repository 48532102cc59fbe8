"""2. Parallel search: our fan-out vs GridSearchCV(n_jobs=cores) vs sequential,
both parallel sides on every core."""

from __future__ import annotations

import os
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
    ]
