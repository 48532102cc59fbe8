"""Checkpoints of training and preprocessing jobs, and the fingerprints that
tell whether the data given to `resume` is the data they were made from.

A training checkpoint is one joblib file, rewritten atomically: the model
after its last completed step, the step, what the fitter needs to go on
exactly as it would have (the epoch, the batch, the random generator's
state) and the metric history. Preprocessing keeps the indices of the
items its sink took (one line each, appended) and, when asked, the results
it produced, in parts.

A checkpoint protects a run and never ends it: one that cannot be written
(a full disk, a read-only folder) pauses checkpoints with one line in the
job's output, and the next is tried at its time. Checkpoints are pickles
that `resume` loads, so the history's folder for them must be private
(`private_folder`); one that cannot be read is refused in one line.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import asdict, dataclass, fields
from datetime import timedelta
from typing import Any

import numpy as np

from ..core.lowlevel import (SYSTEM_CLOCK, Clock, checkpoint_folder, current_context, new_checkpoint, private_folder,
                             prune, release, write_atomic)

FORMAT = 1
DEFAULT_EVERY = "60s"
_TIME = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)\s*$", re.I)
_STEPS = re.compile(r"^\s*(\d+)\s*(steps?)?\s*$", re.I)


def parse_every(value: Any) -> tuple[int | None, float | None]:
    """``checkpoint_every`` as (steps, seconds): ``100`` or ``"100 steps"``;
    ``"30s"``, ``"5 min"``, ``"1h"`` or a `timedelta`."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        if seconds > 0:
            return None, seconds
    elif isinstance(value, int) and not isinstance(value, bool):
        if value > 0:
            return value, None
    elif isinstance(value, str):
        if (m := _STEPS.match(value)) and int(m[1]) > 0:
            return int(m[1]), None
        if (m := _TIME.match(value)) and float(m[1]) > 0:
            unit = m[2][0].lower()
            return None, float(m[1]) * {"s": 1, "m": 60, "h": 3600}[unit]
    raise ValueError(f"`checkpoint_every` must be a number of steps (100) or a time ('30s', '5min', '1h'), "
                     f"got {value!r}")


def checkpoint_path(sched: Any, save: str | None, name: str) -> str:
    """Where a job's checkpoint goes: beside ``save`` when given, else in
    the history's ``checkpoints/`` folder."""
    if save is not None:
        return os.path.abspath(save) + ".ckpt"
    folder = checkpoint_folder(sched.store.path if sched.store.enabled else None)
    if folder is None:
        raise ValueError("`checkpoint_every` needs the job history (NOTEBOOK_EXT_HISTORY is off) "
                         "or `save=PATH` (the checkpoint goes next to it)")
    private_folder(folder)  # resume unpickles what is in there
    prune(folder, keep=sched.store.live_checkpoints())  # room for this one: the oldest of the jobs not running go first
    return str(new_checkpoint(folder, name))


def finished(sched: Any, path: str, job: Any) -> None:
    """A job writing checkpoints at ``path`` ended: they go when it succeeded
    (nothing to resume), stay otherwise; the history's checkpoint folder is
    then kept under its cap (a folder of the user's, beside ``save``, never)."""
    release(path, delete=job.state == "done")
    folder = checkpoint_folder(sched.store.path if sched.store.enabled else None)
    if folder is not None and os.path.realpath(os.path.dirname(path)) == os.path.realpath(folder):
        prune(folder, keep=sched.store.live_checkpoints())


