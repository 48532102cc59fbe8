"""Hyper-parameter search: one child job per candidate, a live leaderboard.

Each candidate is cross-validated on the same splits (computed once, as
`GridSearchCV` does), so the scores equal scikit-learn's. Candidates run on
the process executor by default, so a search uses every core; on Dask they
fan out over the cluster.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import ParameterGrid, ParameterSampler, check_cv

from ..core import Job, current_job, get_scheduler, report
from ._details import LeaderboardRow, SearchDetail


def _evaluate(estimator: Any, params: dict, X: Any, y: Any, splits: list, scoring: Any) -> dict:
    """One candidate: fit and score every fold (runs in a worker)."""
    from sklearn.utils import _safe_indexing

    scores, fit_times = [], []
    for i, (train, test) in enumerate(splits):
        model = clone(estimator).set_params(**params)
        t0 = time.perf_counter()
        model.fit(_safe_indexing(X, train), _safe_indexing(y, train))
        fit_times.append(time.perf_counter() - t0)
        scorer = check_scoring(model, scoring=scoring)
        scores.append(float(scorer(model, _safe_indexing(X, test), _safe_indexing(y, test))))
        report(i + 1, len(splits), f"fold {i + 1}/{len(splits)}", score=scores[-1])
    return {"scores": scores, "fit_time": float(np.mean(fit_times))}


def _refit(estimator: Any, params: dict, X: Any, y: Any) -> Any:
    report(0, 1, "refitting the best candidate on all data")
    model = clone(estimator).set_params(**params).fit(X, y)
    report(1, 1, "refitted")
    return model


@dataclass
class SearchResult:
    """What a search returns; attribute names follow `GridSearchCV`."""

    best_estimator_: Any
    best_params_: dict
    best_score_: float
    best_index_: int
    cv_results_: dict[str, Any]
    table: list[dict[str, Any]] = field(default_factory=list)  # rows sorted by rank

    def to_frame(self) -> Any:
        """The results table as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.table)

    def __repr__(self) -> str:
        return (f"SearchResult(best_score_={self.best_score_:.4f}, best_params_={self.best_params_}, "
                f"{len(self.table)} candidates)")


def _rank(means: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    filled = np.where(np.isnan(means), -np.inf, means)
    return rankdata(-filled, method="min").astype(int)


def _candidates(estimator: Any, params: Any, n_iter: int | None, random_state: Any) -> list[dict]:
    grids = [params] if isinstance(params, Mapping) else params
    if not isinstance(grids, Sequence) or not grids or not all(isinstance(g, Mapping) for g in grids):
        raise TypeError("`params` must be a dict of parameter name -> values (or a list of such dicts)")
    valid = estimator.get_params()
    for grid in grids:
        if not grid:
            raise ValueError("`params` is empty: give at least one parameter and its values")
        for key, values in grid.items():
            if key not in valid:
                close = [k for k in valid if k.split("__")[-1] == key.split("__")[-1]]
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"`params`: {key!r} is not a parameter of {type(estimator).__name__}{hint}")
            if n_iter is None and (isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0):
                raise ValueError(f"`params`: {key!r} needs a non-empty list of values, got {values!r}")
    if n_iter is None:
        return list(ParameterGrid(grids))
    return list(ParameterSampler(grids, n_iter=n_iter, random_state=random_state))


