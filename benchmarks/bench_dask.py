"""8. Dask: search on LocalCluster(2) vs local processes vs GridSearchCV(n_jobs=2)."""

from __future__ import annotations

import time

from sklearn.model_selection import GridSearchCV

from notebook_ext.core import Scheduler, use_dask

from ._table import Row
from .bench_search import ours, problem


def run(quick: bool) -> list[Row]:
    est, grid, X, y, cv = problem(quick)
    s = Scheduler(history=None)
    try:
        use_dask(scheduler=s, n_workers=2)
        on_dask = ours(est, grid, X, y, cv, executor="dask", scheduler=s)
        local = ours(est, grid, X, y, cv, executor="process", scheduler=s)
    finally:
        s.shutdown()
    t0 = time.perf_counter()
    GridSearchCV(est, grid, cv=cv, n_jobs=2).fit(X, y)
    gs = time.perf_counter() - t0
    return [
        Row("dask", "16 x 5 search on LocalCluster(2)", on_dask, gs, "GridSearchCV(n_jobs=2)", "s"),
        Row("dask", "same search, local process executor", local, gs, "GridSearchCV(n_jobs=2)", "s"),
    ]
