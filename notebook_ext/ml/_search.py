"""Hyper-parameter search: one work item per (candidate, fold), a live
leaderboard per candidate.

Every candidate is cross-validated on the same splits (computed once, as
`GridSearchCV` does), so the scores equal scikit-learn's. The folds run as
work items of the search job, on the process executor by default (every
core) or on Dask; the expected-longest candidates go first and every fold
is a small item, so no core idles while one slow candidate finishes.
"""

from __future__ import annotations

import asyncio
import math
import os
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence, cast

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import ParameterGrid, ParameterSampler, check_cv

from ..core import ItemMap, Job, Pipeline, Stage, current_job, get_scheduler, report
from ..core.lowlevel import SYSTEM_CLOCK, require
from ._details import LeaderboardRow, SearchDetail
from ._halving import best_index, check_resource_not_searched, plan_halving, rung_candidates, rung_splits, top_k


class _Fold:
    """One work item's function: fit one group of candidates on one fold's
    training rows and score them on the fold's test rows. Holds X and y, so
    it travels to each worker once (not once per item).

    For a `Pipeline`, a group is the candidates that share the parameters
    of every step but the last: its prefix of transformers is fitted once
    (one ``fit_transform`` per step, as `Pipeline.fit` does) and each
    candidate fits only its last step on the transformed rows. Prefixes of
    that prefix shared across groups (``scaler -> pca(n) -> model``: the
    scaler) are kept in a cache of at most ``cache_bytes`` per worker,
    least recently used out first; an evicted one is fitted again.
    """

    def __init__(self, estimator: Any, candidates: list[dict], groups: list[list[int]], keys: list[list[str]],
                 X: Any, y: Any, splits: list, scoring: Any, cache_bytes: int) -> None:
        self.estimator, self.candidates, self.X, self.y = estimator, candidates, X, y
        self.groups, self.keys, self.splits, self.scoring = groups, keys, splits, scoring
        self.cache_bytes = cache_bytes
        self.cache = _PrefixCache(cache_bytes)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["cache"] = None  # each worker starts with an empty cache of its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.cache = _PrefixCache(self.cache_bytes)

    def __call__(self, item: tuple[int, int]) -> tuple[list[tuple[int, float, float]], int, int]:
        """``([(candidate, score, fit seconds)], prefix steps fitted, prefix
        steps fitting each candidate whole would fit)`` of one (group, fold)."""
        from sklearn.utils import _safe_indexing

        group, fold = item
        train, test = self.splits[fold]
        X_train, y_train = _safe_indexing(self.X, train), _safe_indexing(self.y, train)
        X_test, y_test = _safe_indexing(self.X, test), _safe_indexing(self.y, test)
        members, keys = self.groups[group], self.keys[group]
        if not keys:  # no shared prefix: the candidate as GridSearchCV fits it
            (i,) = members
            model = clone(self.estimator).set_params(**self.candidates[i])
            t0 = SYSTEM_CLOCK.monotonic()  # on a worker: its own clock, as GridSearchCV's fit_time
            model.fit(X_train, y_train)
            fit_time = SYSTEM_CLOCK.monotonic() - t0
            scorer = check_scoring(model, scoring=self.scoring)
            prefix = _fitted_steps(model)
            return [(i, float(scorer(model, X_test, y_test)), fit_time)], prefix, prefix
        t0 = SYSTEM_CLOCK.monotonic()
        template = clone(self.estimator).set_params(**self.candidates[members[0]])
        fitted, Xt, Xs, fits = self._prefix(template, fold, keys, X_train, y_train, X_test)
        prefix_time = SYSTEM_CLOCK.monotonic() - t0
        out, whole = [], 0
        for i in members:
            model = clone(self.estimator).set_params(**self.candidates[i])
            whole += _fitted_steps(model)
            name, last = model.steps[-1]
            t0 = SYSTEM_CLOCK.monotonic()
            last.fit(Xt, y_train)
            fit_time = prefix_time + SYSTEM_CLOCK.monotonic() - t0  # what its whole pipeline's fit cost
            if self.scoring is None or isinstance(self.scoring, str):
                # a named scorer reads the pipeline's last step on transformed rows: the same numbers
                score = check_scoring(last, scoring=self.scoring)(last, Xs, y_test)
            else:  # the user's own scorer gets the whole fitted pipeline, as GridSearchCV gives it
                model.steps = [*fitted, (name, last)]
                score = check_scoring(model, scoring=self.scoring)(model, X_test, y_test)
            out.append((i, float(score), fit_time))
        return out, fits, whole

    def _prefix(self, template: Any, fold: int, keys: list[str], X: Any, y: Any,
                X_test: Any) -> tuple[list[tuple[str, Any]], Any, Any, int]:
        """The fitted prefix steps of ``template`` (all but its last), the
        training rows and the test rows through them, and how many steps
        were fitted here (the others came from the cache)."""
        steps = template.steps[:-1]
        fitted: list[tuple[str, Any]] = []
        start, fits = 0, 0
        for depth in range(len(steps) - 1, 0, -1):  # the longest cached prefix of the prefix
            hit = self.cache.get((fold, keys[depth - 1]))
            if hit is not None:
                fitted, X, X_test = list(hit[0]), hit[1], hit[2]
                start = depth
                break
        for depth in range(start, len(steps)):
            name, step = steps[depth]
            if step is not None and step != "passthrough":
                step = clone(step)
                X = step.fit_transform(X, y) if hasattr(step, "fit_transform") else step.fit(X, y).transform(X)
                X_test = step.transform(X_test)
                fits += 1
            fitted.append((name, step))
            if depth < len(steps) - 1:  # a prefix of the prefix: other groups may share it
                self.cache.put((fold, keys[depth]), (tuple(fitted), X, X_test))
        return fitted, X, X_test, fits