# -- fingerprints -------------------------------------------------------------
def fingerprint(data: Any) -> dict[str, Any] | None:
    """Shape, dtype and a hash of every value of ``data`` (None for None).
    Arrays are hashed from their memory (BLAKE2b, about 1 GB/s); other
    data through joblib's hash. An iterator cannot be hashed without
    consuming it: its fingerprint only says so."""
    if data is None:
        return None
    h = hashlib.blake2b(digest_size=16)
    shape = getattr(data, "shape", None)
    if hasattr(data, "iloc") and hasattr(data, "dtypes"):  # pandas: values and index, column by column
        import pandas as pd

        h.update(pd.util.hash_pandas_object(data, index=True).to_numpy().tobytes())
        h.update(repr(list(getattr(data, "columns", [getattr(data, "name", None)]))).encode())
        dtype = str(data.dtypes.to_dict()) if hasattr(data.dtypes, "to_dict") else str(data.dtypes)
    elif hasattr(data, "tocsr") and hasattr(data, "nnz"):  # scipy sparse
        csr = data.tocsr()
        for part in (csr.data, csr.indices, csr.indptr):
            h.update(memoryview(np.ascontiguousarray(part)).cast("B"))
        dtype = str(csr.dtype)
    elif isinstance(data, np.ndarray) and data.dtype != object:
        h.update(memoryview(np.ascontiguousarray(data)).cast("B"))
        dtype = str(data.dtype)
    elif isinstance(data, (list, tuple)) and all(type(x) is str for x in data):  # file names: 20x faster
        h.update("".join(data).encode("utf-8", "surrogatepass"))
        h.update(np.fromiter(map(len, data), dtype=np.int64, count=len(data)).tobytes())  # where each ends
        shape, dtype = (len(data),), type(data).__name__
    elif isinstance(data, (list, tuple, np.ndarray, str, bytes, range)):
        import joblib

        h.update(joblib.hash(data).encode())
        shape, dtype = (len(data),), type(data).__name__
    else:
        return {"shape": None, "dtype": type(data).__name__, "hash": None}
    return {"shape": list(shape) if shape is not None else None, "dtype": dtype, "hash": h.hexdigest()}


def differs(saved: dict[str, Any], given: dict[str, Any]) -> str | None:
    """Why ``given`` (name -> fingerprint) is not the data of ``saved``; None if it is."""
    for key, old in saved.items():
        new = given.get(key)
        if old is None and new is None:
            continue
        if old is None or new is None:
            return f"{key} was {'given' if old else 'not given'} then and is {'given' if new else 'not'} now"
        if old.get("hash") is None:
            continue  # an iterator: nothing to compare
        if (old["shape"], old["dtype"]) != (new["shape"], new["dtype"]):
            return (f"{key} has shape {_shape(new)} {new['dtype']}, the checkpoint's had "
                    f"{_shape(old)} {old['dtype']}")
        if old["hash"] != new["hash"]:
            return f"{key} has the same shape {_shape(new)} but other values"
    return None


def _shape(fp: dict[str, Any]) -> str:
    return str(tuple(fp["shape"])) if fp.get("shape") is not None else "?"


# -- training -------------------------------------------------------------------
@dataclass(frozen=True)
class FitPosition:
    """Where a fitter goes on from: ``partial_fit``'s next epoch and batch
    and the state of the generator that orders that epoch's batches;
    ``warm_start``'s final size (its step is the stage)."""

    epoch: int = 1
    batch: int = 0
    rng: "dict[str, Any] | None" = None
    final: int | None = None


@dataclass(frozen=True)
class TrainStart:
    """What a resumed training job starts from: a checkpoint's model, step
    (of ``total``), position and metric history."""

    model: Any
    step: int
    total: int | None
    position: FitPosition
    metrics: dict[str, list[Any]]

    @classmethod
    def of(cls, content: dict[str, Any]) -> "TrainStart":
        """From a checkpoint's contents (`read_checkpoint`)."""
        known = {f.name for f in fields(FitPosition)}
        position = FitPosition(**{k: v for k, v in dict(content["state"]).items() if k in known})
        return cls(content["model"], int(content["step"]), content["total"], position, dict(content["metrics"]))


