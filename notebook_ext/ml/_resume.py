"""Resume after a crash: find an interrupted job in the history, check that
the data it is given is its data, and go on from its checkpoint under the
same name; and load what jobs saved."""

from __future__ import annotations

import os
import sys
from typing import Any, Mapping

from ..core import Job, Pipeline, get_scheduler
from ..core import JobRecord
from ._checkpoints import (
    ItemLog, TrainCheckpointer, TrainStart, differs, fingerprint, read_checkpoint, read_parts,
)
from ._preprocess import Resumption, RunStart, _pipeline
from ._preprocess import _submit as _submit_preprocess
from ._specs import PreprocessSpec, ResumeSpec, TrainSpec, read_spec
from ._train import _check_data, _submit


def resume(name: "str | JobRecord", *data: Any, eval: Any = None, func: Any = None, into: Any = None,
           executor: str | None = None, priority: int = 0, scheduler: Any = None,
           variables: Mapping[str, Any] | None = None) -> Job:
    """Go on with job ``name`` from its last checkpoint, after the kernel
    that ran it died (or after it failed or was cancelled).

    The job is found in the history (of any session). ``data`` is what it
    was given: ``X, y`` for `train` (``eval=`` again for its curve), the
    items (or the pipeline) for `preprocess`. Data that differ from the
    checkpoint's (shape, dtype or values) are refused in one line. A
    training job goes on from the step it had reached, with the same batch
    order and random state, so it ends with the model an uninterrupted run
    would have made; preprocessing runs only the items not finished yet.
    The new job has the same name; its card says where it picked up.

    For preprocessing, ``func`` and ``into`` default to the functions of
    the same names in the notebook's namespace.

    ``name`` may also be the job's `JobRecord` (from `history`), read
    already. ``variables`` replaces the names of the notebook variables the
    job was started with (``%resume`` keeps them for the next resume).

    Examples
    --------
    >>> job = nx.resume("fit", X_train, y_train)     # doctest: +SKIP
    >>> job = nx.resume("clean", paths)              # doctest: +SKIP   (or: %resume clean)
    """
    sched = scheduler or get_scheduler()
    record, spec = _resumable(sched, name)
    sched.store.claim(record)  # one resumer: another process holding it is refused, named
    try:
        if isinstance(spec, TrainSpec):
            job = _resume_train(sched, record, spec, data, eval, executor, priority, variables)
        else:
            job = _resume_preprocess(sched, record, spec, data, func, into, priority, variables)
    except BaseException:
        sched.store.unclaim(record)
        raise
    sched.store.claimed(record.uid, job)
    return job


def _resumable(sched: Any, name: "str | JobRecord") -> tuple[JobRecord, ResumeSpec]:
    """The record of the job to resume and its spec, or `ValueError` saying why it cannot be resumed."""
    record = name if isinstance(name, JobRecord) else None
    name = record.name if record is not None else name
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a job's name (or its JobRecord), got {type(name).__name__}")
    live = sched.jobs.get(name)
    if live is not None and not live.done():
        raise ValueError(f"job {name!r} is still {live.state} in this kernel: nothing to resume")
    if not sched.store.enabled:
        raise ValueError("resume needs the job history, and it is off (NOTEBOOK_EXT_HISTORY)")
    record = record if record is not None else sched.store.find(name)
    if record is None:
        raise ValueError(f"no job named {name!r} in the history ({sched.store.path})")
    if record.state == "done":
        raise ValueError(f"job {name!r} finished (done): nothing to resume")
    if record.live:
        raise ValueError(f"job {name!r} is still {record.state} in {record.owner}: nothing to resume "
                         f"(cancel it there, or `python -m notebook_ext cancel {record.uid}`)")
    try:
        spec = read_spec(record.resume)
    except ValueError as exc:
        raise ValueError(f"job {name!r} cannot be resumed: {exc}") from None
    if spec is None:
        raise ValueError(f"job {name!r} ({record.state}) kept no checkpoint; run it with checkpoint_every= "
                         f"(%train --checkpoint) to make it resumable")
    if not os.path.exists(spec.path):
        raise ValueError(f"job {name!r} ({record.state}) has no checkpoint on disk: it stopped before "
                         f"its first one, or the checkpoint was pruned")
    return record, spec


