"""The engine of notebook_ext: jobs, a scheduler, progress and history.
Knows nothing of Jupyter (no IPython, no ipywidgets) and nothing of the
executors above it. The machinery is in `notebook_ext.core.lowlevel`."""

from ._api import get_scheduler, history, jobs, set_scheduler, shutdown, submit, submit_many, wait
from ._context import checkpoint, current_job, progress, report, stop_requested
from ._items import ItemMap, map
from ._pipeline import FailedItem, ItemsDetail, Pipeline, Stage, StageStats, pipeline, stage
from ._job import Job, WaitResult
from ._records import HistoryRecords, JobRecord, Owner
from ._states import (
    ACTIVE_STATES, CANCELLED, DONE, FAILED, FINAL_STATES, INTERRUPTED, PENDING, QUEUED, RUNNING, STATES,
    TIMED_OUT, JobCancelled, JobDetail, JobError, JobSnapshot, JobTimedOut, LoopDied, Progress, WorkerDied,
)
from ._scheduler import Scheduler
from ._gil import give_way, switch_interval

__all__ = [
    "ACTIVE_STATES", "CANCELLED", "DONE", "FAILED", "FINAL_STATES", "INTERRUPTED", "PENDING",
    "QUEUED", "RUNNING", "STATES", "TIMED_OUT",
    "FailedItem", "HistoryRecords", "ItemMap", "JobRecord", "Owner", "ItemsDetail", "Pipeline", "Stage", "StageStats",
    "Job", "JobCancelled", "JobDetail", "JobError", "JobSnapshot", "JobTimedOut", "LoopDied", "Progress",
    "Scheduler", "WaitResult", "WorkerDied",
    "checkpoint", "current_job", "get_scheduler", "history", "jobs", "progress", "report", "set_scheduler",
    "map", "pipeline", "shutdown", "stage", "stop_requested", "submit", "submit_many", "switch_interval", "give_way", "wait",
]