def _fitted_steps(model: Any) -> int:
    """Steps before the last that fitting ``model`` whole fits (0 unless a Pipeline)."""
    steps = getattr(model, "steps", None)
    if not isinstance(steps, list):
        return 0
    return sum(1 for _, step in steps[:-1] if step is not None and step != "passthrough")


class _PrefixCache:
    """Fitted pipeline prefixes and the rows through them, keyed by (fold,
    parameters), at most ``cap`` bytes (estimated), least recently used out
    first. Thread-safe: the thread executor's workers share one."""

    def __init__(self, cap: int) -> None:
        import threading
        from collections import OrderedDict

        self.cap, self.used, self.peak, self.evicted = cap, 0, 0, 0
        self._entries: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Any, value: Any) -> None:
        size = _nbytes(value)
        with self._lock:
            if key in self._entries or size > self.cap:
                return
            while self._entries and self.used + size > self.cap:
                _, (_, gone) = self._entries.popitem(last=False)
                self.used -= gone
                self.evicted += 1
            self._entries[key] = (value, size)
            self.used += size
            self.peak = max(self.peak, self.used)


def _nbytes(value: Any) -> int:
    """Bytes a cached prefix holds: its arrays (dense or sparse) counted
    exactly, its fitted steps by their pickled size."""
    import pickle

    steps, X, X_test = value
    total = len(pickle.dumps(steps, protocol=pickle.HIGHEST_PROTOCOL))
    for rows in (X, X_test):
        if hasattr(rows, "nbytes"):
            total += int(rows.nbytes)
        elif hasattr(rows, "data") and hasattr(rows, "indices"):  # scipy sparse
            total += sum(int(getattr(rows, a).nbytes) for a in ("data", "indices", "indptr") if hasattr(rows, a))
        else:
            total += len(pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL))
    return total


#: bytes of shared pipeline prefixes each worker keeps (see `_Fold`)
PREFIX_CACHE_BYTES = 512 * 2**20


