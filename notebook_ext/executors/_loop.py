"""The loop executor: coroutine jobs on the scheduler's own event loop."""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any

from ..core.lowlevel import job_context
from ._base import ExecutorBase

if TYPE_CHECKING:  # pragma: no cover
    from ..core import Job


class LoopExecutor(ExecutorBase):
    """Runs coroutine functions on the scheduler's own event loop.

    That loop lives in a daemon thread, so these jobs keep going while a
    notebook cell blocks the kernel's main thread. A job runs inside the
    scheduler's task for its attempt: no second task per job.
    """

    name = "loop"
    compute = False

    def __init__(self, slots: int | None = 256) -> None:
        super().__init__(slots)
        self._tasks: dict[int, asyncio.Task] = {}

    async def run(self, job: "Job") -> Any:
        task = asyncio.current_task()
        assert task is not None
        self._tasks[job.id] = task
        try:
            # Setting the context variable here affects this task only.
            with job_context(job.ctx):
                value = job.fn(*job.args, **job.kwargs)
                if inspect.isawaitable(value):
                    value = await value
                return value
        finally:
            self._tasks.pop(job.id, None)

    def interrupt(self, job: "Job") -> None:
        task = self._tasks.get(job.id)
        if task is not None:  # not started yet: the dispatcher checks the flag before run()
            task.cancel(job.ctx.cancel_reason)
