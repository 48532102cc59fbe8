"""The engine of notebook_ext: jobs, a scheduler, executors, progress and
history. Knows nothing of Jupyter (no IPython, no ipywidgets)."""

from ._api import get_scheduler, jobs, set_scheduler, submit, use_dask, wait
from ._context import (
    JobOutputRouter, checkpoint, current_context, current_job, install_output_capture, progress, report,
    stop_requested,
)
from ._executors import Executor, LoopExecutor, ThreadExecutor
from ._job import (
    ACTIVE_STATES, CANCELLED, DONE, FAILED, FINAL_STATES, INTERRUPTED, PENDING, QUEUED,
    RUNNING, STATES, TIMED_OUT, Job, JobCancelled, JobContext, JobError, JobSnapshot,
    JobTimedOut, Progress, WorkerDied,
)
from ._process import ProcessExecutor
from ._scheduler import Scheduler, WaitResult
from ._store import HistoryStore, default_history_path

__all__ = [
    "ACTIVE_STATES", "CANCELLED", "DONE", "FAILED", "FINAL_STATES", "INTERRUPTED", "PENDING",
    "QUEUED", "RUNNING", "STATES", "TIMED_OUT",
    "Executor", "HistoryStore", "Job", "JobCancelled", "JobContext", "JobError",
    "JobOutputRouter", "JobSnapshot", "JobTimedOut", "LoopExecutor", "ProcessExecutor",
    "Progress", "Scheduler", "ThreadExecutor", "WaitResult", "WorkerDied",
    "checkpoint", "current_context", "current_job", "default_history_path", "get_scheduler",
    "install_output_capture", "jobs", "progress", "report", "set_scheduler", "stop_requested",
    "submit", "use_dask", "wait",
]
