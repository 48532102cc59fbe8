"""The dispatcher: everything that happens on the scheduler's loop thread.

Ready heaps per executor, slots, dependencies, timers (timeouts, back-off,
thread grace), attempts and their outcome. Only the loop thread calls in
here (the `Scheduler` facade posts through its `LoopThread`), so none of
this state needs a lock.

Every attempt is one task with a done-callback, and all bookkeeping (the
slot given back, the final state) happens in that callback: it runs however
the task ends, even when it was cancelled before its first step.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ._job import Job, describe_error
from ._pace import Backoff
from ._text import clean
from ._states import (CANCELLED, DONE, FAILED, PENDING, QUEUED, RUNNING, TIMED_OUT, Escaped, JobCancelled,
                      JobTimedOut)

if TYPE_CHECKING:  # pragma: no cover
    from ._executor import Executor
    from ._loopthread import LoopThread


class Dispatcher:
    def __init__(
        self,
        loop_thread: "LoopThread",
        executors: "dict[str, Executor]",
        slots: int,
        thread_grace: float,
        on_change: Callable[[Job, str | None], None],
    ) -> None:
        self.lt = loop_thread
        self.executors = executors
        self.slots = slots
        self.thread_grace = thread_grace
        self._changed = on_change  # (job, state to record or None)
        self._ready: dict[str, list[tuple[int, int, Job]]] = {}
        self._running_by_ex: dict[str, int] = {}
        self.compute_running = 0
        self.max_running_seen = 0
        self.running: dict[int, Job] = {}
        self._dependents: dict[int, list[Job]] = {}
        self._tasks: dict[int, asyncio.Task[Any]] = {}
        self._timers: dict[int, Any] = {}
        self._lent: dict[int, int] = {}  # job id -> depth of its waits on other jobs
        self._seq = itertools.count()
        self.held: dict[int, Job] = {}  # every job admitted here and not ended (what a dead loop fails)
        self.closing = False

    # -- admission -------------------------------------------------------------
    def admit(self, jobs: Iterable[Job]) -> None:
        """New jobs: wait for their dependencies or queue; then start what fits."""
        for job in jobs:
            if job.done():
                continue  # cancelled before the loop saw it
            self.held[job.id] = job
            if job.cancel_called:
                self._cancel_now(job)
                continue
            waiting = False
            for dep in job.after:
                if dep.done():
                    if dep.state != DONE:
                        self._finish(job, CANCELLED, exc=JobCancelled(f"dependency {dep.name!r} {dep.state}"),
                                     caught=True)
                        break
                else:
                    waiting = True
                    self._dependents.setdefault(dep.id, []).append(job)
            else:
                if not waiting:
                    self._enqueue(job, dispatch=False)
        self.dispatch()

    def _enqueue(self, job: Job, dispatch: bool = True) -> None:
        job._set_state(QUEUED)
        self._changed(job, QUEUED)
        self._push(job)
        if dispatch:
            self.dispatch()

    def _push(self, job: Job) -> None:
        heapq.heappush(self._ready.setdefault(job.executor, []), (-job.priority, next(self._seq), job))

    def dispatch(self) -> None:
        """Start the best queued jobs while slots are free: the highest
        priority first, across executors, and in order of arrival within one.

        Runs after every admission and every attempt's end, so the cheap
        test comes first: an executor without a free slot is passed over
        before its queue is looked at."""
        while not self.closing:
            best: tuple[int, int, Job] | None = None
            for name, heap in self._ready.items():
                if not heap:
                    continue
                ex = self.executors[name]
                if self._running_by_ex.get(name, 0) >= (ex.slots or 1):
                    continue
                if ex.compute and self.compute_running >= self.slots:
                    continue
                while heap and heap[0][2].state != QUEUED:
                    heapq.heappop(heap)  # cancelled while queued
                if heap and (best is None or heap[0] < best):  # (-priority, arrival): never a tie
                    best = heap[0]
            if best is None:
                return
            job = best[2]
            heapq.heappop(self._ready[job.executor])
            self._start(job)

    # -- attempts ----------------------------------------------------------------
    def _start(self, job: Job) -> None:
        ex = self.executors[job.executor]
        if job.cancel_called:  # cancelled between queue and start
            self._cancel_now(job)
            return
        job._set_state(RUNNING)
        job.attempts += 1
        if job.started is None:
            job.started = self.lt.clock.time()
        self._take_slot(ex, +1)
        self.running[job.id] = job
        self._changed(job, RUNNING)
        task = self.lt.create_task(self._attempt(job, ex))
        self._tasks[job.id] = task
        task.add_done_callback(partial(self._attempt_ended, job, ex))
        if job.timeout is not None:
            self._timers[job.id] = self.lt.call_later(job.timeout, self._on_timeout, job, job.attempts)

    def _take_slot(self, ex: "Executor", n: int) -> None:
        self._running_by_ex[ex.name] = self._running_by_ex.get(ex.name, 0) + n
        if ex.compute:
            self.compute_running += n
            if self.compute_running > self.max_running_seen:
                self.max_running_seen = self.compute_running

    # -- lending: a job blocked waiting on other jobs lends them its slot ---------
    def lend(self, job: Job) -> None:
        """``job`` waits on other jobs: its slot serves others meanwhile
        (nested waits count; the first gives the slot, the last takes it back)."""
        if self.running.get(job.id) is not job:
            return
        depth = self._lent.get(job.id, 0)
        self._lent[job.id] = depth + 1
        if depth == 0:
            self._take_slot(self.executors[job.executor], -1)
            self.dispatch()

    def reclaim(self, job: Job) -> None:
        """``job`` waits no more: it takes a slot again at once (running
        over the limit until enough others end, rather than stalling it)."""
        depth = self._lent.get(job.id)
        if depth is None:
            return
        if depth > 1:
            self._lent[job.id] = depth - 1
            return
        del self._lent[job.id]
        self._take_slot(self.executors[job.executor], +1)

    @staticmethod
    async def _attempt(job: Job, ex: "Executor") -> Any:
        if job.cancel_called:
            raise JobCancelled(job.ctx.cancel_reason or "cancelled")
        try:
            value = await ex.run(job)
        except (KeyboardInterrupt, SystemExit, GeneratorExit) as exc:
            raise Escaped(exc) from None  # raised in a task, these would stop the loop itself
        if job.finalize is not None:
            value = job.finalize(job, value)
        return value

    def _attempt_ended(self, job: Job, ex: "Executor", task: asyncio.Task[Any]) -> None:
        self._tasks.pop(job.id, None)
        timer = self._timers.pop(job.id, None)
        if timer is not None:
            timer.cancel()
        self.running.pop(job.id, None)
        if self._lent.pop(job.id, None) is None:  # a lent slot was given back already
            self._take_slot(ex, -1)
        try:
            self._settle(job, task)
        finally:
            self.dispatch()

    def _settle(self, job: Job, task: asyncio.Task[Any]) -> None:
        if job.done():  # ended by `fail_all` when the loop died; this is its task unwinding
            return
        if task.cancelled():  # we cancelled the attempt: an abandon, or shutdown
            self._stopped(job, None)
            return
        exc = task.exception()
        if isinstance(exc, Escaped):
            exc = exc.original
        if exc is None:
            if job.cancel_called:
                job.cancel_note = f"{job.ctx.cancel_reason}, but the job finished first; its result stands"
            self._finish(job, DONE, task.result())
        elif isinstance(exc, JobCancelled):
            self._stopped(job, exc)
        elif job.cancel_called:
            # Requested is not caught: the job's own error stands.
            job.cancel_note = f"{job.ctx.cancel_reason}, but the job raised {type(exc).__name__} first"
            self._finish(job, FAILED, exc=exc)
        elif job.attempts <= job.retries and not self.closing:
            self._retry(job, exc)
        else:
            self._finish(job, FAILED, exc=exc)

    def _cancel_now(self, job: Job) -> None:
        """End a job that has not started (or waits between attempts) as cancelled."""
        self._finish(job, CANCELLED, exc=JobCancelled(job.ctx.cancel_reason or "cancelled"), caught=True)

    def _stopped(self, job: Job, err: JobCancelled | None) -> None:
        reason = job.ctx.cancel_reason or (err.reason if err is not None else None) or "cancelled"
        if job.timed_out:
            self._finish(job, TIMED_OUT, exc=JobTimedOut(reason), caught=True)
        else:
            self._finish(job, CANCELLED, exc=JobCancelled(reason), caught=True)

    def _retry(self, job: Job, exc: BaseException) -> None:
        delay = Backoff(job.backoff, 2.0, math.inf).delay(job.attempts)  # backoff * 2**(attempts-1)
        line = describe_error(exc)
        job._note_attempt_error(line)
        job._set_state(QUEUED)
        ctx = job.ctx
        ctx.message = f"retry {job.attempts}/{job.retries} in {delay:.2g} s after {line}"
        ctx.output.write(f"\n--- attempt {job.attempts} failed: {line}; retrying in {delay:.2g} s ---\n")
        self._changed(job, QUEUED)
        self._timers[job.id] = self.lt.call_later(delay, self._again, job)

    def _again(self, job: Job) -> None:
        self._timers.pop(job.id, None)
        if job.state == QUEUED and not self.closing:
            job.ctx.done, job.ctx.total = 0, None
            self._push(job)
            self.dispatch()

    def _on_timeout(self, job: Job, attempt: int) -> None:
        self._timers.pop(job.id, None)
        if job.state != RUNNING or job.attempts != attempt:
            return
        job.set_facts(timed_out=True)
        if job.ctx.cancel_reason is None:
            job.ctx.cancel_reason = f"timed out after {job.timeout:g} s"
        self._interrupt(job, abandon_after=self.thread_grace)

    # -- cancel ------------------------------------------------------------------
    def cancel(self, job: Job, abandon: bool) -> None:
        """A cancel request reached the loop (``job.ctx.cancel_reason`` is set)."""
        if job.done():
            return
        if job.state in (PENDING, QUEUED):  # also: waiting out a retry's back-off
            timer = self._timers.pop(job.id, None)
            if timer is not None:
                timer.cancel()
            self._cancel_now(job)
            self.dispatch()
            return
        self._interrupt(job, abandon_after=0.0 if abandon else None)
        self._changed(job, None)

    def _interrupt(self, job: Job, abandon_after: float | None) -> None:
        try:
            self.executors[job.executor].interrupt(job)
        finally:
            if abandon_after is not None:
                self.lt.call_later(abandon_after, self._abandon, job, job.attempts)

    def _abandon(self, job: Job, attempt: int) -> None:
        task = self._tasks.get(job.id)
        if task is not None and not task.done() and job.attempts == attempt:
            job.set_facts(abandoned=True)
            task.cancel()

    def request_stop(self, job: Job) -> None:
        if job.state == RUNNING:
            self.executors[job.executor].request_stop(job)

    # -- the end -----------------------------------------------------------------
    def _finish(self, job: Job, state: str, result: Any = None, exc: BaseException | None = None,
                caught: bool = False) -> None:
        tb = getattr(exc, "__notebook_ext_traceback__", None) if exc is not None else None
        if isinstance(tb, tuple) and len(tb) == 2 and all(isinstance(t, str) for t in tb):
            tb = (clean(tb[0]), clean(tb[1]))  # a worker's (short, full) traceback text
        else:
            tb = None
        if caught:
            job.cancelled_caught = True
        self.held.pop(job.id, None)
        job._finish(state, result, exc, tb, announce=self._changed)
        for dependent in self._dependents.pop(job.id, ()):
            if dependent.state != PENDING:
                continue
            if state != DONE:
                self._finish(dependent, CANCELLED, exc=JobCancelled(f"dependency {job.name!r} {state}"),
                             caught=True)
            elif all(d.state == DONE for d in dependent.after):
                self._enqueue(dependent)

    def fail_all(self, jobs: Iterable[Job], why: Callable[[Job], BaseException]) -> None:
        """The loop died under these jobs: each fails with ``why(job)``, and a
        running one is stopped as hard as its executor can (a thread at its
        next checkpoint). Runs on the dead loop's thread, nothing else here
        runs any more."""
        self.closing = True
        self._dependents.clear()  # each ends with the loop's error, not "dependency failed"
        for job in jobs:
            if job.done():
                continue
            err = why(job)
            if job.ctx.cancel_reason is None:
                job.ctx.cancel_reason = str(err)  # a thread job stops at its next checkpoint
            try:
                if job.state == RUNNING:
                    self.executors[job.executor].interrupt(job)
            finally:
                self._finish(job, FAILED, exc=err)

    async def close(self, jobs: list[Job], grace: float) -> None:
        """Cancel every active job and wait (at most ``grace`` seconds) for
        their attempts to end; then cancel what is left."""
        self.closing = True
        for job in jobs:
            if job.state in (PENDING, QUEUED):
                timer = self._timers.pop(job.id, None)
                if timer is not None:
                    timer.cancel()
                self._cancel_now(job)
        for job in list(self.running.values()):
            try:
                self.executors[job.executor].interrupt(job)
            except Exception:  # noqa: BLE001 - shut down the others anyway
                pass
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
