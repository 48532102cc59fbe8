"""11. Checkpoint cost: training wall time with ``checkpoint_every`` vs none.

`train(checkpoint_every=)` rewrites one joblib file (the model after its
last step, the step, the batch order, the metric history) atomically, in
the training thread, between steps. Three cases, each against the same
training without checkpoints (same data, same ``random_state``):

- an `SGDClassifier` (``partial_fit`` steps, a model of a few KB) trained
  about 8 s, a checkpoint every 2 s (3 or 4 a run);
- a `RandomForestClassifier` (``warm_start`` stages) trained about 8 s,
  whose checkpoints are big (the forest so far: about 10 to 35 MB),
  a checkpoint every 2 s;
- the worst case, for information: a smaller SGD case checkpointing every step.

The runs are short so that 5 of each side fit in about 3 minutes on 2
cores; the interval is short with them, so a run holds several
checkpoints (a harder test than the 10 s of earlier, longer runs). Each
side runs once untimed first (tiny sizes), then the sides alternate,
changing which goes first. The models trained with checkpoints must
predict exactly as those trained without.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import SGDClassifier

import notebook_ext as nx
import notebook_ext.ml
from notebook_ext.ml._checkpoints import TrainCheckpointer

from ._table import Row, median_spread

TARGET = 1.05
N_TEST = 2000  # held-out rows the two sides' predictions are compared on


def _data(n: int, flip_y: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y = make_classification(n_samples=n + N_TEST, n_features=20, n_informative=10, flip_y=flip_y,
                               random_state=0)
    return X[:n], y[:n], X[n:]


def _train(s: nx.Scheduler, est: Any, X: np.ndarray, y: np.ndarray, epochs: int, batch_size: int | None,
           every: Any) -> tuple[float, Any, TrainCheckpointer | None]:
    """One training job, submit to result: seconds, the model, its checkpointer."""
    t0 = time.perf_counter()
    job = nx.ml.train(est, X, y, epochs=epochs, batch_size=batch_size, checkpoint_every=every, scheduler=s,
                      name="bench-checkpoint")
    # The job's own checkpointer (read only), to count the checkpoints it wrote.
    ckpt = next((a for a in job.args if isinstance(a, TrainCheckpointer)), None)
    model = job.result(900)
    elapsed = time.perf_counter() - t0
    assert job.state == "done", job.state
    assert (ckpt is not None) == (every is not None)
    return elapsed, model, ckpt


def _compare(s: nx.Scheduler, est: Any, X: np.ndarray, y: np.ndarray, X_test: np.ndarray, *, epochs: int,
             batch_size: int | None, every: Any, reps: int, warm: dict[str, Any]) -> dict[str, Any]:
    """Training with checkpoints vs without, interleaved; both sides warmed up first."""
    # Warm-up, untimed: both code paths (fitting, the checkpoint write) on tiny sizes.
    w_est = clone(est).set_params(**warm.get("params", {}))
    for w_every in (None, 1):
        _train(s, w_est, X[:warm["n"]], y[:warm["n"]], warm["epochs"], batch_size, w_every)
    times: dict[str, list[float]] = {"with": [], "without": []}
    written: list[int] = []
    expected = None
    last: tuple[Any, TrainCheckpointer] | None = None
    for rep in range(reps):  # interleaved, alternating which side goes first
        for side in (("without", "with") if rep % 2 == 0 else ("with", "without")):
            elapsed, model, ckpt = _train(s, est, X, y, epochs, batch_size, every if side == "with" else None)
            times[side].append(elapsed)
            predicted = model.predict(X_test)
            if expected is None:
                expected = predicted
            assert np.array_equal(predicted, expected), "checkpoints changed the trained model"
            if ckpt is not None:
                assert ckpt.written >= 1, f"no checkpoint written in {elapsed:.2f} s (every {every!r})"
                written.append(ckpt.written)
                last = (model, ckpt)
            del model
    assert last is not None
    return {"times": times, "written": written, "model": last[0], "last_step": last[1].last_step}


def _size(model: Any, folder: str) -> int:
    path = os.path.join(folder, "size.joblib")
    joblib.dump(model, path)
    size = os.path.getsize(path)
    os.unlink(path)
    return size


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.1f} KB"


def _counts(written: list[int]) -> str:
    lo, hi = min(written), max(written)
    return (f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}") + (" checkpoint" if hi == 1 else " checkpoints")


def _medians(result: dict[str, Any]) -> tuple[float, float]:
    """The median times of the runs with and without checkpoints."""
    return median_spread(result["times"]["with"])[0], median_spread(result["times"]["without"])[0]


def _row(case: str, result: dict[str, Any], target: str, met: bool | None, note: str) -> Row:
    w, w_spread = median_spread(result["times"]["with"])
    wo, wo_spread = median_spread(result["times"]["without"])
    ratios = sorted(x / y for x, y in zip(result["times"]["with"], result["times"]["without"]))
    return Row("checkpoint", case, w, wo, "no checkpoints", "s", w_spread, target,
               "" if met is None else ("yes" if met else "NO"),
               note=f"without checkpoints {wo_spread}; with/without ratio of each round {ratios[0]:.2f}–"
                    f"{ratios[-1]:.2f}x; rounds alternate which side goes first, after one untimed run of each "
                    f"side (tiny sizes). {note}")


def run(quick: bool) -> list[Row]:
    reps = 2 if quick else 5
    every = "0.1s" if quick else "2s"
    # Sizes: about 0.5 s a run quick; about 8 s a run full (0.44 ms a partial_fit step, 0.09 s a tree, on a
    # 2-core EPYC), so the whole benchmark takes about 3 minutes there.
    sgd = {"n": 3000, "epochs": 15} if quick else {"n": 50_000, "epochs": 22}
    forest = {"n": 3000, "trees": 60, "stages": 10} if quick else {"n": 27_000, "trees": 90, "stages": 30}
    worst = {"n": 1000, "epochs": 5} if quick else {"n": 10_000, "epochs": 10}
    batch = 64
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        s = nx.Scheduler(history=Path(tmp) / "h.sqlite3")
        try:
            # A: SGD, partial_fit steps, a small model.
            X, y, X_test = _data(sgd["n"], 0.01)
            est = SGDClassifier(random_state=0)
            res = _compare(s, est, X, y, X_test, epochs=sgd["epochs"], batch_size=batch, every=every, reps=reps,
                           warm={"n": 2000, "epochs": 2})
            steps = sgd["epochs"] * -(-sgd["n"] // batch)
            w, wo = _medians(res)
            ratio = w / wo
            rows.append(_row(
                f"SGDClassifier, {sgd['n']:,} x 20, {steps:,} partial_fit steps of {batch} rows, "
                f"checkpoint every {every}", res, f"<= {TARGET:.2f}x", ratio <= TARGET,
                f"{_counts(res['written'])} written per run (counted by the job's checkpointer); "
                f"the model in each is {_mb(_size(res['model'], tmp))} by joblib (plus the step, the "
                f"estimator's parameters and the metric history). The models with and without checkpoints "
                f"predict identically on {N_TEST:,} held-out rows."))
            del res

            # B: random forest, warm_start stages, big checkpoints.
            X, y, X_test = _data(forest["n"], 0.2)
            est = RandomForestClassifier(n_estimators=forest["trees"], random_state=0)
            res = _compare(s, est, X, y, X_test, epochs=forest["stages"], batch_size=None, every=every,
                           reps=reps, warm={"n": 2000, "epochs": 2, "params": {"n_estimators": 10}})
            model, k = res["model"], res["last_step"]
            trees = max(1, round(forest["trees"] * k / forest["stages"]))  # _fit_warm's stage sizes
            partial = copy.copy(model)
            partial.estimators_ = model.estimators_[:trees]
            partial.n_estimators = trees
            last_size, final_size = _size(partial, tmp), _size(model, tmp)
            del partial, model
            w, wo = _medians(res)
            ratio = w / wo
            rows.append(_row(
                f"RandomForestClassifier({forest['trees']} trees), {forest['n']:,} x 20, {forest['stages']} "
                f"warm_start stages, checkpoint every {every}", res, f"<= {TARGET:.2f}x", ratio <= TARGET,
                f"{_counts(res['written'])} written per run; the last held {trees} of "
                f"{forest['trees']} trees, {_mb(last_size)} by joblib (the final model is "
                f"{_mb(final_size)}). With and without checkpoints predict identically on {N_TEST:,} "
                f"held-out rows."))
            del res

            # C: worst case, a checkpoint after every step.
            X, y, X_test = _data(worst["n"], 0.01)
            est = SGDClassifier(random_state=0)
            res = _compare(s, est, X, y, X_test, epochs=worst["epochs"], batch_size=batch, every=1, reps=reps,
                           warm={"n": 2000, "epochs": 2})
            steps = worst["epochs"] * -(-worst["n"] // batch)
            w, wo = _medians(res)
            extra = w - wo
            n_written = int(np.median(res["written"]))
            rows.append(_row(
                f"worst case: SGDClassifier, {worst['n']:,} x 20, {steps:,} steps, checkpoint every step (1)",
                res, "reported as is", None,
                f"{_counts(res['written'])} written per run; the difference of the medians is "
                f"{extra * 1000 / max(1, n_written):.2f} ms per checkpoint (a small model: the cost is the "
                f"file's creation, joblib's dump and the rename). Same predictions with and without."))
        finally:
            s.shutdown()
    return rows