def search(estimator: Any, params: Any, X: Any, y: Any, *, cv: Any = 5, n_iter: int | None = None,
           scoring: Any = None, executor: str | None = None, name: str | None = None,
           random_state: Any = None, refit: bool = True, priority: int = 0,
           scheduler: Any = None) -> Job:
    """Search hyper-parameters in the background, one child job per candidate.

    A grid search (``params`` lists values), or a random search when
    ``n_iter`` is given (``params`` may hold scipy distributions). The
    group card shows a live leaderboard sorted by mean CV score.

    Parameters
    ----------
    estimator : scikit-learn estimator
    params : dict or list of dicts
        Parameter name -> values (or distributions, with ``n_iter``).
    X, y : array-like
    cv : int or splitter
        As in `GridSearchCV`; the same splits serve every candidate.
    scoring : str or callable, optional
    executor : {"process", "thread", "dask"}, optional
        Where candidates run (default "process": all cores).

    Returns
    -------
    Job
        Its result is a `SearchResult` (``best_estimator_``, ``best_params_``,
        ``best_score_``, ``cv_results_``, ``table``).

    Examples
    --------
    >>> job = search(SVC(), {"C": [0.1, 1, 10]}, X, y, cv=5)   # doctest: +SKIP
    >>> job.result().best_params_                              # doctest: +SKIP
    """
    if not (hasattr(estimator, "fit") and hasattr(estimator, "get_params")):
        raise TypeError(f"`estimator` must be a scikit-learn estimator, got {type(estimator).__name__}")
    if len(X) != len(y):
        raise ValueError(f"`X` and `y` must have the same number of rows, got {len(X)} and {len(y)}")
    if n_iter is not None and (isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1):
        raise ValueError(f"`n_iter` must be a positive integer, got {n_iter!r}")
    candidates = _candidates(estimator, params, n_iter, random_state)
    splitter = check_cv(cv, y, classifier=is_classifier(estimator))
    splits = list(splitter.split(X, y))
    if scoring is not None:
        check_scoring(estimator, scoring=scoring)  # a bad scorer fails here, not in every worker
    sched = scheduler or get_scheduler()
    executor = executor or "process"
    sched.executor(executor)

    async def run() -> SearchResult:
        me = current_job()
        children = [
            sched.submit(_evaluate, estimator, p, X, y, splits, scoring, parent=me, kind="candidate",
                         executor=executor, priority=priority, name=f"{me.name}/{i}", params=p)
            for i, p in enumerate(candidates)
        ]
        rows = [{"params": p, "mean_score": math.nan, "std_score": math.nan, "rank": None,
                 "state": "queued", "scores": []} for p in candidates]
        done = 0
        report(0, len(candidates), f"{len(candidates)} candidates x {len(splits)} folds")
        waiters = {asyncio.ensure_future(c.wait_async()): i for i, c in enumerate(children)}
        try:
            pending = set(waiters)
            while pending:
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for fut in finished:
                    i = waiters[fut]
                    row = rows[i]
                    child = children[i]
                    exc = child.exception()
                    if exc is None:
                        out = child.result()
                        row.update(scores=out["scores"], mean_score=float(np.mean(out["scores"])),
                                   std_score=float(np.std(out["scores"])), state="done",
                                   fit_time=out["fit_time"])
                    else:
                        row.update(state="failed", error=f"{type(exc).__name__}: {exc}")
                    done += 1
                means = np.array([r["mean_score"] for r in rows])
                for r, rank in zip(rows, _rank(means)):
                    r["rank"] = int(rank) if not math.isnan(r["mean_score"]) else None
                board = sorted((r for r in rows if r["state"] == "done"), key=lambda r: r["rank"])
                me.set_detail(replace(me.detail, leaderboard=tuple(
                    LeaderboardRow(r["params"], r["mean_score"], r["std_score"], r["rank"], r["state"])
                    for r in board)))
                best = board[0]["mean_score"] if board else math.nan
                report(done, len(candidates), f"best {best:.4f}" if board else "", best_score=best)
        except asyncio.CancelledError:
            for c in children:
                c.cancel("the search was cancelled")
            for fut in waiters:
                fut.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
            raise
        means = np.array([r["mean_score"] for r in rows])
        if np.all(np.isnan(means)):
            raise RuntimeError(f"every candidate failed; first error: {rows[0].get('error')}")
        ranks = _rank(means)
        best_index = int(np.nanargmax(means))
        cv_results: dict[str, Any] = {
            "params": candidates,
            "mean_test_score": means,
            "std_test_score": np.array([r["std_score"] for r in rows]),
            "rank_test_score": ranks,
            "mean_fit_time": np.array([r.get("fit_time", math.nan) for r in rows]),
        }
        for k in range(len(splits)):
            cv_results[f"split{k}_test_score"] = np.array(
                [r["scores"][k] if len(r["scores"]) > k else math.nan for r in rows])
        best_estimator = None
        if refit:
            refit_job = sched.submit(_refit, estimator, candidates[best_index], X, y, parent=me, kind="refit",
                                     executor=executor, name=f"{me.name}/refit")
            best_estimator = await refit_job
        table = sorted(({"rank": int(ranks[i]), "mean_score": means[i], "std_score": rows[i]["std_score"],
                         **{f"param_{k}": v for k, v in candidates[i].items()},
                         "error": rows[i].get("error", "")} for i in range(len(rows))),
                       key=lambda r: r["rank"])
        return SearchResult(best_estimator, candidates[best_index], float(means[best_index]), best_index,
                            cv_results, table)

    return sched.submit(run, name=name, kind="search", priority=priority,
                        detail=SearchDetail(curve="best_score", candidates=len(candidates)),
                        params={"estimator": estimator, "candidates": len(candidates), "cv": len(splits)})