def _pipeline_groups(estimator: Any, candidates: list[dict], order: list[int],
                     min_items: int, n_folds: int) -> tuple[list[list[int]], list[list[str]]]:
    """The candidates in groups that share a fitted prefix, and each group's
    prefix keys (one per prefix step: a hash of the parameters of the steps
    up to it; none when the candidate is fitted whole).

    Only a scikit-learn `Pipeline` of two or more steps whose candidates
    set step parameters (not ``steps``, ``memory`` …) is grouped. Groups
    keep ``order`` (longest expected first); when there would be fewer than
    ``min_items`` (group, fold) items, the largest groups are split so that
    every worker has work (each part fits its prefix again).
    """
    from joblib import hash as joblib_hash
    from sklearn.pipeline import Pipeline as SkPipeline

    singles: tuple[list[list[int]], list[list[str]]] = ([[i] for i in order], [[] for _ in order])
    if type(estimator) is not SkPipeline or len(estimator.steps) < 2:
        return singles
    names = [name for name, _ in estimator.steps]
    prefix = names[:-1]

    def step_of(param: str) -> str | None:
        head = param.split("__", 1)[0]
        return head if head in names else None

    if any(step_of(k) is None for c in candidates for k in c):
        return singles  # a pipeline-wide parameter (steps, memory …): every candidate fitted whole
    keys_of: dict[int, list[str]] = {}
    for i in order:
        keys_of[i] = [joblib_hash(sorted((k, v) for k, v in candidates[i].items() if step_of(k) in prefix[:d + 1]))
                      for d in range(len(prefix))]
    grouped: dict[str, list[int]] = {}
    for i in order:
        grouped.setdefault(keys_of[i][-1], []).append(i)
    groups = list(grouped.values())
    while len(groups) * n_folds < min_items:
        big = max(range(len(groups)), key=lambda g: len(groups[g]))
        if len(groups[big]) < 2:
            break
        half = len(groups[big]) // 2
        groups[big:big + 1] = [groups[big][:half], groups[big][half:]]
    return groups, [keys_of[g[0]] for g in groups]


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
    fits_saved: int = 0  # prefix fits skipped: fitted once per fold for every candidate sharing them
    n_resources_: list[int] = field(default_factory=list)  # halving: resources of each rung
    n_candidates_: list[int] = field(default_factory=list)  # halving: candidates of each rung

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
           halving: bool = False, factor: float = 3, resource: str = "n_samples",
           min_resources: Any = "exhaust", max_resources: Any = "auto", aggressive_elimination: bool = False,
           prefix_cache: int = PREFIX_CACHE_BYTES, scheduler: Any = None) -> Job:
    """Search hyper-parameters in the background: one job, each
    (candidate, fold) one of its work items.

    A grid search (``params`` lists values), or a random search when
    ``n_iter`` is given (``params`` may hold scipy distributions). The
    group card shows a live leaderboard sorted by mean CV score.

    For a scikit-learn `Pipeline`, candidates that differ only in the last
    step share their fitted prefix: it is fitted once per fold (each step's
    ``fit_transform``, as `Pipeline.fit`) and only the last step is fitted
    per candidate, so the scores are GridSearchCV's; the leaderboard says
    how many fits that saved.

    With ``halving=True``, successive halving as `HalvingGridSearchCV`
    (`HalvingRandomSearchCV` with ``n_iter``) runs it: every candidate on a
    few resources first, the best ``1/factor`` of them on ``factor`` times
    more, and so on; the same candidates per rung and the same
    ``best_params_`` as scikit-learn with the same settings and an int
    ``random_state``. The card shows the rung.

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
    halving : bool
        Successive halving; ``factor``, ``resource``, ``min_resources``,
        ``max_resources`` and ``aggressive_elimination`` as in
        `HalvingGridSearchCV` (``n_iter="exhaust"`` is not taken: give a number).
    prefix_cache : int
        Bytes of shared pipeline prefixes each worker keeps between items
        (a prefix of the prefix, e.g. a scaler before a PCA that varies);
        least recently used out first, an evicted one is fitted again.

    Returns
    -------
    Job
        Its result is a `SearchResult` (``best_estimator_``, ``best_params_``,
        ``best_score_``, ``cv_results_``, ``table``, ``fits_saved``).

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
    if isinstance(prefix_cache, bool) or not isinstance(prefix_cache, int) or prefix_cache < 0:
        raise ValueError(f"`prefix_cache` must be a number of bytes (0 or more), got {prefix_cache!r}")
    candidates = _candidates(estimator, params, n_iter, random_state)
    splitter = check_cv(cv, y, classifier=is_classifier(estimator))
    splits = list(splitter.split(X, y))
    if scoring is not None:
        check_scoring(estimator, scoring=scoring)  # a bad scorer fails here, not in every worker
    plan = None
    if halving:
        plan = plan_halving(len(candidates), len(X), factor=factor, resource=resource,
                            min_resources=min_resources, max_resources=max_resources,
                            aggressive_elimination=aggressive_elimination, n_splits=len(splits),
                            n_classes=len(np.unique(y)) if is_classifier(estimator) else None,
                            estimator=estimator)
        check_resource_not_searched(candidates, plan.resource)
    elif (factor, resource, min_resources, max_resources, aggressive_elimination) != (
            3, "n_samples", "exhaust", "auto", False):
        raise ValueError("`factor`, `resource`, `min_resources`, `max_resources` and `aggressive_elimination` "
                         "are settings of successive halving: add halving=True")
    sched = scheduler or get_scheduler()
    executor = executor or "process"
    sched.executor(executor)
    rungs = _Rungs(estimator, X, y, scoring, executor, sched, prefix_cache)
    if plan is None:
        first = rungs.items(candidates, splits)  # packed (X and y too) here: not on the scheduler's loop
    else:
        first_params = rung_candidates(candidates, plan.resource, plan.n_resources[0])
        first = rungs.items(first_params, rung_splits(splits, plan.n_resources[0], len(X),
                                                      random_state=random_state, resource=plan.resource))

    async def run() -> SearchResult:
        me = current_job()
        n_folds = len(splits)
        if plan is None:
            report(0, len(candidates), f"{len(candidates)} candidates x {n_folds} folds")
            rows = await rungs.run(me, first, candidates, n_folds, 0, len(candidates), [])
            iters = [0] * len(rows)
        else:
            rows, iters = [], []
            rung_params, work = first_params, first
            got: list[_Candidate] = []
            rows_params: list[dict] = rung_params
            total = sum(plan.n_candidates)
            report(0, total, f"successive halving: {len(plan.n_resources)} rungs, "
                             f"{' -> '.join(str(n) for n in plan.n_candidates)} candidates")
            for r, n_resources in enumerate(plan.n_resources):
                if r:
                    kept = top_k(rows_params, [c.mean_score for c in got], plan.n_kept(r - 1))
                    rung_params = rung_candidates(kept, plan.resource, n_resources)
                    folds = rung_splits(splits, n_resources, len(X), random_state=random_state,
                                        resource=plan.resource)
                    work = await asyncio.to_thread(rungs.items, rung_params, folds)  # packing: off the loop
                what = f"{n_resources:,} {'samples' if plan.resource == 'n_samples' else plan.resource}"
                me.set_detail(replace(me.detail, rungs=(*me.detail.rungs,
                              f"rung {r + 1} of {len(plan.n_resources)}: {len(rung_params)} candidates, {what}")))
                got = await rungs.run(me, work, rung_params, n_folds, len(rows), total, rows)
                rows_params = rung_params
                rows += got
                iters += [r] * len(got)
        means = np.array([r.mean_score for r in rows])
        if np.all(np.isnan(means)):
            raise RuntimeError(f"every candidate failed; first error: {rows[0].error}")
        ranks = _rank(means)
        best = int(np.nanargmax(means)) if plan is None else best_index(list(means), iters)
        evaluated = [r.params for r in rows]
        cv_results: dict[str, Any] = {
            "params": evaluated,
            "mean_test_score": means,
            "std_test_score": np.array([r.std_score for r in rows]),
            "rank_test_score": ranks,
            "mean_fit_time": np.array([r.fit_time for r in rows]),
        }
        for k in range(n_folds):
            cv_results[f"split{k}_test_score"] = np.array(
                [r.scores[k] if r.state == "done" else math.nan for r in rows])
        if plan is not None:
            cv_results["iter"] = np.array(iters)
            cv_results["n_resources"] = np.array([plan.n_resources[i] for i in iters])
        best_estimator = None
        if refit:
            refit_job = sched.submit(_refit, estimator, evaluated[best], X, y, parent=me, kind="refit",
                                     executor=executor, name=f"{me.name}/refit")
            best_estimator = await refit_job
        table = sorted(({"rank": int(ranks[i]), "mean_score": means[i], "std_score": rows[i].std_score,
                         **({"rung": iters[i]} if plan is not None else {}),
                         **{f"param_{k}": v for k, v in evaluated[i].items()},
                         "error": rows[i].error} for i in range(len(rows))),
                       key=lambda r: r["rank"])
        return SearchResult(best_estimator, evaluated[best], float(means[best]), best, cv_results, table,
                            fits_saved=rungs.saved,
                            n_resources_=list(plan.n_resources) if plan else [],
                            n_candidates_=list(plan.n_candidates) if plan else [])

    return sched.submit(run, name=name, kind="search", priority=priority,
                        detail=SearchDetail(curve="best_score", candidates=len(candidates), runs_on=executor),
                        params={"estimator": estimator, "candidates": len(candidates), "cv": len(splits),
                                **({"halving": True, "factor": factor} if halving else {})})


@dataclass
class _RungItems:
    """One rung's work: its stage of (group, fold) items and the groups."""

    stage: Stage
    groups: list[list[int]]
    items: list[tuple[int, int]]


