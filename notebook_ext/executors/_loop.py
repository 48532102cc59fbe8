"""The loop executor: coroutine jobs on the scheduler's own event loop."""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any, Callable, Generator

from ..core.lowlevel import SYSTEM_CLOCK, ItemPlace, job_context
from ._base import ExecutorBase

if TYPE_CHECKING:  # pragma: no cover
    from ..core import Job


BLOCKING_WARNING = 0.5  # seconds one step of a coroutine job may hold the loop before we say so
# How long a step held the loop is real time whatever clock the scheduler keeps (a fake one
# does not move while code runs).
_now = SYSTEM_CLOCK.monotonic


class _Timed:
    """Awaits a coroutine step by step, timing each step (the time it held
    the loop) and handing it to ``report``."""

    __slots__ = ("_awaitable", "_report")

    def __init__(self, awaitable: Any, report: Callable[[float], None]) -> None:
        self._awaitable = awaitable
        self._report = report

    def __await__(self) -> Generator[Any, Any, Any]:
        it = self._awaitable.__await__()
        value: Any = None
        thrown: BaseException | None = None
        while True:
            start = _now()
            try:
                step = it.send(value) if thrown is None else it.throw(thrown)
            except StopIteration as stop:
                self._report(_now() - start)
                return stop.value
            self._report(_now() - start)
            try:
                value, thrown = (yield step), None
            except GeneratorExit:
                it.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - a cancel thrown in: pass it on
                value, thrown = None, exc


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

    async def run(self, job: "Job") -> Any:
        task = asyncio.current_task()
        assert task is not None
        self._tasks[job.id] = task
        try:
            # Setting the context variable here affects this task only.
            with job_context(job.ctx):
                start = _now()
                value = job.fn(*job.args, **job.kwargs)
                self._held(job, _now() - start)
                if inspect.isawaitable(value):
                    value = await _Timed(value, lambda held: self._held(job, held))
                return value
        finally:
            self._tasks.pop(job.id, None)
            self._warned.discard(job.id)

    def _held(self, job: "Job", seconds: float) -> None:
        # A coroutine that does not await holds the loop: every other job's
        # timeout, cancel and progress waits. Said once per job.
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
