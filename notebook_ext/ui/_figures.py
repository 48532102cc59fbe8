"""pyplot's figures, seen per job.

pyplot keeps every open figure in one registry (``Gcf.figs``). The inline
backend shows and closes all of them after each cell (``flush_figures``), and
``plt.show()`` does the same: a figure a background job is still drawing was
rendered by the main thread at the same moment as by the job, on the same
Agg canvas, so the job's card (and a stray copy in the next cell) got a blank
or half-drawn PNG. `own_figures` puts a view in front of the registry: figure
*numbers* stay global (no two figures share one), but each running job sees
only the figures it made (current figure, ``plt.show()``, ``close('all')``)
and everyone else sees none of them. A finished job's figures go back to the
foreground, as a cell's figures do when the cell ends.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any, Iterator

from ..core.lowlevel import HOOKS, current_context

_MODULE = "matplotlib._pylab_helpers"


def _caller() -> Any:
    """The running job that is asking (None: the foreground)."""
    ctx = current_context()
    job = ctx.job if ctx is not None else None
    return job if job is not None and not job.done() else None


class FiguresByJob:
    """Stands in for ``Gcf.figs`` (an ``OrderedDict`` of number -> manager):
    numbers are global, managers are the caller's own."""

    def __init__(self, shared: OrderedDict[Any, Any]) -> None:
        self.shared = shared
        self._owners: weakref.WeakKeyDictionary[Any, weakref.ref] = weakref.WeakKeyDictionary()
        self._lock = threading.RLock()

    def _owner(self, manager: Any) -> Any:
        ref = self._owners.get(manager)
        job = ref() if ref is not None else None
        return job if job is not None and not job.done() else None

    def _mine(self) -> list[Any]:
        me = _caller()
        with self._lock:
            return [m for m in list(self.shared.values()) if self._owner(m) is me]

    # the caller's own managers: current figure, show(), close("all"), counts
    def values(self) -> list[Any]:
        return self._mine()

    def items(self) -> list[Any]:
        return [(m.num, m) for m in self._mine()]

    def __len__(self) -> int:
        return len(self._mine())

    def __bool__(self) -> bool:
        return bool(self._mine())

    def clear(self) -> None:
        with self._lock:
            for manager in self._mine():
                num = manager.num
                if self.shared.get(num) is manager:
                    del self.shared[num]

    # numbers: global, so a job's new figure never takes a number in use
    def __setitem__(self, num: Any, manager: Any) -> None:
        with self._lock:
            job = _caller()
            # a manager pyplot adopts now was made by this job (one it makes
            # active again keeps its owner). Two figures made at once may get
            # one number (pyplot's own race): the later one takes the place.
            if job is not None and manager not in self._owners and self.shared.get(num) is not manager:
                self._owners[manager] = weakref.ref(job)
            self.shared[num] = manager

    def __getitem__(self, num: Any) -> Any:
        return self.shared[num]

    def get(self, num: Any, default: Any = None) -> Any:
        return self.shared.get(num, default)

    def pop(self, num: Any, *default: Any) -> Any:
        with self._lock:
            return self.shared.pop(num, *default)

    def __delitem__(self, num: Any) -> None:
        with self._lock:
            del self.shared[num]

    def move_to_end(self, num: Any, last: bool = True) -> None:
        with self._lock:
            self.shared.move_to_end(num, last)

    def __contains__(self, num: Any) -> bool:
        return num in self.shared

    def keys(self) -> list[Any]:
        with self._lock:  # another job may add one meanwhile
            return list(self.shared)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())


def _patch(helpers: Any) -> None:
    gcf = helpers.Gcf
    if HOOKS.patched(gcf, "figs"):
        return
    HOOKS.replace(gcf, "figs", FiguresByJob(gcf.figs), "matplotlib's figure registry (Gcf.figs)")


def own_figures() -> None:
    """Give each running job its own pyplot figures (idempotent; `HOOKS`
    owns the patch and the finder that waits for matplotlib's import, and undoes them)."""
    HOOKS.when_imported(_MODULE, _patch, "an import finder that gives jobs their own pyplot figures")
