"""Background training with live progress, metrics, cancel and Stop-and-keep.

One step, in scikit-learn's own terms (its glossary), is one ``partial_fit``
call, one ``warm_start`` increment, or one task reported through its
callback API. A step is where progress is reported, cancellation takes
effect and Stop-and-keep ends the fit with the model as it is.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from typing import Any, Mapping

import numpy as np
from sklearn.base import clone, is_classifier

from ..core import Job, checkpoint, get_scheduler, report, stop_requested
from ..core.lowlevel import SYSTEM_CLOCK, Throttle, current_context, describe_error, hold, write_atomic
from ._checkpoints import (DEFAULT_EVERY, FitPosition, TrainCheckpointer, TrainStart, checkpoint_path, finished,
                           fingerprint, parse_every)
from ._details import TrainDetail
from ._specs import TrainSpec, spec_json

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
        self.failed: set[str] = set()  # metrics that could not be measured (said once each)

    def cannot(self, metric: str, exc: Exception) -> None:
        """Say once, in the job's output, that ``metric`` is not measured and why; training goes on."""
        if metric in self.failed:
            return
        self.failed.add(metric)
        ctx = current_context()
        if ctx is not None:
            ctx.output.write(f"notebook_ext: {metric} is not measured ({describe_error(exc)}); training goes on\n")

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
            except Exception as exc:  # an estimator that cannot score: the curve goes without it, said once
                self.cannot("train_score", exc)
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
        self._scored: Throttle | None = None  # scores at most every ``every`` seconds of the job's clock

    def setup(self, estimator: Any, context: Any) -> None:
        self.steps = 0

    def teardown(self, estimator: Any, context: Any) -> None:
        pass

    def on_fit_task_begin(self, estimator: Any, context: Any, **kwargs: Any) -> None:
        checkpoint()

    def on_fit_task_end(self, estimator: Any, context: Any, *, fitted_estimator: Any = None, **kw: Any) -> bool:
        checkpoint()
        if context.max_subtasks != 0:  # not a leaf: its leaves were counted
            return False
        self.steps += 1
        parent = context.parent
        total = parent.max_subtasks if parent is not None and parent.max_subtasks else None
        metrics: dict[str, float] = {}
        if self._scored is None:
            ctx = current_context()
            self._scored = Throttle(self.every, ctx.clock if ctx is not None else SYSTEM_CLOCK)
        if self.scorer is not None and fitted_estimator is not None and self._scored.ready():
            try:
                metrics = self.scorer.metrics(fitted_estimator)
            except Exception as exc:  # a sub-estimator mid-fit that cannot be scored: said once, the fit goes on
                self.scorer.cannot("the score during the fit", exc)
                metrics = {}
        report(self.steps, total, f"{context.estimator_name} › {context.task_name} {context.task_id}", **metrics)
        if stop_requested():
            self.stopped = True
            return True
        return False


def _fit_callback(model: Any, X: Any, y: Any, scorer: _Scorer, epochs: int | None, classes: Any,
                  batch_size: int | None, ckpt: Any, start: Any) -> tuple[Any, bool]:
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
                 batch_size: int | None, ckpt: TrainCheckpointer | None, start: TrainStart | None) -> tuple[Any, bool]:
    n = _length(X, "X")
    epochs = epochs or 20
    batch = batch_size or max(1, min(1024, math.ceil(n / 20)))
    batches = math.ceil(n / batch)
    total = epochs * batches
    kwargs: dict[str, Any] = {}
    if is_classifier(model) and y is not None:
        kwargs["classes"] = classes if classes is not None else np.unique(y)
    rng = np.random.default_rng(getattr(model, "random_state", None) if isinstance(
        getattr(model, "random_state", None), int) else None)
    step, first_epoch, first_batch = 0, 1, 0
    if start is not None:  # go on exactly where the checkpoint was: same epoch order, same next batch
        step, first_epoch, first_batch = start.step, start.position.epoch, start.position.batch
        rng.bit_generator.state = start.position.rng
    for epoch in range(first_epoch, epochs + 1):
        epoch_rng = rng.bit_generator.state
        order = rng.permutation(n)
        for b in range(first_batch if epoch == first_epoch else 0, batches):
            checkpoint()
            idx = order[b * batch:(b + 1) * batch]
            if y is not None:
                model.partial_fit(_rows(X, idx), _rows(y, idx), **kwargs)
            else:
                model.partial_fit(_rows(X, idx), **kwargs)
            step += 1
            report(step, total, f"epoch {epoch}/{epochs}, batch {b + 1}/{batches}")
            if stop_requested():  # the bar ends full at the steps taken; the curve's last point at this step
                report(step, step, **scorer.metrics(model))
                return model, True
            if ckpt is not None and b + 1 < batches:
                ckpt.maybe(step, model, FitPosition(epoch, b + 1, epoch_rng), total)
        report(step, total, f"epoch {epoch}/{epochs}", **scorer.metrics(model))
        if ckpt is not None and epoch < epochs:  # after the epoch's metrics, so a resumed curve has them
            ckpt.maybe(step, model, FitPosition(epoch + 1, 0, rng.bit_generator.state), total)
    return model, False


