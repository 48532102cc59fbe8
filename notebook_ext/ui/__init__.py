"""The widgets layer: live job cards, group cards and the dashboard, plus
text and HTML renderers for places without widgets. Built on the core's
observer snapshots; never drives the kernel's event loop."""

from __future__ import annotations

import threading

from ..core import Job, Scheduler, get_scheduler
from ._pump import UpdatePump
from ._render import jobs_table, history_table, snapshot_state, status_line, summary_html
from ._widgets import Dashboard, JobCard

__all__ = [
    "Dashboard", "JobCard", "UpdatePump", "card", "dashboard", "get_pump", "history_table",
    "jobs_table", "snapshot_state", "status_line", "summary_html",
]

_pumps: dict[int, UpdatePump] = {}
_lock = threading.Lock()


def get_pump(scheduler: Scheduler | None = None) -> UpdatePump:
    """The update pump of ``scheduler`` (default: the default scheduler)."""
    scheduler = scheduler or get_scheduler()
    with _lock:
        pump = _pumps.get(id(scheduler))
        if pump is None or pump.scheduler is not scheduler:
            pump = _pumps[id(scheduler)] = UpdatePump(scheduler)
        return pump


def card(job: Job) -> JobCard:
    """A live card for ``job`` (display it, or let the notebook show it).

    Examples
    --------
    >>> card(notebook_ext.submit(work))        # doctest: +SKIP
    """
    return get_pump(job._scheduler).card(job)


def dashboard(scheduler: Scheduler | None = None) -> Dashboard:
    """A live dashboard of every job: state, progress, elapsed, priority,
    cancel / retry per job; stays light with thousands of jobs."""
    return get_pump(scheduler).dashboard()
