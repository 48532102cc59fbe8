"""Successive halving as scikit-learn's `HalvingGridSearchCV` and
`HalvingRandomSearchCV` run it, as plain functions, so that our scheduler
can run each rung's (candidate, fold) fits itself.

Mirrors ``sklearn/model_selection/_search_successive_halving.py``
(scikit-learn 1.9): the plan is what ``_check_input_parameters`` and
``_run_search`` compute, the rows of a rung are what ``_SubsampleMetaSplitter``
yields, the survivors are what ``_top_k`` keeps (in its order) and the
winner is what ``_select_best_index`` picks. Nothing here fits a model.

A search driven by these functions::

    plan = plan_halving(len(candidates), n_samples, n_splits=len(splits), n_classes=n_classes,
                        estimator=estimator)
    check_resource_not_searched(candidates, plan.resource)
    params, scores, iters = [], [], []
    for rung, n_resources in enumerate(plan.n_resources):
        candidates = rung_candidates(candidates, plan.resource, n_resources)
        folds = rung_splits(splits, n_resources, n_samples, random_state=random_state,
                            resource=plan.resource)
        means = ...  # mean test score of each candidate over `folds` (our work items)
        params += candidates; scores += means; iters += [rung] * len(candidates)
        candidates = top_k(candidates, means, plan.n_kept(rung))
    best = best_index(scores, iters)          # best_params_ = params[best]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils import resample

_MIN_OPTIONS = ("exhaust", "smallest")


@dataclass(frozen=True)
class HalvingPlan:
    """The rungs of one successive-halving search, as scikit-learn plans them.

    Attribute names follow the fitted attributes of `HalvingGridSearchCV`
    without their trailing underscore (``n_resources`` is ``n_resources_``).

    Attributes
    ----------
    n_resources : tuple of int
        Resources of each rung: with ``resource == "n_samples"``, the rows
        of each fold, train plus test (each drawn as that fraction of all
        rows, rounded down); else the value the resource parameter
        is set to on every candidate.
    n_candidates : tuple of int
        Candidates evaluated in each rung; rung ``i + 1`` keeps
        ``ceil(n_candidates[i] / factor)`` of rung ``i``.
    n_iterations, n_required_iterations, n_possible_iterations : int
        As ``n_iterations_``, ``n_required_iterations_``, ``n_possible_iterations_``.
    min_resources, max_resources : int or float
        As ``min_resources_`` and ``max_resources_``. ``min_resources`` is a
        float exactly when scikit-learn's is (``"exhaust"`` with a float
        ``factor`` can give ``max_resources // factor**k``, a float).
    resource : str
    factor : int or float
    aggressive_elimination : bool
    """

    n_resources: tuple[int, ...]
    n_candidates: tuple[int, ...]
    n_iterations: int
    n_required_iterations: int
    n_possible_iterations: int
    min_resources: int | float
    max_resources: int
    resource: str
    factor: int | float
    aggressive_elimination: bool = False

    def n_kept(self, rung: int) -> int:
        """How many candidates rung ``rung`` passes on: ``ceil(n / factor)``
        of its ``n`` candidates (the last rung's value is scikit-learn's
        ``n_remaining_candidates_``)."""
        return math.ceil(self.n_candidates[rung] / self.factor)

    @property
    def n_remaining_candidates(self) -> int:
        """As ``n_remaining_candidates_``: the survivors of the last rung."""
        return self.n_kept(len(self.n_candidates) - 1)


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_positive_int(value: Any) -> bool:
    return _is_int(value) and value >= 1


def plan_halving(n_candidates: int | str, n_samples: int, *, factor: int | float = 3,
                 resource: str = "n_samples", min_resources: int | str = "exhaust",
                 max_resources: int | str = "auto", aggressive_elimination: bool = False,
                 n_splits: int, n_classes: int | None, estimator: Any = None) -> HalvingPlan:
    """The rungs scikit-learn's successive halving runs for these settings.

    Computes what ``BaseSuccessiveHalving._check_input_parameters`` and
    ``_run_search`` compute, with the same arithmetic (``math.log``,
    ``floor``, ``//``), so rounding edges such as ``log(243, 3) < 5`` give
    the same rungs.

    Parameters
    ----------
    n_candidates : int or "exhaust"
        Candidates of the first rung (``len(ParameterGrid(grid))``). For
        `HalvingRandomSearchCV`, its ``n_candidates``: ``"exhaust"`` makes
        the plan's ``n_candidates[0]`` ``max_resources // min_resources``,
        the number to draw with ``ParameterSampler``. With a RandomState
        instance and a parameter resource, scikit-learn draws the sampler
        twice (its "resource is searched" check iterates it) and evaluates
        the second draw; with an int both draws are equal.
    n_samples : int
        Rows of ``X``.
    factor, resource, min_resources, max_resources, aggressive_elimination
        As in `HalvingGridSearchCV`.
    n_splits : int
        Folds of the cross-validation (``cv.get_n_splits(X, y)``).
    n_classes : int or None
        Distinct labels of ``y`` (``np.unique(y).shape[0]``). Used as
        scikit-learn does: only for a classifier, when ``resource`` is
        ``"n_samples"`` and ``min_resources`` is ``"smallest"`` or
        ``"exhaust"``. Without ``estimator``, a non-None value means "a
        classifier".
    estimator : scikit-learn estimator, optional
        When given, decides whether it is a classifier and checks that it
        has the ``resource`` parameter.

    Returns
    -------
    HalvingPlan

    Raises
    ------
    ValueError
        For the settings scikit-learn refuses, with its checks in its
        order; also for ``factor <= 1``, which scikit-learn accepts when
        positive and then fails on (``ZeroDivisionError`` or
        ``IndexError``), and for a bool where an int is wanted.

    Examples
    --------
    >>> plan = plan_halving(64, 1797, factor=3, n_splits=3, n_classes=10)
    >>> plan.n_resources, plan.n_candidates
    ((66, 198, 594, 1782), (64, 22, 8, 3))
    """
    if n_candidates != "exhaust" and not _is_positive_int(n_candidates):
        raise ValueError(f"`n_candidates` must be a positive integer or 'exhaust', got {n_candidates!r}")
    if not _is_positive_int(n_samples):
        raise ValueError(f"`n_samples` must be a positive integer (the rows of X), got {n_samples!r}")
    if isinstance(factor, bool) or not isinstance(factor, Real) or not factor > 1:
        raise ValueError(f"`factor` must be a number greater than 1, got {factor!r}")
    if not isinstance(resource, str):
        raise ValueError(f"`resource` must be 'n_samples' or the name of a parameter, got {resource!r}")
    if min_resources not in _MIN_OPTIONS and not _is_positive_int(min_resources):
        raise ValueError(f"`min_resources` must be a positive integer, 'exhaust' or 'smallest', got {min_resources!r}")
    if max_resources != "auto" and not _is_positive_int(max_resources):
        raise ValueError(f"`max_resources` must be a positive integer or 'auto', got {max_resources!r}")
    if not isinstance(aggressive_elimination, (bool, np.bool_)):
        raise ValueError(f"`aggressive_elimination` must be True or False, got {aggressive_elimination!r}")
    if not _is_positive_int(n_splits):
        raise ValueError(f"`n_splits` must be a positive integer (the number of folds), got {n_splits!r}")
    if n_classes is not None and not _is_positive_int(n_classes):
        raise ValueError(f"`n_classes` must be a positive integer or None, got {n_classes!r}")

    # _check_input_parameters, in its order
    if estimator is not None and resource != "n_samples" and resource not in estimator.get_params():
        raise ValueError(f"Cannot use resource={resource} which is not supported by estimator "
                         f"{type(estimator).__name__}: give one of its parameters or 'n_samples'")
    if min_resources == n_candidates == "exhaust":
        raise ValueError("n_candidates and min_resources cannot be both set to 'exhaust': set one to an integer")
    min_resources_: int | float
    if min_resources in _MIN_OPTIONS:
        if resource == "n_samples":
            min_resources_ = n_splits * 2  # scikit-learn's "magic factor"
            classifier = is_classifier(estimator) if estimator is not None else n_classes is not None
            if classifier:
                if n_classes is None:
                    raise ValueError(f"`n_classes` is needed for the classifier {type(estimator).__name__}: "
                                     "pass np.unique(y).shape[0]")
                min_resources_ *= n_classes
        else:
            min_resources_ = 1
    else:
        min_resources_ = int(min_resources)
    if max_resources == "auto":
        if resource != "n_samples":
            raise ValueError("resource can only be 'n_samples' when max_resources='auto': "
                             f"give max_resources, the largest {resource} to use")
        max_resources_ = int(n_samples)
    else:
        max_resources_ = int(max_resources)
    if min_resources_ > max_resources_:
        raise ValueError(f"min_resources_={min_resources_} is greater than max_resources_={max_resources_}.")
    # (scikit-learn's "min_resources_=0" check cannot trigger once the arguments are validated above)

    # HalvingRandomSearchCV._generate_candidate_params
    # (at least 1: min_resources_ <= max_resources_ was checked above)
    n_first = max_resources_ // min_resources_ if n_candidates == "exhaust" else int(n_candidates)

    # _run_search
    n_required = 1 + math.floor(math.log(n_first, factor))
    if min_resources == "exhaust":
        last_iteration = n_required - 1
        min_resources_ = max(min_resources_, max_resources_ // factor**last_iteration)
    n_possible = 1 + math.floor(math.log(max_resources_ // min_resources_, factor))
    n_iterations = n_required if aggressive_elimination else min(n_possible, n_required)

    resources, candidates, n = [], [], n_first
    for itr in range(n_iterations):
        power = max(0, itr - n_required + n_possible) if aggressive_elimination else itr
        resources.append(min(int(factor**power * min_resources_), max_resources_))
        candidates.append(n)
        n = math.ceil(n / factor)  # len(_top_k(...)) = min(k, n) = k, as factor > 1
    return HalvingPlan(tuple(resources), tuple(candidates), n_iterations, n_required, n_possible,
                       min_resources_, max_resources_, resource, factor, bool(aggressive_elimination))


def check_resource_not_searched(params: Sequence[Mapping[str, Any]], resource: str) -> None:
    """Refuse candidates that search the resource itself, as scikit-learn
    does before its first rung.

    Parameters
    ----------
    params : list of dict
        The first rung's candidates.
    resource : str

    Raises
    ------
    ValueError
        When ``resource`` is not ``"n_samples"`` and a candidate sets it.

    Examples
    --------
    >>> check_resource_not_searched([{"max_depth": 2}], "n_estimators")
    """
    if resource != "n_samples" and any(resource in p for p in params):
        raise ValueError(f"Cannot use parameter {resource} as the resource since it is part of the searched "
                         "parameters: remove it from the grid or choose another resource")


def rung_candidates(params: Sequence[Mapping[str, Any]], resource: str, n_resources: int) -> list[dict]:
    """A rung's candidates: copies of ``params`` with the resource parameter
    set to ``n_resources`` (unchanged copies for ``"n_samples"``).

    These are the dicts scikit-learn fits and stores in
    ``cv_results_["params"]``: with a parameter resource, they include it
    (so ``best_params_`` does too).

    Examples
    --------
    >>> rung_candidates([{"max_depth": 2}], "n_estimators", 8)
    [{'max_depth': 2, 'n_estimators': 8}]
    """
    out = [dict(p) for p in params]
    if resource != "n_samples":
        for p in out:
            p[resource] = n_resources
    return out


def rung_splits(splits: Sequence[tuple[Any, Any]], n_resources: int, n_samples: int, *,
                random_state: Any, resource: str = "n_samples") -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train, test) rows a rung fits and scores on, as
    ``_SubsampleMetaSplitter`` yields them.

    With ``resource == "n_samples"``, each fold in turn has its train rows
    then its test rows drawn without replacement with
    ``resample(idx, replace=False, random_state=random_state,
    n_samples=int(n_resources / n_samples * len(idx)))``. The draw is not
    stratified (scikit-learn passes no ``stratify``), so ``y`` plays no
    part. With another resource the rung uses the full ``splits``.

    Parameters
    ----------
    splits : list of (train, test) index arrays
        The base folds: ``list(check_cv(cv, y, classifier=is_classifier(est)).split(X, y, groups))``.
        scikit-learn insists that ``cv`` yields the same folds on every call.
    n_resources : int
        This rung's ``plan.n_resources[i]``.
    n_samples : int
        Rows of ``X`` (not ``max_resources``: the fraction is of all rows).
    random_state : int, RandomState instance or None
        The search's ``random_state``, passed as is to every draw:

        - int: every draw starts afresh from it, so a rung's rows do not
          depend on earlier rungs; any call order reproduces scikit-learn.
        - RandomState instance: draws advance it, as in scikit-learn; the
          rows match only if the instance is in the state scikit-learn's
          is when that rung starts, i.e. call ``rung_splits`` once per rung,
          in rung order, with nothing else drawing from it between (for
          `HalvingRandomSearchCV`, ``ParameterSampler`` draws from it first).
        - None: numpy's global generator, as scikit-learn; not reproducible.
    resource : str

    Returns
    -------
    list of (train, test) numpy arrays

    Examples
    --------
    >>> folds = [(np.arange(0, 6), np.arange(6, 9)), (np.arange(3, 9), np.arange(0, 3))]
    >>> [(len(tr), len(te)) for tr, te in rung_splits(folds, 6, 9, random_state=0)]
    [(4, 2), (4, 2)]
    """
    if resource != "n_samples":
        return [(np.asarray(train), np.asarray(test)) for train, test in splits]
    if not _is_int(n_resources) or not 1 <= n_resources <= n_samples:
        raise ValueError(f"`n_resources` must be an integer from 1 to n_samples={n_samples}, got {n_resources!r}")
    fraction = n_resources / n_samples  # the same float as scikit-learn's, so the same int() below
    out = []
    for k, (train, test) in enumerate(splits):
        drawn = []
        for name, idx in (("train", train), ("test", test)):
            size = int(fraction * len(idx))
            if size < 1:
                raise ValueError(f"n_resources={n_resources} leaves no {name} row of fold {k} "
                                 f"({len(idx)} rows): raise min_resources")
            drawn.append(resample(idx, replace=False, random_state=random_state, n_samples=size))
        out.append((drawn[0], drawn[1]))
    return out


def _last_rung(n: int, iterations: Any) -> np.ndarray:
    if iterations is None:
        return np.arange(n)
    iterations = np.asarray(iterations)
    if iterations.shape != (n,):
        raise ValueError(f"`iterations` must give one rung per score ({n}), got shape {iterations.shape}")
    return np.flatnonzero(iterations == iterations.max())


def top_k(params: Sequence[Mapping[str, Any]], mean_test_scores: Sequence[float], k: int, *,
          iterations: Sequence[int] | None = None) -> list:
    """The ``k`` best candidates of the last rung, in the order scikit-learn's
    ``_top_k`` returns them (the order the next rung evaluates them in).

    Ranks by ``np.argsort`` of the last rung's mean scores (so ties keep
    numpy's default sort order), with NaN scores ranked below every number;
    the result runs from the k-th best to the best.

    Parameters
    ----------
    params : list of dict
        Candidates in evaluation order (one rung's, or all rungs' as in
        ``cv_results_["params"]``).
    mean_test_scores : list of float
        Their mean test scores, same order.
    k : int
        At least 1 (``plan.n_kept(rung)``); more than there are candidates
        keeps them all.
    iterations : list of int, optional
        The rung of each result (``cv_results_["iter"]``): only the last
        rung is ranked. Without it, all of ``params`` form one rung.

    Returns
    -------
    list of dict
        The same dict objects, weakest kept first.

    Examples
    --------
    >>> top_k([{"C": 1}, {"C": 2}, {"C": 3}], [0.5, float("nan"), 0.9], 2)
    [{'C': 1}, {'C': 3}]
    """
    scores_all = np.asarray(mean_test_scores, dtype=np.float64)
    if len(params) != scores_all.shape[0]:
        raise ValueError(f"`params` and `mean_test_scores` must have the same length, "
                         f"got {len(params)} and {scores_all.shape[0]}")
    if not _is_positive_int(k):  # k=0 would slice [-0:], i.e. keep everything
        raise ValueError(f"`k` must be a positive integer, got {k!r}")
    indices = _last_rung(len(params), iterations)
    scores = scores_all[indices]
    order = np.roll(np.argsort(scores), np.count_nonzero(np.isnan(scores)))
    return [params[int(indices[i])] for i in order[-k:]]


def best_index(mean_test_scores: Sequence[float], iterations: Sequence[int] | None = None) -> int:
    """Index of the best result, as ``best_index_``: the best mean score of
    the last rung (first one on a tie), NaN ignored; the last rung's first
    result if all its scores are NaN.

    Parameters
    ----------
    mean_test_scores : list of float
        All results in evaluation order (``cv_results_["mean_test_score"]``).
    iterations : list of int, optional
        The rung of each result; without it, one rung.

    Returns
    -------
    int
        An index into ``mean_test_scores`` (and the ``params`` beside it).

    Examples
    --------
    >>> best_index([0.9, 0.5, 0.7, 0.6], [0, 0, 1, 1])
    2
    """
    scores_all = np.asarray(mean_test_scores, dtype=np.float64)
    if scores_all.ndim != 1 or scores_all.shape[0] == 0:
        raise ValueError("`mean_test_scores` must be a non-empty list of scores")
    indices = _last_rung(scores_all.shape[0], iterations)
    scores = scores_all[indices]
    best = 0 if np.isnan(scores).all() else int(np.nanargmax(scores))
    return int(indices[best])
