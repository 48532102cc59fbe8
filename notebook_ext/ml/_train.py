"""Background training with live progress, metrics, cancel and Stop-and-keep.

One step, in scikit-learn's own terms (its glossary), is one ``partial_fit``
call, one ``warm_start`` increment, or one task reported through its
callback API. A step is where progress is reported, cancellation takes
effect and Stop-and-keep ends the fit with the model as it is.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import replace
from typing import Any

import numpy as np
from sklearn.base import clone, is_classifier

from ..core import Job, checkpoint, get_scheduler, report, stop_requested
from ._details import TrainDetail

STRATEGIES = ("callback", "partial_fit", "warm_start", "fit")
_SUBSAMPLE = 2000  # rows used for the training-set metric each step
_WARM_PARAM = {"HistGradientBoostingClassifier": "max_iter", "HistGradientBoostingRegressor": "max_iter"}


def strategy_for(estimator: Any) -> str:
    """Which progress strategy `train` uses for ``estimator``."""
    if hasattr(estimator, "set_callbacks") and hasattr(estimator, "_init_callback_context"):
        return "callback"
    if hasattr(estimator, "partial_fit"):
        return "partial_fit"
    if "warm_start" in estimator.get_params(deep=False) and _warm_param(estimator) is not None:
        return "warm_start"
    return "fit"


def _warm_param(estimator: Any) -> str | None:
    name = _WARM_PARAM.get(type(estimator).__name__)
    if name:
        return name
    return "n_estimators" if "n_estimators" in estimator.get_params(deep=False) else None


def _length(data: Any, what: str) -> int:
    try:
        return len(data)
    except TypeError:
        shape = getattr(data, "shape", None)
        if shape:
            return int(shape[0])
        raise TypeError(f"`{what}` must be array-like (rows first), got {type(data).__name__}") from None


class _Scorer:
    """Evaluation each step: the eval set's score, and a training metric."""

    def __init__(self, X: Any, y: Any, eval: Any, scoring: str | None) -> None:
        from sklearn.metrics import get_scorer

        self.scorer = get_scorer(scoring) if scoring else None
        self.eval = eval
        n = _length(X, "X")
        idx = np.random.default_rng(0).choice(n, size=min(n, _SUBSAMPLE), replace=False) if n else []
        self.X_sub = _rows(X, idx)
        self.y_sub = _rows(y, idx) if y is not None else None

    def score(self, model: Any, X: Any, y: Any) -> float:
        return float(self.scorer(model, X, y) if self.scorer else model.score(X, y))

    def metrics(self, model: Any) -> dict[str, float]:
        out: dict[str, float] = {}
        loss = getattr(model, "loss_", None)
        if isinstance(loss, (int, float)) and math.isfinite(loss):
            out["loss"] = float(loss)
        elif self.y_sub is not None:
            try:
                out["train_score"] = self.score(model, self.X_sub, self.y_sub)
            except Exception:
                pass
        if self.eval is not None:
            out["val_score"] = self.score(model, *self.eval)
        return out


def _rows(data: Any, idx: Any) -> Any:
    if hasattr(data, "iloc"):
        return data.iloc[idx]
    if isinstance(data, list):
        return [data[i] for i in idx]
    return data[idx]


class _ProgressCallback:
    """A scikit-learn `FitCallback`: each finished task is a step; returns
    True to stop on Stop-and-keep; raises on cancel. Stateless towards the
    job (it reads the current job context), so a fitted model stays picklable."""

    max_propagation_depth = None  # auto-propagated into sub-estimators

    def __init__(self, scorer: _Scorer | None = None, every: float = 0.2) -> None:
        self.scorer = scorer
        self.every = every
        self.steps = 0
        self.stopped = False
        self._last = -1.0

    def setup(self, estimator: Any, context: Any) -> None:
        self.steps = 0

    def teardown(self, estimator: Any, context: Any) -> None:
        pass

    def on_fit_task_begin(self, estimator: Any, context: Any, **kwargs: Any) -> None:
        checkpoint()

    def on_fit_task_end(self, estimator: Any, context: Any, *, fitted_estimator: Any = None, **kw: Any) -> bool:
        import time

        checkpoint()
        if context.max_subtasks != 0:  # not a leaf: its leaves were counted
            return False
        self.steps += 1
        parent = context.parent
        total = parent.max_subtasks if parent is not None and parent.max_subtasks else None
        metrics: dict[str, float] = {}
        now = time.monotonic()
        if self.scorer is not None and fitted_estimator is not None and now - self._last >= self.every:
            self._last = now
            try:
                metrics = self.scorer.metrics(fitted_estimator)
            except Exception:
                metrics = {}
        report(self.steps, total, f"{context.estimator_name} › {context.task_name} {context.task_id}", **metrics)
        if stop_requested():
            self.stopped = True
            return True
        return False