def _refuse(name: str, why: str | None) -> None:
    if why is not None:
        raise ValueError(f"cannot resume {name!r}: {why}; resume needs the data it was started with")


def _resume_train(sched: Any, record: JobRecord, spec: TrainSpec, data: tuple[Any, ...], eval: Any,
                  executor: str | None, priority: int, variables: Mapping[str, Any] | None) -> Job:
    name = record.name
    if len(data) not in (1, 2):
        raise TypeError(f"resume({name!r}, X, y): give the training data again")
    X, y = data[0], data[1] if len(data) == 2 else None
    _check_data(X, y, eval)
    content = read_checkpoint(spec.path)
    _refuse(name, differs(content["fingerprint"], {"X": fingerprint(X), "y": fingerprint(y)}))
    steps, seconds = spec.every
    header = {k: content[k] for k in ("estimator", "options", "fingerprint")}
    ckpt = TrainCheckpointer(spec.path, steps, seconds, header, sched.clock)
    start = TrainStart.of(content)
    return _submit(sched, content["estimator"], X, y, eval, content["options"], ckpt, start, name=name,
                   executor=executor or spec.executor, priority=priority, timeout=None,
                   variables=variables or spec.variables)


def _resume_preprocess(sched: Any, record: JobRecord, spec: PreprocessSpec, data: tuple[Any, ...], func: Any,
                       into: Any, priority: int, variables: Mapping[str, Any] | None) -> Job:
    name = record.name
    if len(data) != 1:
        raise TypeError(f"resume({name!r}, items): give the items (or the pipeline) again")
    (items,) = data
    source = items.source if isinstance(items, Pipeline) else items
    if spec.pipeline != isinstance(items, Pipeline):
        raise TypeError(f"resume({name!r}, ...): it ran {'a pipeline' if spec.pipeline else 'a function'}; "
                        f"give {'the pipeline' if spec.pipeline else 'its items'} again")
    _refuse(name, differs(dict(spec.fingerprint), {"items": fingerprint(source)}))
    if not spec.pipeline:
        func = func if func is not None else _from_notebook(spec.func, "func", name)
    if spec.sink:
        into = into if into is not None else _from_notebook(spec.into, "into", name)
    done = ItemLog.read(spec.path)
    earlier = read_parts(spec.path) if into is None else {}
    steps, seconds = spec.every
    every = steps if steps is not None else (f"{seconds}s" if seconds is not None else None)
    options = dict(spec.options) if not spec.pipeline else {}
    if spec.pipeline:
        func = items
    pipe = _pipeline(func, None if spec.pipeline else items, **options)
    return _submit_preprocess(sched, func, pipe, RunStart(resumption=Resumption(spec.path, done, earlier)),
                              into=into, name=name, priority=priority, checkpoint_every=every,
                              variables=variables or spec.variables, options=options)


def _from_notebook(fname: str | None, what: str, name: str) -> Any:
    """The notebook's function of that name (the kernel's namespace is ``__main__``'s)."""
    found = vars(sys.modules["__main__"]).get(fname) if fname else None
    if not callable(found):
        raise ValueError(f"resume({name!r}, ...): give `{what}=` (the function it ran"
                         f"{f', {fname!r},' if fname else ''} is not defined here)")
    return found


def load_artifact(name: str, scheduler: Any = None) -> Any:
    """The model job ``name`` saved (``save=``), from the history of any
    session; for a job that did not finish, the model of its last checkpoint.

    Examples
    --------
    >>> model = nx.load_artifact("fit")     # doctest: +SKIP
    """
    import joblib

    sched = scheduler or get_scheduler()
    record = sched.store.find(name) if sched.store.enabled else None
    if record is None:
        raise ValueError(f"no job named {name!r} in the history")
    for path in reversed(record.artifacts):
        if os.path.exists(path):
            return joblib.load(path)
    spec = read_spec(record.resume)
    if isinstance(spec, TrainSpec) and os.path.exists(spec.path):
        return read_checkpoint(spec.path)["model"]
    missing = f" (missing: {', '.join(record.artifacts)})" if record.artifacts else ""
    raise FileNotFoundError(f"job {name!r} ({record.state}) left no saved model{missing}")
