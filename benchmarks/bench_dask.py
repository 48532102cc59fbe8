"""8. Dask: search on LocalCluster(cores) vs local processes vs
GridSearchCV(n_jobs=cores), every side on one worker per core."""

from __future__ import annotations

import os

from sklearn.model_selection import GridSearchCV

import notebook_ext as nx

from ._table import Row, median_spread
from .bench_search import interleaved, item_workers, ours, problem


def run(quick: bool) -> list[Row]:
    est, grid, X, y, cv = problem(quick)
    cores = os.cpu_count() or 1
    reps = 2 if quick else 5
    s = nx.Scheduler(history=None)
    try:
        client = nx.use_dask(scheduler=s, n_workers=cores, threads_per_worker=1)
        threads = sum(client.nthreads().values())
        t = interleaved({"dask": ours(est, grid, X, y, cv, s, executor="dask"),
                         "local": ours(est, grid, X, y, cv, s),
                         "grid": lambda: GridSearchCV(est, grid, cv=cv, n_jobs=cores).fit(X, y)}, reps)
        workers = item_workers(s)
    finally:
        s.shutdown()
    assert threads == workers == cores, f"Dask threads {threads}, our processes {workers}, cores {cores}"
    d, ds = median_spread(t["dask"])
    p, ps = median_spread(t["local"])
    g, gs = median_spread(t["grid"])
    anchor = f"GridSearchCV(n_jobs={cores})"
    return [
        Row("dask", f"16 x 5 search on LocalCluster({cores})", d, g, anchor, "s", ds,
            "<= 1.0x GridSearchCV", "yes" if d <= 1.0 * g else "NO",
            note=f"{cores} Dask workers of 1 thread, {cores} process-executor item workers, {anchor} (loky): "
                 f"{gs}. Every side warmed by one untimed run, then {reps} rounds interleaved (Dask, "
                 "process, GridSearchCV), the order reversed every other round"),
        Row("dask", "same search, local process executor", p, g, anchor, "s", ps),
    ]
