"""8. Dask: search on LocalCluster(2) vs local processes vs GridSearchCV(n_jobs=2)."""

from __future__ import annotations

import time

from sklearn.model_selection import GridSearchCV

import notebook_ext as nx

from ._table import Row
from .bench_search import ours, problem


def run(quick: bool) -> list[Row]:
    est, grid, X, y, cv = problem(quick)
    s = nx.Scheduler(history=None)
    try:
        nx.use_dask(scheduler=s, n_workers=2)
        on_dask = ours(est, grid, X, y, cv, executor="dask", scheduler=s)
        local = ours(est, grid, X, y, cv, executor="process", scheduler=s)
    finally:
        s.shutdown()
    GridSearchCV(est, grid, cv=cv, n_jobs=2).fit(X, y)  # warm, untimed (ours() warms our side the same way)
    t0 = time.perf_counter()
    GridSearchCV(est, grid, cv=cv, n_jobs=2).fit(X, y)
    gs = time.perf_counter() - t0
    return [
        Row("dask", "16 x 5 search on LocalCluster(2)", on_dask, gs, "GridSearchCV(n_jobs=2)", "s"),
        Row("dask", "same search, local process executor", local, gs, "GridSearchCV(n_jobs=2)", "s"),
    ]
