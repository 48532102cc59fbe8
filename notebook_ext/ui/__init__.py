"""The widgets layer: live job cards, group cards and the dashboard, plus
text and HTML renderers for places without widgets. Built on the core's
observer snapshots; never drives the kernel's event loop."""

from __future__ import annotations

import threading
from typing import Any

from ..core import Job, Scheduler, get_scheduler
from ._pump import UpdatePump
from ._render import (
    history_table,
    jobs_table,
    snapshot_state,
    status_line,
    summary_html,
)
from ._widgets import Dashboard, DashboardRow, JobCard

__all__ = [
    "Dashboard", "DashboardRow", "JobCard", "UpdatePump", "card", "dashboard", "get_pump", "history_table",
    "jobs_table", "show", "snapshot_state", "status_line", "summary_html",
]

_pumps: dict[int, UpdatePump] = {}
_lock = threading.Lock()


def get_pump(scheduler: Any = None) -> UpdatePump:
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
    return get_pump(job.scheduler).card(job)


def show(job: Job) -> JobCard:
    """Display a live card for ``job`` under the running cell; its saved
    text/HTML fallback is refreshed when the job ends."""
    from IPython.display import display

    pump = get_pump(job.scheduler)
    widget = pump.card(job)
    pump.set_display_handle(widget, display(widget, display_id=True))
    return widget


def dashboard(scheduler: Scheduler | None = None) -> Dashboard:
    """A live dashboard of every job: state, progress, elapsed, priority,
    cancel / retry per job; stays light with thousands of jobs."""
    return get_pump(scheduler).dashboard()
