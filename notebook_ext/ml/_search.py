"""Hyper-parameter search: one work item per (candidate, fold), a live
leaderboard per candidate.

Every candidate is cross-validated on the same splits (computed once, as
`GridSearchCV` does), so the scores equal scikit-learn's. The folds run as
work items of the search job, on the process executor by default (every
core) or on Dask; the expected-longest candidates go first and every fold
is a small item, so no core idles while one slow candidate finishes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import ParameterGrid, ParameterSampler, check_cv

from ..core import ItemMap, Job, Pipeline, Stage, current_job, get_scheduler, report
from ..core.lowlevel import SYSTEM_CLOCK, require
from ._details import LeaderboardRow, SearchDetail


class _Fold:
    """One work item's function: fit one candidate on one fold's training
    rows and score it on the fold's test rows. Holds X and y, so it travels
    to each worker once (not once per item)."""

    def __init__(self, estimator: Any, candidates: list[dict], X: Any, y: Any, splits: list, scoring: Any) -> None:
        self.estimator, self.candidates, self.X, self.y = estimator, candidates, X, y
        self.splits, self.scoring = splits, scoring

    def __call__(self, item: tuple[int, int]) -> tuple[int, int, float, float]:
        from sklearn.utils import _safe_indexing

        candidate, fold = item
        train, test = self.splits[fold]
        model = clone(self.estimator).set_params(**self.candidates[candidate])
        t0 = SYSTEM_CLOCK.monotonic()  # on a worker: its own clock, as GridSearchCV's fit_time
        model.fit(_safe_indexing(self.X, train), _safe_indexing(self.y, train))
        fit_time = SYSTEM_CLOCK.monotonic() - t0
        scorer = check_scoring(model, scoring=self.scoring)
        score = float(scorer(model, _safe_indexing(self.X, test), _safe_indexing(self.y, test)))
        return candidate, fold, score, fit_time


#: parameters whose larger values mean a longer fit (the order items go in)
_COSTLY = ("n_estimators", "max_iter", "max_depth", "C", "n_components", "n_neighbors", "degree", "max_leaf_nodes")


def expected_cost(params: Mapping[str, Any]) -> float:
    """A rough relative fit cost of a candidate from its parameters: the
    product of the numeric values of the parameters known to lengthen a
    fit (``n_estimators``, ``max_iter``, ``C`` …). Used only to order the
    items, longest first."""
    cost = 1.0
    for key, value in params.items():
        if key.split("__")[-1] in _COSTLY and isinstance(value, (int, float)) and not isinstance(value, bool):
            cost *= max(float(value), 1e-12)
    return cost


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
        pd = require("pandas", "pandas", "SearchResult.to_frame()")
        return pd.DataFrame(self.table)

    def __repr__(self) -> str:
        return (f"SearchResult(best_score_={self.best_score_:.4f}, best_params_={self.best_params_}, "
                f"{len(self.table)} candidates)")


@dataclass
class _Candidate:
    """One candidate while its folds come in (the search's own, mutable)."""

    params: dict[str, Any]
    scores: list[float]  # per fold, NaN until it is in
    left: int  # folds not in yet
    state: str = "queued"  # queued, running, done, failed
    fit_times: list[float] = field(default_factory=list)
    mean_score: float = math.nan
    std_score: float = math.nan
    fit_time: float = math.nan
    rank: int | None = None
    error: str = ""  # the first fold's error, when one failed


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
    """Search hyper-parameters in the background: one job, each
    (candidate, fold) one of its work items.

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

    n_folds = len(splits)
    order = sorted(range(len(candidates)), key=lambda i: -expected_cost(candidates[i]))
    items = [(i, k) for i in order for k in range(n_folds)]
    fold = Stage(_Fold(estimator, candidates, X, y, splits, scoring), executor=executor,
                 workers=len(items) if executor != "thread" else sched.slots, name="fold")
    sched.executor(executor).prepare_items(fold)  # packed (X and y too) here, once: not on the scheduler's loop

    async def run() -> SearchResult:
        me = current_job()
        rows = [_Candidate(p, [math.nan] * n_folds, n_folds) for p in candidates]
        done = 0
        report(0, len(candidates), f"{len(candidates)} candidates x {n_folds} folds")
        folds = ItemMap(Pipeline(items, (fold,), ordered=False), sched)
        async for position, ok, value in folds.results():
            if ok:
                i, k, score, fit_time = value
                row = rows[i]
                row.scores[k] = score
                row.fit_times.append(fit_time)
            else:
                i, k = items[position]
                row = rows[i]
                row.error = row.error or value.error
                row.state = "failed"
            row.left -= 1
            if row.left:
                if row.state == "queued":
                    row.state = "running"
                continue
            done += 1  # every fold of this candidate is in: its leaderboard row
            if row.state != "failed":
                row.mean_score, row.std_score = float(np.mean(row.scores)), float(np.std(row.scores))
                row.state, row.fit_time = "done", float(np.mean(row.fit_times))
            means = np.array([r.mean_score for r in rows])
            for r, rank in zip(rows, _rank(means)):
                r.rank = int(rank) if not math.isnan(r.mean_score) else None
            board = sorted((r for r in rows if r.state == "done"), key=lambda r: r.rank or 0)
            me.set_detail(replace(me.detail, leaderboard=tuple(
                LeaderboardRow(r.params, r.mean_score, r.std_score, r.rank, r.state) for r in board)))
            best = board[0].mean_score if board else math.nan
            report(done, len(candidates), f"best {best:.4f}" if board else "", best_score=best)
        means = np.array([r.mean_score for r in rows])
        if np.all(np.isnan(means)):
            raise RuntimeError(f"every candidate failed; first error: {rows[0].error}")
        ranks = _rank(means)
        best_index = int(np.nanargmax(means))
        cv_results: dict[str, Any] = {
            "params": candidates,
            "mean_test_score": means,
            "std_test_score": np.array([r.std_score for r in rows]),
            "rank_test_score": ranks,
            "mean_fit_time": np.array([r.fit_time for r in rows]),
        }
        for k in range(len(splits)):
            cv_results[f"split{k}_test_score"] = np.array(
                [r.scores[k] if r.state == "done" else math.nan for r in rows])
        best_estimator = None
        if refit:
            refit_job = sched.submit(_refit, estimator, candidates[best_index], X, y, parent=me, kind="refit",
                                     executor=executor, name=f"{me.name}/refit")
            best_estimator = await refit_job
        table = sorted(({"rank": int(ranks[i]), "mean_score": means[i], "std_score": rows[i].std_score,
                         **{f"param_{k}": v for k, v in candidates[i].items()},
                         "error": rows[i].error} for i in range(len(rows))),
                       key=lambda r: r["rank"])
        return SearchResult(best_estimator, candidates[best_index], float(means[best_index]), best_index,
                            cv_results, table)

    return sched.submit(run, name=name, kind="search", priority=priority,
                        detail=SearchDetail(curve="best_score", candidates=len(candidates), runs_on=executor),
                        params={"estimator": estimator, "candidates": len(candidates), "cv": len(splits)})
