"""IPython integration: ``%load_ext notebook_ext`` and the magics."""

from __future__ import annotations

from typing import Any

from ..core import checkpoint, get_scheduler, progress, report, stop_requested
from ..core.lowlevel import HOOKS, install_asyncio_run, install_output_capture
from ._jobs import JobMagics

__all__ = ["JobMagics", "load_ipython_extension", "unload_ipython_extension"]


def _magic_classes() -> list[type]:
    classes: list[type] = [JobMagics]
    try:
        from ._ml import MLMagics
    except ImportError:  # the ML layer is optional at import time
        pass
    else:
        classes.append(MLMagics)
    return classes


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext notebook_ext``: register the magics, put `progress`,
    `report`, `checkpoint` in the namespace, make ``asyncio.run`` work in
    cells (stock ``asyncio.run`` on a loop of its own: see
    `notebook_ext.core.lowlevel.run`) and route job output to job cards. ``%reload_ext`` keeps every job."""
    install_asyncio_run()
    install_output_capture()
    for cls in _magic_classes():
        ipython.register_magics(cls)
    ipython.push({"progress": progress, "report": report, "checkpoint": checkpoint,
                  "stop_requested": stop_requested})
    sched = get_scheduler()
    from ..ui import get_pump, keep_status_true, route_displays

    get_pump(sched)  # one pump per scheduler, however often the extension loads
    route_displays(ipython)  # again after an %unload_ext put the publisher's own back
    keep_status_true(getattr(ipython, "kernel", None))  # likewise
    if _draw_finished_cards not in ipython.events.callbacks["post_run_cell"]:
        ipython.events.register("post_run_cell", _draw_finished_cards)
    # A kernel asked to stop (shutdown, restart, exit()) sets `exit_now` before it
    # terminates its child processes: shut the scheduler down first, so process and
    # Dask jobs are `interrupted` in the history, not failed by their workers' deaths.
    ipython.observe(_shut_down_on_exit, names="exit_now")


def _shut_down_on_exit(change: Any) -> None:
    if change["new"]:
        try:
            get_scheduler().shutdown(timeout=5)
        except Exception:  # noqa: BLE001 - the kernel stops anyway; atexit tries again
            pass


def _draw_finished_cards(*_args: Any) -> None:
    # A job that ended during the cell has its final card state in this cell's messages.
    from ..ui import get_pump

    try:
        get_pump().draw_finished()
    except Exception:  # noqa: BLE001 - never fail the user's cell for a card
        pass


def unload_ipython_extension(ipython: Any) -> None:
    """The magics go, and every interpreter patch is put back (`HOOKS.undo`:
    afterwards ``sys.stdout``, ``Thread.start``, tqdm, the display publisher
    … are the original objects). Jobs and cards live on; what a running job
    prints from now on goes where any print goes. ``%reload_ext`` keeps
    every job and routes their output again."""
    for cls in _magic_classes():
        for kind in ("line", "cell"):
            for name in getattr(cls, "magics", {}).get(kind, {}):
                ipython.magics_manager.magics[kind].pop(name, None)
    try:
        ipython.events.unregister("post_run_cell", _draw_finished_cards)
    except ValueError:
        pass
    try:
        ipython.unobserve(_shut_down_on_exit, names="exit_now")
    except ValueError:
        pass
    HOOKS.undo()
