"""What every executor shares: slots filled in from the scheduler, no-op
defaults for the optional parts of the `Executor` protocol.

========  ==========================  =========================================
executor  runs                        cancel of a running job
========  ==========================  =========================================
loop      coroutines, on the          at its next ``await`` (task cancel)
          scheduler's own loop
thread    plain functions, one        at its next `progress` / `report` /
          daemon thread each          `checkpoint` (threads cannot be killed);
                                      a timeout abandons it after a grace
process   functions in worker         at once: the worker process is killed
          processes
dask      functions on a Dask         at the next `progress` / `report` /
          cluster                     `checkpoint` (Dask cannot kill a task)
========  ==========================  =========================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable

from ..core.lowlevel import ItemPlace

if TYPE_CHECKING:  # pragma: no cover
    from ..core import Job, Stage
    from ..core.lowlevel import ExecutorHost


class ExecutorBase:
    """Base class of the shipped executors (any object following the
    `Executor` protocol works too).

    Subclasses set `name`, `compute` (True when a job holds one of the
    scheduler's global CPU slots) and implement `run`.
    """

    name = "base"
    compute = True
    item_place: ItemPlace = "threads"  # where its work items run (see `notebook_ext.core.lowlevel.Executor`)

    def __init__(self, slots: int | None = None) -> None:
        self.slots = slots
        self.host: ExecutorHost | None = None

    def bind(self, host: "ExecutorHost") -> None:
        """Called once when added to a scheduler; fills in default slots."""
        self.host = host
        if self.slots is None:
            self.slots = host.slots

    def prepare(self, job: "Job") -> None:
        """Check a job at submit time; raise `TypeError`/`ValueError` to refuse it."""

    def prepare_items(self, stage: "Stage") -> None:
        """Check a stage of work items at submit time (items that run in this
        process need nothing packed)."""

    def run(self, job: "Job") -> Awaitable[Any]:
        """Run ``job.fn(*job.args, **job.kwargs)`` with ``job.ctx`` current
        (an ``async def`` in subclasses, or a method returning an awaitable)."""
        raise NotImplementedError

    def interrupt(self, job: "Job") -> None:
        """Stop a running job as hard as this engine can (cancel already flagged)."""

    def request_stop(self, job: "Job") -> None:
        """Pass "stop and keep" on (in-process executors need nothing: the
        job's code reads the flag on its own context)."""

    def shutdown(self) -> None:
        """Release everything this executor started."""

    def describe(self) -> dict[str, Any]:
        """Facts for cards and dashboards (e.g. a cluster's dashboard link)."""
        return {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} slots={self.slots}>"
