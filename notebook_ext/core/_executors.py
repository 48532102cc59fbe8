"""Executors: where a job's code runs. One interface, several engines.

========  ==========================  =========================================
executor  runs                        cancel of a running job
========  ==========================  =========================================
loop      coroutines, on the          at its next ``await`` (task cancel)
          scheduler's own loop
thread    plain functions, one        at its next `progress` / `report` /
          daemon thread each          `checkpoint` (threads cannot be killed);
                                      a timeout abandons it after a grace
process   functions in worker         at once: the worker process is killed
          processes (`_process.py`)
dask      functions on a Dask         as far as Dask allows (`_dask.py`)
          cluster
========  ==========================  =========================================

The scheduler only calls `Executor.run` (awaited on its loop) and
`Executor.interrupt`; an executor never decides scheduling.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import TYPE_CHECKING, Any

from ._context import _current, install_output_capture

if TYPE_CHECKING:  # pragma: no cover
    from ._job import Job
    from ._scheduler import Scheduler


class Executor:
    """Base class of the engines that run job code.

    Subclasses set `name`, `compute` (True when a job holds one of the
    scheduler's global CPU slots) and implement `run`.
    """

    name = "base"
    compute = True

    def __init__(self, slots: int | None = None) -> None:
        self.slots = slots
        self.scheduler: Scheduler | None = None

    def bind(self, scheduler: "Scheduler") -> None:
        """Called once when added to a scheduler; fills in default slots."""
        self.scheduler = scheduler
        if self.slots is None:
            self.slots = scheduler.slots

    def prepare(self, job: "Job") -> None:
        """Check a job at submit time; raise `TypeError`/`ValueError` to refuse it."""

    async def run(self, job: "Job") -> Any:
        """Run ``job.fn(*job.args, **job.kwargs)`` with ``job.ctx`` current."""
        raise NotImplementedError

    def interrupt(self, job: "Job") -> None:
        """Stop a running job as hard as this engine can (cancel already flagged)."""

    def shutdown(self) -> None:
        """Release everything this executor started."""

    def describe(self) -> dict[str, Any]:
        """Facts for cards and dashboards (e.g. a cluster's dashboard link)."""
        return {}


class LoopExecutor(Executor):
    """Runs coroutine functions as tasks on the scheduler's own event loop.

    That loop lives in a daemon thread, so these jobs keep going while a
    notebook cell blocks the kernel's main thread.
    """

    name = "loop"
    compute = False

    def __init__(self, slots: int | None = 256) -> None:
        super().__init__(slots)

    def prepare(self, job: "Job") -> None:
        if not callable(job.fn):
            raise TypeError(f"the loop executor runs coroutine functions, got {job.fn!r}")

    async def run(self, job: "Job") -> Any:
        # Runs inside the scheduler's task for this job: setting the context
        # variable here affects that task only. No extra task per job.
        install_output_capture()
        token = _current.set(job.ctx)
        try:
            value = job.fn(*job.args, **job.kwargs)
            if inspect.isawaitable(value):
                value = await value
            return value
        finally:
            _current.reset(token)

    def interrupt(self, job: "Job") -> None:
        task = self.scheduler._tasks.get(job.id) if self.scheduler is not None else None
        if task is not None:
            task.cancel(job.ctx.cancel_reason)


class ThreadExecutor(Executor):
    """Runs plain functions, each in a daemon thread of its own.

    Good for numpy / scikit-learn work (it releases the GIL). Pure-Python
    CPU loops in threads slow the kernel down: use the process executor.
    Daemon threads never hold up kernel shutdown.
    """

    name = "thread"
    compute = True

    def __init__(self, slots: int | None = None) -> None:
        super().__init__(slots)
        self.abandoned = 0  # threads left running after a timeout / forced cancel

    async def run(self, job: "Job") -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        ctx = job.ctx

        def deliver(ok: bool, value: Any) -> None:
            if fut.done():
                return
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

        def body() -> None:
            install_output_capture()
            token = _current.set(ctx)
            try:
                value = job.fn(*job.args, **job.kwargs)
                ok = True
            except BaseException as exc:  # noqa: BLE001 - reported as the job's error
                value, ok = exc, False
            finally:
                _current.reset(token)
            try:
                loop.call_soon_threadsafe(deliver, ok, value)
            except RuntimeError:
                pass  # the scheduler's loop is closed: nobody waits any more

        thread = threading.Thread(target=body, name=f"notebook_ext-{job.name}", daemon=True)
        thread.start()
        try:
            return await fut
        except asyncio.CancelledError:
            if thread.is_alive():
                self.abandoned += 1
            raise