def _fit_callback(model: Any, X: Any, y: Any, scorer: _Scorer, epochs: int | None, classes: Any,
                  batch_size: int | None) -> tuple[Any, bool]:
    cb = _ProgressCallback(scorer)
    model.set_callbacks(cb)
    try:
        model.fit(X, y) if y is not None else model.fit(X)
    finally:
        model.set_callbacks()
        vars(model).pop("_callback_fit_ctx", None)
    # Converged before max_iter: the bar ends full, at the steps it took.
    report(cb.steps, cb.steps, "stopped early" if cb.stopped else "converged", **scorer.metrics(model))
    return model, cb.stopped


def _fit_partial(model: Any, X: Any, y: Any, scorer: _Scorer, epochs: int | None, classes: Any,
                 batch_size: int | None) -> tuple[Any, bool]:
    n = _length(X, "X")
    epochs = epochs or 20
    batch = batch_size or max(1, min(1024, math.ceil(n / 20)))
    batches = math.ceil(n / batch)
    kwargs: dict[str, Any] = {}
    if is_classifier(model) and y is not None:
        kwargs["classes"] = classes if classes is not None else np.unique(y)
    rng = np.random.default_rng(getattr(model, "random_state", None) if isinstance(
        getattr(model, "random_state", None), int) else None)
    step = 0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n)
        for b in range(batches):
            checkpoint()
            idx = order[b * batch:(b + 1) * batch]
            if y is not None:
                model.partial_fit(_rows(X, idx), _rows(y, idx), **kwargs)
            else:
                model.partial_fit(_rows(X, idx), **kwargs)
            step += 1
            report(step, epochs * batches, f"epoch {epoch}/{epochs}, batch {b + 1}/{batches}")
            if stop_requested():  # the bar ends full at the steps taken; the curve's last point at this step
                report(step, step, **scorer.metrics(model))
                return model, True
        report(step, epochs * batches, f"epoch {epoch}/{epochs}", **scorer.metrics(model))
    return model, False


def _fit_warm(model: Any, X: Any, y: Any, scorer: _Scorer, epochs: int | None, classes: Any,
              batch_size: int | None) -> tuple[Any, bool]:
    param = _warm_param(model)
    assert param is not None
    final = int(model.get_params()[param])
    stages = max(1, min(epochs or 10, final))
    sizes = sorted({max(1, round(final * (i + 1) / stages)) for i in range(stages)})
    model.set_params(warm_start=True)
    for i, size in enumerate(sizes, 1):
        checkpoint()
        model.set_params(**{param: size})
        model.fit(X, y) if y is not None else model.fit(X)
        metrics = scorer.metrics(model)
        train_curve = getattr(model, "train_score_", None)
        if train_curve is not None and len(train_curve) and "loss" not in metrics:
            metrics["loss"] = float(np.asarray(train_curve)[-1])
        report(i, len(sizes), f"{param}={size}", **metrics)
        if stop_requested() and i < len(sizes):
            report(i, i)
            return model, True
    return model, False


def _fit_plain(model: Any, X: Any, y: Any, scorer: _Scorer, epochs: int | None, classes: Any,
               batch_size: int | None) -> tuple[Any, bool]:
    report(message="fitting… (no intermediate progress for this estimator)")
    model.fit(X, y) if y is not None else model.fit(X)
    checkpoint()
    report(1, 1, "fitted", **scorer.metrics(model))
    return model, False


_FITTERS = {"callback": _fit_callback, "partial_fit": _fit_partial, "warm_start": _fit_warm, "fit": _fit_plain}


def _save_atomic(model: Any, path: str) -> str:
    import joblib

    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".joblib", dir=folder)
    os.close(fd)
    try:
        joblib.dump(model, tmp)
        os.replace(tmp, path)  # readers never see a half-written file
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _train_job(estimator: Any, X: Any, y: Any, eval: Any, scoring: str | None, epochs: int | None,
               classes: Any, batch_size: int | None, strategy: str, save: str | None) -> dict[str, Any]:
    model = clone(estimator)
    scorer = _Scorer(X, y, eval, scoring)
    model, stopped = _FITTERS[strategy](model, X, y, scorer, epochs, classes, batch_size)
    checkpoint()  # cancelled inside an uninterruptible fit: end here, before any save
    saved = _save_atomic(model, save) if save else None
    return {"model": model, "stopped_early": stopped, "saved": saved}


