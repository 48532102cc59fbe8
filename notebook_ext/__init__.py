"""notebook_ext: background jobs for Jupyter notebooks.

``%load_ext notebook_ext`` registers the magics (``%%bg``, ``%jobs``,
``%train`` …). Everything they do is also plain Python API here;
``notebook_ext.ml`` and ``notebook_ext.ui`` are attributes too (imported
on first use, so ``import notebook_ext`` stays light).
"""

from __future__ import annotations

import importlib
from typing import Any

from .core import (
    FailedItem,
    ItemMap,
    Job,
    JobCancelled,
    JobDetail,
    JobError,
    JobSnapshot,
    JobTimedOut,
    LoopDied,
    Progress,
    Scheduler,
    WorkerDied,
    checkpoint,
    current_job,
    get_scheduler,
    give_way,
    history,
    jobs,
    map,
    pipeline,
    progress,
    report,
    set_scheduler,
    shutdown,
    stage,
    stop_requested,
    submit,
    submit_many,
    switch_interval,
    wait,
)
from .executors import use_dask

__version__ = "0.1.0"

# `map` is left out of __all__ on purpose: `from notebook_ext import *` must not hide the builtin.
__all__ = [
    "FailedItem", "ItemMap", "Job", "JobCancelled", "JobDetail", "JobError", "JobSnapshot", "JobTimedOut", "LoopDied", "Progress", "Scheduler",
    "WorkerDied", "checkpoint", "current_job", "dashboard", "get_scheduler", "give_way", "history", "jobs", "load_artifact", "pipeline", "progress",
    "report", "stage",
    "resume", "set_scheduler", "shutdown", "stop_requested", "submit", "submit_cell", "submit_many", "switch_interval", "use_dask", "wait",
]

_SUBMODULES = {"core", "executors", "lowlevel", "ml", "testing", "ui", "magics", "cells"}


def __getattr__(name: str) -> Any:
    # PEP 562: `nx.ml.train(...)` works after a bare `import notebook_ext as nx`,
    # without importing scikit-learn and ipywidgets for everyone.
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in ("resume", "load_artifact"):  # scikit-learn and joblib only when used
        return getattr(importlib.import_module(f"{__name__}.ml"), name)
    if name == "submit_cell":
        from .cells import submit_cell

        return submit_cell
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def dashboard(scheduler: Scheduler | None = None) -> Any:
    """A live dashboard widget of every job (see `notebook_ext.ui.dashboard`)."""
    from .ui import dashboard as make

    return make(scheduler)


def load_ipython_extension(ipython: Any) -> None:  # pragma: no cover - exercised in kernel tests
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:  # pragma: no cover
    from .magics import unload_ipython_extension as unload

    unload(ipython)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The Jupyter server extension (`notebook_ext.server`): the job ledger
    over HTTP for the JupyterLab / Notebook 7 extension."""
    return [{"module": "notebook_ext.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab / Notebook 7 extension shipped in the package."""
    return [{"src": "labextension", "dest": "notebook-ext"}]