class TrainCheckpointer:
    """Writes the model every ``steps`` steps or ``seconds`` seconds of
    ``clock`` (picklable: it travels to worker processes with the job, and
    there it keeps time by their clock)."""

    def __init__(self, path: str, steps: int | None, seconds: float | None, header: dict[str, Any],
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = path
        self.steps = steps
        self.seconds = seconds
        self.header = header  # estimator, options, fingerprint: what `resume` needs besides the state
        self.clock = clock
        self.last_step = 0
        self.last_time: float | None = None  # None: not started
        self.written = 0
        self.pause = Pause()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "last_time": None, "clock": SYSTEM_CLOCK}

    def start(self, step: int) -> None:
        self.last_step, self.last_time = step, self.clock.monotonic()

    def due(self, step: int) -> bool:
        if self.last_time is None:
            self.start(step)
        if self.steps is not None:
            return step - self.last_step >= self.steps
        assert self.seconds is not None and self.last_time is not None
        return self.clock.monotonic() - self.last_time >= self.seconds

    def maybe(self, step: int, model: Any, position: FitPosition, total: int | None) -> None:
        if self.due(step):
            self.write(step, model, position, total)

    def write(self, step: int, model: Any, position: FitPosition, total: int | None) -> None:
        import joblib

        ctx = current_context()
        metrics = {k: list(v) for k, v in list(ctx.metrics.items())} if ctx is not None else {}
        content = {**self.header, "format": FORMAT, "step": step, "total": total, "state": asdict(position),
                   "model": model, "metrics": metrics, "written": self.clock.time()}
        self.start(step)  # failed or not, the next one is tried at its time
        try:
            write_atomic(self.path, lambda tmp: joblib.dump(content, tmp))
        except OSError as exc:  # the disk, not the run: training goes on
            self.pause.failed(exc, self.path, "training goes on; the next checkpoint is tried at its time")
            return
        self.pause.written(f"checkpoints written again from step {step}: {self.path}")
        self.written += 1


class Pause:
    """Checkpoints that cannot be written (a full disk, a read-only folder)
    pause: said once, in one line, and said again when they are written
    again. The run they protect goes on."""

    def __init__(self) -> None:
        self.paused = False

    def failed(self, exc: OSError, path: str, goes_on: str) -> None:
        if not self.paused:
            self.paused = True
            _tell(f"checkpoints paused: {exc.strerror or exc}, {path} ({goes_on})")

    def written(self, line: str) -> None:
        if self.paused:
            self.paused = False
            _tell(line)


def _tell(line: str) -> None:
    """One line in the running job's output (and on its card); a warning outside a job."""
    ctx = current_context()
    if ctx is None:
        warnings.warn(f"notebook_ext: {line}", RuntimeWarning, stacklevel=3)
        return
    ctx.message = line
    ctx.output.write(line + "\n")


def _load(path: str, what: str, remedy: str) -> Any:
    """``joblib.load``, with a damaged file refused in one line that names it."""
    import joblib

    try:
        return joblib.load(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # a truncated or overwritten pickle raises anything: EOFError, KeyError, ...
        text = " ".join(str(exc).split())
        reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        raise ValueError(f"{what} {path} is damaged (truncated or overwritten; {reason}); {remedy}") from exc


def read_checkpoint(path: str) -> dict[str, Any]:
    content = _load(path, "checkpoint", "delete it and train again from the start (it cannot be resumed)")
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise ValueError(f"{path} is not a notebook_ext checkpoint of this version")
    return content


# -- preprocessing --------------------------------------------------------------
class ItemLog:
    """The indices of the items a sink took, one line each, appended with one
    ``write`` per item (a killed process loses none that returned)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self.pause = Pause()  # shared with the parts of kept results that go with this log
        self.unlogged = 0  #: items the sink took that a full or read-only disk kept out of the log

    def add(self, index: int) -> None:
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.write(self._fd, b"%d\n" % index)
        except OSError as exc:  # the disk, not the run: the items go on (a resume re-runs unlogged ones)
            self.unlogged += 1
            self.pause.failed(exc, self.path, "the items go on; a resume runs the ones not logged again")
            return
        self.pause.written(f"checkpoints written again: {self.path}")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def read(path: str) -> set[int]:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return set()
        lines = data.split(b"\n")
        return {int(line) for line in lines[:-1] if line.strip().isdigit()}  # the last may be cut short


def part_paths(base: str) -> list[str]:
    folder, name = os.path.split(base)
    try:
        found = [f for f in os.listdir(folder or ".") if f.startswith(name + ".part-")]
    except FileNotFoundError:
        return []
    return [os.path.join(folder, f) for f in sorted(found, key=lambda f: int(f.rsplit("-", 1)[1]))]


def write_part(base: str, number: int, results: dict[int, Any]) -> None:
    import joblib

    write_atomic(f"{base}.part-{number}", lambda tmp: joblib.dump(results, tmp))


def read_parts(base: str) -> dict[int, Any]:
    results: dict[int, Any] = {}
    for path in part_paths(base):
        results.update(_load(path, "part of the kept results",
                             f"delete {base}.* and run preprocess() again from the start (it cannot be resumed)"))
    return results