def _fit_warm(model: Any, X: Any, y: Any, scorer: _Scorer, epochs: int | None, classes: Any,
              batch_size: int | None, ckpt: TrainCheckpointer | None, start: TrainStart | None) -> tuple[Any, bool]:
    param = _warm_param(model)
    assert param is not None
    final = int(model.get_params()[param]) if start is None or start.position.final is None else start.position.final
    stages = max(1, min(epochs or 10, final))
    sizes = sorted({max(1, round(final * (i + 1) / stages)) for i in range(stages)})
    model.set_params(warm_start=True)
    for i, size in enumerate(sizes, 1):
        if start is not None and i <= start.step:
            continue  # grown before the checkpoint
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
        if ckpt is not None and i < len(sizes):
            ckpt.maybe(i, model, FitPosition(final=final), len(sizes))
    return model, False


def _fit_plain(model: Any, X: Any, y: Any, scorer: _Scorer, epochs: int | None, classes: Any,
               batch_size: int | None, ckpt: Any, start: Any) -> tuple[Any, bool]:
    report(message="fitting… (no intermediate progress for this estimator)")
    model.fit(X, y) if y is not None else model.fit(X)
    checkpoint()
    report(1, 1, "fitted", **scorer.metrics(model))
    return model, False


_FITTERS = {"callback": _fit_callback, "partial_fit": _fit_partial, "warm_start": _fit_warm, "fit": _fit_plain}


def _save_atomic(model: Any, path: str) -> str:
    import joblib

    return write_atomic(path, lambda tmp: joblib.dump(model, tmp))


