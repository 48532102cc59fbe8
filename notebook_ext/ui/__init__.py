"""The widgets layer: live job cards, group cards and the dashboard, plus
text and HTML renderers for places without widgets. Built on the core's
observer snapshots; never drives the kernel's event loop."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from ..core import Job, Scheduler, get_scheduler
from ._display import route_displays
from ._status import keep_status_true
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
    "CARDS_PER_CELL", "Dashboard", "DashboardRow", "JobCard", "UpdatePump", "card", "dashboard", "get_pump", "history_table",
    "keep_status_true", "route_displays",
    "jobs_table", "show", "show_dashboard", "snapshot_state", "status_line", "summary_html",
]

_pumps: dict[int, UpdatePump] = {}
_lock = threading.Lock()


def get_pump(scheduler: Any = None) -> UpdatePump:
    """The update pump of ``scheduler`` (default: the default scheduler)."""
    scheduler = scheduler or get_scheduler()
    with _lock:
        pump = _pumps.get(id(scheduler))
        if pump is None or pump.scheduler is not scheduler:
            _route_displays()  # once cards are in use (the magics route them on %load_ext too)
            pump = _pumps[id(scheduler)] = UpdatePump(scheduler)
        return pump


def _route_displays() -> None:
    # display() from a job goes to its card; the kernel's status stays true beside it.
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        route_displays(shell)
        keep_status_true(getattr(shell, "kernel", None))


def card(job: Job) -> JobCard:
    """A live card for ``job`` (display it, or let the notebook show it).

    Examples
    --------
    >>> card(notebook_ext.submit(work))        # doctest: +SKIP
    """
    return get_pump(job.scheduler).card(job)


#: Cards one cell shows; the cell's later jobs share one group card (a
#: dashboard of just them), so a loop making thousands of jobs stays far
#: under the Jupyter server's IOPub limit (1,000 messages a second).
CARDS_PER_CELL = 20


@dataclass
class _CellCards:
    shown: int = 0
    group: Dashboard | None = None


_cells: dict[tuple[int, int], _CellCards] = {}


def _cell_cards() -> _CellCards | None:
    """The bookkeeping of the cell running now (None outside IPython)."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return None
    key = (id(shell), shell.execution_count)
    with _lock:
        cell = _cells.get(key)
        if cell is None:
            _cells.clear()  # earlier cells are finished with
            cell = _cells[key] = _CellCards()
        return cell


def show(job: Job) -> JobCard | Dashboard:
    """Display a live card for ``job`` under the running cell; its saved
    text/HTML fallback is refreshed when the job ends. Past
    `CARDS_PER_CELL` cards in one cell, the job joins that cell's group
    card instead, which is returned."""
    from IPython.display import display

    pump = get_pump(job.scheduler)
    cell = _cell_cards()
    if cell is not None:
        with _lock:
            cell.shown += 1
            grouped, new_group = cell.shown > CARDS_PER_CELL, cell.group is None
            if grouped and new_group:
                cell.group = pump.dashboard(title="more jobs of this cell", only=set())
            group = cell.group
        if grouped and group is not None:
            pump.add_to_group(group, job)
            if new_group:
                display(group)  # with a display id the pump keeps (`_Base._ipython_display_`)
            return group
    widget = pump.card(job)
    display(widget)
    return widget


def dashboard(scheduler: Scheduler | None = None) -> Dashboard:
    """A live dashboard of every job: state, progress, elapsed, priority,
    cancel / retry per job; stays light with thousands of jobs."""
    return get_pump(scheduler).dashboard()


def show_dashboard(scheduler: Scheduler | None = None) -> Dashboard:
    """Display a live dashboard under the running cell (``%jobs --live``);
    where no front end draws widgets, its saved output is a table."""
    from IPython.display import display

    pump = get_pump(scheduler)
    dash = pump.dashboard()
    display(dash)
    return dash
