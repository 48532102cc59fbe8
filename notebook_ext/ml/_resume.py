"""Resume after a crash: find an interrupted job in the history, check that
the data it is given is its data, and go on from its checkpoint under the
same name; and load what jobs saved."""

from __future__ import annotations

import os
import sys
from typing import Any

from ..core import Job, Pipeline, get_scheduler
from ..core import JobRecord
from ._checkpoints import (
    ItemLog, TrainCheckpointer, differs, fingerprint, read_checkpoint, read_parts,
)
from ._preprocess import Resumption, preprocess
from ._train import _check_data, _submit


def resume(name: str, *data: Any, eval: Any = None, func: Any = None, into: Any = None,
           executor: str | None = None, priority: int = 0, scheduler: Any = None,
           _vars: dict[str, Any] | None = None, _record: JobRecord | None = None) -> Job:
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

    Examples
    --------
    >>> job = nx.resume("fit", X_train, y_train)     # doctest: +SKIP
    >>> job = nx.resume("clean", paths)              # doctest: +SKIP   (or: %resume clean)
    """
    sched = scheduler or get_scheduler()
    record = _resumable(sched, name, _record)  # `%resume` read the record already
    spec = record.resume
    assert spec is not None
    sched.store.claim(record)  # one resumer: another process holding it is refused, named
    try:
        if spec["kind"] == "train":
            job = _resume_train(sched, record, data, eval, executor, priority, _vars)
        else:
            job = _resume_preprocess(sched, record, data, func, into, priority, _vars)
    except BaseException:
        sched.store.unclaim(record)
        raise
    sched.store.claimed(record.uid, job)
    return job


def _resumable(sched: Any, name: str, record: JobRecord | None = None) -> JobRecord:
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a job's name, got {type(name).__name__}")
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
    spec = record.resume
    if not spec:
        raise ValueError(f"job {name!r} ({record.state}) kept no checkpoint; run it with checkpoint_every= "
                         f"(%train --checkpoint) to make it resumable")
    if not os.path.exists(spec["path"]):
        raise ValueError(f"job {name!r} ({record.state}) has no checkpoint on disk: it stopped before "
                         f"its first one, or the checkpoint was pruned")
    return record


def _refuse(name: str, why: str | None) -> None:
    if why is not None:
        raise ValueError(f"cannot resume {name!r}: {why}; resume needs the data it was started with")


def _resume_train(sched: Any, record: JobRecord, data: tuple, eval: Any, executor: str | None,
                  priority: int, vars: dict[str, Any] | None) -> Job:
    name, spec = record.name, record.resume or {}
    if len(data) not in (1, 2):
        raise TypeError(f"resume({name!r}, X, y): give the training data again")
    X, y = data[0], data[1] if len(data) == 2 else None
    _check_data(X, y, eval)
    content = read_checkpoint(spec["path"])
    _refuse(name, differs(content["fingerprint"], {"X": fingerprint(X), "y": fingerprint(y)}))
    steps, seconds = spec["every"]
    header = {k: content[k] for k in ("estimator", "options", "fingerprint")}
    ckpt = TrainCheckpointer(spec["path"], steps, seconds, header)
    start = {k: content[k] for k in ("model", "step", "total", "state", "metrics")}
    return _submit(sched, content["estimator"], X, y, eval, content["options"], ckpt, start, name=name,
                   executor=executor or spec.get("executor"), priority=priority, timeout=None,
                   vars=vars or spec.get("vars"))


def _resume_preprocess(sched: Any, record: JobRecord, data: tuple, func: Any, into: Any,
                       priority: int, vars: dict[str, Any] | None) -> Job:
    name, spec = record.name, record.resume or {}
    if len(data) != 1:
        raise TypeError(f"resume({name!r}, items): give the items (or the pipeline) again")
    (items,) = data
    source = items.source if isinstance(items, Pipeline) else items
    if spec["pipeline"] != isinstance(items, Pipeline):
        raise TypeError(f"resume({name!r}, ...): it ran {'a pipeline' if spec['pipeline'] else 'a function'}; "
                        f"give {'the pipeline' if spec['pipeline'] else 'its items'} again")
    _refuse(name, differs(spec["fingerprint"], {"items": fingerprint(source)}))
    if not spec["pipeline"]:
        func = func if func is not None else _from_notebook(spec["func"], "func", name)
    if spec["sink"]:
        into = into if into is not None else _from_notebook(spec["into"], "into", name)
    done = ItemLog.read(spec["path"])
    earlier = read_parts(spec["path"]) if into is None else {}
    steps, seconds = spec["every"]
    every = steps if steps is not None else (f"{seconds}s" if seconds is not None else None)
    options = dict(spec["options"]) if not spec["pipeline"] else {}
    return preprocess(items if spec["pipeline"] else func, None if spec["pipeline"] else items, into=into,
                      name=name, priority=priority, scheduler=sched, checkpoint_every=every,
                      _resume=Resumption(spec["path"], done, earlier), _vars=vars or spec.get("vars"), **options)


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
    spec = record.resume or {}
    if spec.get("kind") == "train" and spec.get("path") and os.path.exists(spec["path"]):
        return read_checkpoint(spec["path"])["model"]
    missing = f" (missing: {', '.join(record.artifacts)})" if record.artifacts else ""
    raise FileNotFoundError(f"job {name!r} ({record.state}) left no saved model{missing}")