def _train_job(estimator: Any, X: Any, y: Any, eval: Any, scoring: str | None, epochs: int | None,
               classes: Any, batch_size: int | None, strategy: str, save: str | None,
               ckpt: TrainCheckpointer | None = None, start: TrainStart | None = None) -> dict[str, Any]:
    scorer = _Scorer(X, y, eval, scoring)
    if start is None:
        model = clone(estimator)
    else:  # resumed: the curve goes on from the saved history, the bar from the saved step
        model = start.model
        ctx = current_context()
        if ctx is not None:
            for key, points in start.metrics.items():
                ctx.metrics.setdefault(key, []).extend(points)
        report(start.step, start.total, f"resumed from step {start.step}")
    if ckpt is not None:
        ckpt.start(start.step if start is not None else 0)
    model, stopped = _FITTERS[strategy](model, X, y, scorer, epochs, classes, batch_size, ckpt, start)
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
          priority: int = 0, timeout: float | None = None, checkpoint_every: Any = None,
          scheduler: Any = None, variables: Mapping[str, Any] | None = None) -> Job:
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
    checkpoint_every : int or str, optional
        Write a checkpoint (the model after its last step, the step, the
        metric history) every so many steps (``200``) or seconds
        (``"30s"``, ``"5min"``), so that `notebook_ext.resume` can go on
        after the kernel died. Only for ``partial_fit`` and ``warm_start``
        training. The file goes next to ``save`` (``PATH.ckpt``) or in the
        history's ``checkpoints/`` folder, and is deleted when the job ends
        ``done``. Default: every 60 s when ``save`` is given, else none.
    executor : {"thread", "process", "dask"}, optional
        Default "thread" (numpy and scikit-learn release the GIL).
    variables : mapping, optional
        The names of the notebook variables the data came from
        (``{"X": "X_train", "y": "y_train"}``), kept with the checkpoint so
        that ``%resume NAME`` finds them again.

    Returns
    -------
    Job
        Its result is the fitted estimator.

    Examples
    --------
    >>> job = train(SGDClassifier(), X, y, eval=(Xv, yv), epochs=30)   # doctest: +SKIP
    >>> model = job.result()                                           # doctest: +SKIP
    >>> job = train(SGDClassifier(), X, y, epochs=500, checkpoint_every="30s")  # doctest: +SKIP
    """
    if not (hasattr(estimator, "fit") and hasattr(estimator, "get_params")):
        raise TypeError(f"`estimator` must be a scikit-learn estimator (with fit and get_params), "
                        f"got {type(estimator).__name__}")
    _check_data(X, y, eval)
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
    if checkpoint_every is not None and strategy not in RESUMABLE:
        raise ValueError(f"`checkpoint_every`: {type(estimator).__name__} is trained by one uninterrupted "
                         f"{'fit' if strategy == 'fit' else 'solver run'}, which cannot go on from a "
                         f"checkpoint; checkpoints need partial_fit or warm_start training")
    if checkpoint_every is None and save is not None and strategy in RESUMABLE:
        checkpoint_every = DEFAULT_EVERY
    options = {"scoring": scoring, "epochs": epochs, "classes": classes, "batch_size": batch_size,
               "strategy": strategy, "save": save}
    ckpt = None
    if checkpoint_every is not None:
        steps, seconds = parse_every(checkpoint_every)
        path = checkpoint_path(sched, save, name or type(estimator).__name__)
        header = {"estimator": clone(estimator), "options": options,
                  "fingerprint": {"X": fingerprint(X), "y": fingerprint(y)}}
        ckpt = TrainCheckpointer(str(path), steps, seconds, header, sched.clock)
    return _submit(sched, estimator, X, y, eval, options, ckpt, None, name=name, executor=executor,
                   priority=priority, timeout=timeout, variables=variables)


RESUMABLE = ("partial_fit", "warm_start")


def _check_data(X: Any, y: Any, eval: Any) -> None:
    n = _length(X, "X")
    if y is not None and _length(y, "y") != n:
        raise ValueError(f"`X` and `y` must have the same number of rows, got {n} and {_length(y, 'y')}")
    if eval is not None:
        if not (isinstance(eval, (tuple, list)) and len(eval) == 2):
            raise TypeError("`eval` must be a pair (X_val, y_val)")
        if _length(eval[0], "eval X") != _length(eval[1], "eval y"):
            raise ValueError(f"`eval` X and y must have the same number of rows, got "
                             f"{_length(eval[0], 'eval X')} and {_length(eval[1], 'eval y')}")


def _submit(sched: Any, estimator: Any, X: Any, y: Any, eval: Any, options: dict[str, Any],
            ckpt: TrainCheckpointer | None, start: TrainStart | None, *, name: str | None,
            executor: str | None, priority: int, timeout: float | None,
            variables: Mapping[str, Any] | None) -> Job:
    """Submit a training job: a new one, or (``start``) one going on from a checkpoint."""
    strategy = options["strategy"]
    detail = TrainDetail(
        curve="val_score" if eval is not None else ("loss" if strategy == "partial_fit" else None),
        can_stop=strategy != "fit", strategy=strategy, estimator=repr(estimator)[:200],
        resumed_from=start.step if start is not None else None,
    )
    resume = None
    if ckpt is not None:
        resume = spec_json(TrainSpec(ckpt.path, ckpt.header["fingerprint"], (ckpt.steps, ckpt.seconds),
                                     executor=executor, variables=variables or {}))
        hold(ckpt.path)
    job = sched.submit(
        _train_job, estimator, X, y, eval, options["scoring"], options["epochs"], options["classes"],
        options["batch_size"], strategy, options["save"], ckpt, start,
        name=name or None, kind="train", executor=executor or "thread", priority=priority, timeout=timeout,
        params={"estimator": estimator, "strategy": strategy, "epochs": options["epochs"], "save": options["save"],
                **({"checkpoint_every": ckpt.steps or f"{ckpt.seconds:g}s"} if ckpt else {}),
                **({"resumed_from": start.step} if start else {})},
        finalize=_finalize, detail=detail, resume=resume,
        # a retry with checkpoints starts over on the same checkpoint (held, and cleaned up when done)
        retry_with=None if ckpt is None else (
            lambda old: _submit(sched, estimator, X, y, eval, options, ckpt, start, name=old.name,
                                executor=executor, priority=priority, timeout=timeout, variables=variables)),
    )
    if ckpt is not None:
        job.add_done_callback(lambda j: finished(sched, ckpt.path, j))
    return job
