"""notebook_ext: background jobs for Jupyter notebooks.

``%load_ext notebook_ext`` registers the magics (``%%bg``, ``%jobs``,
``%train`` …). Everything they do is also plain Python API here.
"""

from . import core
from .core import (
    Job, JobCancelled, JobSnapshot, JobTimedOut, Scheduler, WorkerDied, checkpoint,
    get_scheduler, jobs, progress, report, set_scheduler, stop_requested, submit, use_dask, wait,
)

__version__ = "0.1.0"


def dashboard(scheduler=None):
    """A live dashboard widget of every job (see `notebook_ext.ui.dashboard`)."""
    from .ui import dashboard as make

    return make(scheduler)

__all__ = [
    "dashboard", "Job", "JobCancelled", "JobSnapshot", "JobTimedOut", "Scheduler", "WorkerDied",
    "checkpoint", "get_scheduler", "jobs", "progress", "report", "set_scheduler",
    "stop_requested", "submit", "use_dask", "wait",
]


def load_ipython_extension(ipython):  # pragma: no cover - exercised in kernel tests
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython):  # pragma: no cover
    from .magics import unload_ipython_extension as unload

    unload(ipython)