def _finalize(job: Job, outcome: dict[str, Any]) -> Any:
    if outcome["saved"]:
        job.add_artifact(outcome["saved"])
    if outcome["stopped_early"]:
        job.ctx.message = ""  # the card's note and the status line say "stopped early", once
        job.set_detail(replace(job.detail, stopped_early=True))  # type: ignore[arg-type]
    return outcome["model"]


def train(estimator: Any, X: Any, y: Any = None, *, eval: Any = None, scoring: str | None = None,
          epochs: int | None = None, classes: Any = None, save: str | None = None,
          name: str | None = None, executor: str | None = None, batch_size: int | None = None,
          priority: int = 0, timeout: float | None = None, scheduler: Any = None) -> Job:
    """Fit a clone of ``estimator`` in the background with live progress.

    Progress comes, in this order of preference, from scikit-learn's callback
    API (e.g. `LogisticRegression`, `Pipeline`), from epochs of
    ``partial_fit`` mini-batches (SGD*, MLP*, naive Bayes, …), from
    ``warm_start`` stages (forests, gradient boosting), or from a plain
    ``fit`` (an indeterminate bar). ``job.request_stop()`` ("Stop and keep")
    ends the fit at the next step and keeps the model; ``job.cancel()``
    discards it.

    Parameters
    ----------
    estimator : scikit-learn estimator
        Not modified: a clone is fitted.
    X, y : array-like
        Training data.
    eval : (X_val, y_val), optional
        Scored at every epoch / stage; drawn as the card's curve.
    scoring : str, optional
        A scikit-learn scorer name (default: the estimator's ``score``).
    epochs : int, optional
        Epochs for ``partial_fit``, stages for ``warm_start`` (default 20 / 10).
    classes : array-like, optional
        All class labels, for ``partial_fit`` (default: ``np.unique(y)``).
    save : str, optional
        Write the fitted model there with joblib, atomically.
    executor : {"thread", "process", "dask"}, optional
        Default "thread" (numpy and scikit-learn release the GIL).

    Returns
    -------
    Job
        Its result is the fitted estimator.

    Examples
    --------
    >>> job = train(SGDClassifier(), X, y, eval=(Xv, yv), epochs=30)   # doctest: +SKIP
    >>> model = job.result()                                           # doctest: +SKIP
    """
    if not (hasattr(estimator, "fit") and hasattr(estimator, "get_params")):
        raise TypeError(f"`estimator` must be a scikit-learn estimator (with fit and get_params), "
                        f"got {type(estimator).__name__}")
    n = _length(X, "X")
    if y is not None and _length(y, "y") != n:
        raise ValueError(f"`X` and `y` must have the same number of rows, got {n} and {_length(y, 'y')}")
    if eval is not None:
        if not (isinstance(eval, (tuple, list)) and len(eval) == 2):
            raise TypeError("`eval` must be a pair (X_val, y_val)")
        if _length(eval[0], "eval X") != _length(eval[1], "eval y"):
            raise ValueError(f"`eval` X and y must have the same number of rows, got "
                             f"{_length(eval[0], 'eval X')} and {_length(eval[1], 'eval y')}")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise ValueError(f"`epochs` must be a positive integer, got {epochs!r}")
    if scoring is not None:
        from sklearn.metrics import get_scorer_names

        if scoring not in get_scorer_names():
            raise ValueError(f"`scoring` {scoring!r} is not a scikit-learn scorer name (e.g. 'accuracy', 'r2')")
    if save is not None:
        folder = os.path.dirname(os.path.abspath(save))
        if not os.path.isdir(folder):
            raise ValueError(f"`save`: folder {folder!r} does not exist")
    strategy = strategy_for(estimator)
    sched = scheduler or get_scheduler()
    detail = TrainDetail(
        curve="val_score" if eval is not None else ("loss" if strategy == "partial_fit" else None),
        can_stop=strategy != "fit", strategy=strategy, estimator=repr(estimator)[:200],
    )
    return sched.submit(
        _train_job, estimator, X, y, eval, scoring, epochs, classes, batch_size, strategy, save,
        name=name or None, kind="train", executor=executor or "thread", priority=priority, timeout=timeout,
        params={"estimator": estimator, "strategy": strategy, "epochs": epochs, "save": save},
        finalize=_finalize, detail=detail,
    )
