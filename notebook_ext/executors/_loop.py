"""The loop executor: coroutine jobs on the scheduler's own event loop."""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any, Awaitable, Generator

from ..core.lowlevel import SYSTEM_CLOCK, ItemPlace, job_context
from ._base import ExecutorBase

if TYPE_CHECKING:  # pragma: no cover
    from ..core import Job


BLOCKING_WARNING = 0.5  # seconds one step of a coroutine job may hold the loop before we say so
# How long a step held the loop is real time whatever clock the scheduler keeps (a fake one
# does not move while code runs).
_now = SYSTEM_CLOCK.monotonic


class _Attempt:
    """One attempt of a coroutine job, awaited by the scheduler's task for
    it: calls the job's function in the job's context and awaits what it
    returns step by step, timing each step (the time it held the loop; the
    call itself is part of the first step).

    A plain awaitable rather than a coroutine around one: the job's steps
    pass through one frame of ours, not two."""

    __slots__ = ("_executor", "_job")

    def __init__(self, executor: "LoopExecutor", job: "Job") -> None:
        self._executor = executor
        self._job = job

    def __await__(self) -> Generator[Any, Any, Any]:
        job, executor = self._job, self._executor
        executor.started(job)
        try:
            # Setting the context variable here affects this task only.
            with job_context(job.ctx):
                start = _now()
                value = job.fn(*job.args, **job.kwargs)
                if not inspect.isawaitable(value):
                    executor.held(job, _now() - start)
                    return value
                it = value.__await__()
                sent: Any = None
                thrown: BaseException | None = None
                while True:
                    try:
                        step = it.send(sent) if thrown is None else it.throw(thrown)
                    except StopIteration as stop:
                        executor.held(job, _now() - start)
                        return stop.value
                    executor.held(job, _now() - start)
                    try:
                        sent, thrown = (yield step), None
                    except GeneratorExit:
                        it.close()
                        raise
                    except BaseException as exc:  # noqa: BLE001 - a cancel thrown in: pass it on
                        sent, thrown = None, exc
                    start = _now()
        finally:
            executor.ended(job)


class LoopExecutor(ExecutorBase):
    """Runs coroutine functions on the scheduler's own event loop.

    That loop lives in a daemon thread, so these jobs keep going while a
    notebook cell blocks the kernel's main thread. A job runs inside the
    scheduler's task for its attempt: no second task per job.
    """

    name = "loop"
    item_place: ItemPlace = "loop"
    compute = False

    def __init__(self, slots: int | None = 256) -> None:
        super().__init__(slots)
        self._tasks: dict[int, asyncio.Task[Any]] = {}
        self._warned: set[int] = set()
        self.blocked = 0  #: jobs that held the loop past BLOCKING_WARNING seconds

    def run(self, job: "Job") -> Awaitable[Any]:
        return _Attempt(self, job)

    def started(self, job: "Job") -> None:
        """``job``'s attempt runs in the current task (what `interrupt` cancels)."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks[job.id] = task

    def ended(self, job: "Job") -> None:
        self._tasks.pop(job.id, None)
        self._warned.discard(job.id)

    def held(self, job: "Job", seconds: float) -> None:
        """One step of ``job`` held the loop ``seconds``: past
        `BLOCKING_WARNING`, the job's output says so (once per job).

        A coroutine that does not await holds the loop: every other job's
        timeout, cancel and progress waits meanwhile."""
        if seconds < BLOCKING_WARNING or job.id in self._warned:
            return
        self.blocked += 1
        self._warned.add(job.id)
        job.ctx.output.write(
            f"\n[notebook_ext: this job held the scheduler's loop for {seconds:.1f} s without awaiting "
            "(a blocking call such as time.sleep, or a long computation, in async code); other jobs' "
            "timeouts and cancels waited meanwhile. Use `await asyncio.sleep(...)`, "
            "`await asyncio.to_thread(fn, ...)` or executor='thread'.]\n")

    def interrupt(self, job: "Job") -> None:
        task = self._tasks.get(job.id)
        if task is not None:  # not started yet: the dispatcher checks the flag before run()
            task.cancel(job.ctx.cancel_reason)