class _Rungs:
    """Runs one set of candidates on one set of splits as work items of the
    search job (a grid: once; successive halving: once per rung) and keeps
    the leaderboard of everything evaluated so far."""

    def __init__(self, estimator: Any, X: Any, y: Any, scoring: Any, executor: str,
                 sched: Any, prefix_cache: int) -> None:
        self.estimator, self.X, self.y, self.scoring = estimator, X, y, scoring
        self.executor, self.sched, self.prefix_cache = executor, sched, prefix_cache
        self.saved = 0  # prefix fits skipped, over every rung

    def items(self, candidates: list[dict], splits: list) -> _RungItems:
        """A stage of (group, fold) items for ``candidates`` on ``splits``,
        its function packed for the executor (X and y too: call it off the
        scheduler's loop)."""
        n_folds = len(splits)
        order = sorted(range(len(candidates)), key=lambda i: -expected_cost(candidates[i]))
        workers = self.sched.slots if self.executor == "thread" else os.cpu_count() or 1
        groups, keys = _pipeline_groups(self.estimator, candidates, order, 4 * workers, n_folds)
        items = [(g, k) for g in range(len(groups)) for k in range(n_folds)]
        fold = Stage(_Fold(self.estimator, candidates, groups, keys, self.X, self.y, splits, self.scoring,
                           self.prefix_cache), executor=self.executor,
                     workers=len(items) if self.executor != "thread" else self.sched.slots, name="fold")
        self.sched.executor(self.executor).prepare_items(fold)
        return _RungItems(fold, groups, items)

    async def run(self, me: Job, work: _RungItems, candidates: list[dict], n_folds: int, done: int, total: int,
                  before: list[_Candidate]) -> list[_Candidate]:
        """Run one rung's items; each candidate's row once all its folds are in."""
        groups, items = work.groups, work.items
        rows = [_Candidate(p, [math.nan] * n_folds, n_folds) for p in candidates]
        folds = ItemMap(Pipeline(items, (work.stage,), ordered=False), self.sched)
        async for position, ok, value in folds.results():
            g, k = items[position]
            if ok:
                scored, fitted, whole = value
                self.saved += whole - fitted
                for i, score, fit_time in scored:
                    rows[i].scores[k] = score
                    rows[i].fit_times.append(fit_time)
            finished = []
            for i in groups[g]:
                row = rows[i]
                if not ok:
                    row.error = row.error or value.error
                    row.state = "failed"
                row.left -= 1
                if row.left:
                    if row.state == "queued":
                        row.state = "running"
                    continue
                if row.state != "failed":
                    row.mean_score, row.std_score = float(np.mean(row.scores)), float(np.std(row.scores))
                    row.state, row.fit_time = "done", float(np.mean(row.fit_times))
                finished.append(row)
            if not finished:
                continue
            done += len(finished)  # every fold of these candidates is in: their leaderboard rows
            every = [*before, *rows]
            means = np.array([r.mean_score for r in every])
            for r, rank in zip(every, _rank(means)):
                r.rank = int(rank) if not math.isnan(r.mean_score) else None
            board = sorted((r for r in every if r.state == "done"), key=lambda r: r.rank or 0)
            shown = (LeaderboardRow(r.params, r.mean_score, r.std_score, r.rank, r.state) for r in board)
            me.set_detail(replace(cast(SearchDetail, me.detail), leaderboard=tuple(shown), fits_saved=self.saved))
            best = board[0].mean_score if board else math.nan
            report(done, total, f"best {best:.4f}" if board else "", best_score=best)
        return rows
