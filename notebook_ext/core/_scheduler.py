"""The scheduler: priorities, slots, timeouts, retries, dependencies, cancel.

All scheduling runs on the scheduler's own asyncio loop in a daemon thread,
so it keeps going while a notebook cell blocks the kernel's main thread, and
it works the same in a plain Python script.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import inspect
import itertools
import os
import threading
import time
from collections import namedtuple
from typing import Any, Callable, Iterable, Mapping, Sequence

from ._executors import Executor, LoopExecutor, ThreadExecutor
from ._job import (
    CANCELLED, DONE, FAILED, FINAL_STATES, PENDING, QUEUED, RUNNING, TIMED_OUT,
    Job, JobCancelled, JobTimedOut,
)
from ._notify import Notifier, Observer
from ._process import ProcessExecutor
from ._store import HistoryStore, default_history_path

WaitResult = namedtuple("WaitResult", "done pending")

_DEFAULT = object()


class Scheduler:
    """Runs jobs in the background with priorities and concurrency slots.

    Parameters
    ----------
    slots : int, optional
        Compute jobs (thread, process, dask) running at once; default: the
        number of CPUs. Coroutine jobs (the ``loop`` executor) have slots of
        their own (256), since they mostly wait.
    history : path, None or False
        Where job records are kept; default `default_history_path()`;
        None or False: no history.
    thread_grace : float
        Seconds a thread job gets to reach a checkpoint after its timeout
        before it is abandoned (marked ``timed_out``; the thread's eventual
        result is discarded).

    Examples
    --------
    >>> sched = Scheduler(slots=2, history=None)       # doctest: +SKIP
    >>> job = sched.submit(sum, [1, 2, 3])
    >>> job.result(timeout=5)
    6
    >>> sched.shutdown()
    """

    def __init__(
        self,
        slots: int | None = None,
        *,
        history: Any = _DEFAULT,
        executors: Iterable[Executor] = (),
        thread_grace: float = 1.0,
        notify_interval: float = 0.1,
    ) -> None:
        if slots is not None and (not isinstance(slots, int) or slots < 1):
            raise ValueError(f"`slots` must be a positive integer, got {slots!r}")
        self.slots = slots or os.cpu_count() or 1
        self.thread_grace = thread_grace
        self._executors: dict[str, Executor] = {}
        for ex in (LoopExecutor(), ThreadExecutor(), ProcessExecutor(), *executors):
            self.add_executor(ex)
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}  # name -> newest job of that name
        self._all: list[Job] = []
        self._counters: dict[str, itertools.count] = {}
        self._seq = itertools.count()
        # Loop-thread-only state:
        self._ready: dict[str, list] = {}
        self._running_by_ex: dict[str, int] = {}
        self._compute_running = 0
        self._running: dict[int, Job] = {}
        self._dependents: dict[int, list[Job]] = {}
        self._tasks: dict[int, asyncio.Task] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._closing = False
        self.max_running_seen = 0
        # Calls from other threads wait in this inbox; the loop is woken once
        # per burst, not once per call (a wake-up costs a socket write).
        self._inbox: collections.deque = collections.deque()
        self._inbox_lock = threading.Lock()
        self._drain_scheduled = False
        self._ids: dict[int, Job] = {}

        path = default_history_path() if history is _DEFAULT else (history or None)
        self.store = HistoryStore(path)
        self.notifier = Notifier(lambda: list(self._running.values()), interval=notify_interval)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="notebook_ext-scheduler", daemon=True)
        self._thread.start()

    # -- configuration -----------------------------------------------------
    def add_executor(self, executor: Executor) -> None:
        """Make ``executor`` available under ``executor.name``."""
        executor.bind(self)
        self._executors[executor.name] = executor

    def executor(self, name: str) -> Executor:
        try:
            return self._executors[name]
        except KeyError:
            raise ValueError(
                f"`executor` must be one of {', '.join(sorted(self._executors))}, got {name!r}"
            ) from None

    @property
    def executors(self) -> Mapping[str, Executor]:
        return dict(self._executors)

    # -- submitting ----------------------------------------------------------
    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        name: str | None = None,
        priority: int = 0,
        timeout: float | None = None,
        retries: int = 0,
        backoff: float = 0.5,
        executor: str | None = None,
        after: Sequence["Job | str"] | "Job | str" = (),
        kind: str = "job",
        parent: "Job | None" = None,
        params: Mapping[str, Any] | None = None,
        code: str | None = None,
        finalize: Callable[[Job, Any], Any] | None = None,
        **kwargs: Any,
    ) -> Job:
        """Run ``fn(*args, **kwargs)`` in the background; return its `Job`.

        A coroutine function runs on the scheduler's loop, a plain function
        in a thread, unless ``executor`` ("loop", "thread", "process", "dask")
        says otherwise. Higher ``priority`` starts first; ``timeout`` limits
        each attempt (seconds); ``retries`` re-runs a job that raised, after
        ``backoff * 2**(attempt-1)`` seconds; ``after`` names jobs that must
        finish ``done`` first (if one fails, this job is cancelled).
        ``finalize(job, value)``, when given, runs in the scheduler after the
        job's code succeeded and returns the job's result (it may fill
        ``job.info``; an exception there fails the job). ``kind``, ``params``
        and ``code`` describe the job in cards and the history.

        Examples
        --------
        >>> job = sched.submit(fit, X, y, name="fit", retries=2)   # doctest: +SKIP
        """
        if self._closing:
            raise RuntimeError("this scheduler is shut down; create a new one")
        if not callable(fn):
            raise TypeError(f"`fn` must be callable, got {type(fn).__name__}")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError(f"`priority` must be an integer, got {priority!r}")
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"`timeout` must be a positive number of seconds, got {timeout!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"`retries` must be a whole number >= 0, got {retries!r}")
        if executor is None:
            executor = "loop" if inspect.iscoroutinefunction(fn) else "thread"
        ex = self.executor(executor)
        deps = tuple(self._resolve(a, "after") for a in ([after] if isinstance(after, (str, Job)) else after))
        with self._lock:
            name = self._claim_name(name, kind)
            job = Job(
                self, fn, args, kwargs, name=name, kind=kind, priority=priority, timeout=timeout,
                retries=retries, backoff=backoff, executor=executor, after=deps, parent=parent,
                params=params, code=code,
            )
            job._finalize = finalize
            ex.prepare(job)
            self._jobs[name] = job
            self._all.append(job)
            self._ids[job.id] = job
            if parent is not None:
                parent.children.append(job)
        self.notifier.changed(job)
        self.store.record(job, PENDING)
        self._call(self._admit, job)
        return job

    def _claim_name(self, name: str | None, kind: str) -> str:
        if name is None:
            counter = self._counters.setdefault(kind, itertools.count(1))
            while True:
                name = f"{kind}-{next(counter)}"
                if name not in self._jobs:
                    return name
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"`name` must be a non-empty string, got {name!r}")
        old = self._jobs.get(name)
        if old is not None and not old.done():
            raise ValueError(
                f"a job named {name!r} is still {old.state}; cancel it or choose another name"
            )
        return name

    def _resolve(self, job: "Job | str", what: str) -> Job:
        if isinstance(job, Job):
            return job
        with self._lock:
            found = self._jobs.get(job) if isinstance(job, str) else None
        if found is None:
            raise ValueError(f"`{what}`: no job named {job!r}")
        return found

    # -- reading -------------------------------------------------------------
    @property
    def jobs(self) -> dict[str, Job]:
        """Name -> newest job of that name, in submission order."""
        with self._lock:
            return dict(self._jobs)

    def all_jobs(self) -> list[Job]:
        """Every job this scheduler ran, older ones of a reused name too."""
        with self._lock:
            return list(self._all)

    def get(self, name: "str | Job") -> Job:
        """The job named ``name``; `KeyError` with a helpful message if none."""
        if isinstance(name, Job):
            return name
        with self._lock:
            job = self._jobs.get(name)
        if job is None:
            raise KeyError(f"no job named {name!r}")
        return job

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Deliver job snapshots to ``observer`` (from the notifier thread)."""
        return self.notifier.subscribe(observer)

    def wait(self, *jobs: "Job | str", timeout: float | None = None) -> WaitResult:
        """Block until the jobs (default: all active ones) end or ``timeout``
        passes; returns ``(done, pending)`` lists. Interruptible."""
        targets = [self._resolve(j, "jobs") for j in jobs] if jobs else [
            j for j in self.all_jobs() if not j.done()
        ]
        deadline = None if timeout is None else time.monotonic() + timeout
        for job in targets:
            while not job.done():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                job.wait(0.2 if left is None else min(0.2, left))
        return WaitResult([j for j in targets if j.done()], [j for j in targets if not j.done()])

    # -- control -------------------------------------------------------------
    def cancel(self, job: "Job | str", reason: str | None = None, *, abandon: bool = False) -> bool:
        """Ask ``job`` to stop (see `Job.cancel`); True if the request was made.

        ``abandon=True`` also gives up on a thread job that does not reach a
        checkpoint: it is marked cancelled now and its thread's result is
        discarded when it ends.
        """
        job = self._resolve(job, "job")
        if job.done():
            return False
        reason = reason or "cancelled by the user"
        if job.ctx.cancel_reason is None:
            job.ctx.cancel_reason = reason
        self._call(self._cancel_on_loop, job, abandon, wait=True)
        return True

    def retry(self, job: "Job | str") -> Job:
        """Run a finished job's call again as a new job under the same name
        (same options); a job that set ``info["retry"]`` (a callable taking
        the job) is retried its own way, e.g. preprocessing only its failed
        items."""
        job = self._resolve(job, "job")
        if not job.done():
            raise ValueError(f"job {job.name!r} is still {job.state}; wait for it or cancel it first")
        custom = job.info.get("retry")
        if callable(custom):
            return custom(job)
        return self.submit(
            job.fn, *job.args, name=job.name, priority=job.priority, timeout=job.timeout,
            retries=job.retries, backoff=job.backoff, executor=job.executor, kind=job.kind,
            parent=job.parent, params=job.params, code=job.code, finalize=job._finalize,
            **job.kwargs,
        )

    def cancel_all(self, reason: str | None = None) -> int:
        n = 0
        for job in self.all_jobs():
            if not job.done() and self.cancel(job, reason):
                n += 1
        return n

    def _stop_requested(self, job: Job) -> None:
        ex = self._executors.get(job.executor)
        if isinstance(ex, ProcessExecutor) or hasattr(ex, "request_stop"):
            self._call(getattr(ex, "request_stop"), job)
        self.notifier.changed(job)

    def _call(self, fn: Callable, *args: Any, wait: bool = False) -> None:
        if threading.current_thread() is self._thread:
            fn(*args)
            return
        if not wait:
            self._inbox.append((fn, args))
            with self._inbox_lock:
                if self._drain_scheduled:
                    return
                self._drain_scheduled = True
            self._loop.call_soon_threadsafe(self._drain)
            return
        done = threading.Event()

        def call() -> None:
            try:
                fn(*args)
            finally:
                done.set()

        self._loop.call_soon_threadsafe(call)
        done.wait(5)

    # -- loop side -------------------------------------------------------------
    def _drain(self) -> None:
        with self._inbox_lock:
            self._drain_scheduled = False
        while self._inbox:
            fn, args = self._inbox.popleft()
            fn(*args)

    def _admit(self, job: Job) -> None:
        if job.done():
            return
        waiting = False
        for dep in job.after:
            if dep.done():
                if dep.state != DONE:
                    self._finish(job, CANCELLED, exc=JobCancelled(f"dependency {dep.name!r} {dep.state}"))
                    return
            else:
                waiting = True
                self._dependents.setdefault(dep.id, []).append(job)
        if not waiting:
            self._enqueue(job)

    def _enqueue(self, job: Job) -> None:
        job._set_state(QUEUED)
        self.notifier.changed(job)
        self.store.record(job, QUEUED)
        self._push(job)
        self._dispatch()

    def _push(self, job: Job) -> None:
        heapq.heappush(self._ready.setdefault(job.executor, []), (-job.priority, next(self._seq), job))

    def _dispatch(self) -> None:
        while not self._closing:
            best = None
            for name, heap in self._ready.items():
                while heap and heap[0][2].state != QUEUED:
                    heapq.heappop(heap)  # cancelled while queued
                if not heap:
                    continue
                ex = self._executors[name]
                if self._running_by_ex.get(name, 0) >= (ex.slots or 1):
                    continue
                if ex.compute and self._compute_running >= self.slots:
                    continue
                if best is None or heap[0][:2] < best[0][:2]:
                    best = (heap[0], name)
            if best is None:
                return
            heapq.heappop(self._ready[best[1]])
            self._start(best[0][2])

    def _start(self, job: Job) -> None:
        ex = self._executors[job.executor]
        job._set_state(RUNNING)
        job.attempts += 1
        if job.started is None:
            job.started = time.time()
        self._running_by_ex[ex.name] = self._running_by_ex.get(ex.name, 0) + 1
        if ex.compute:
            self._compute_running += 1
        self._running[job.id] = job
        self.max_running_seen = max(self.max_running_seen, self._compute_running)
        self.notifier.changed(job)
        self.store.record(job, RUNNING)
        self._tasks[job.id] = self._loop.create_task(self._run(job, ex))
        if job.timeout is not None:
            self._timers[job.id] = self._loop.call_later(job.timeout, self._on_timeout, job, job.attempts)

    async def _run(self, job: Job, ex: Executor) -> None:
        state, result, exc = DONE, None, None
        try:
            result = await ex.run(job)
            if job._finalize is not None:
                result = job._finalize(job, result)
        except asyncio.CancelledError:
            state, exc = self._stopped(job)
        except JobCancelled as err:
            state, exc = self._stopped(job, err)
        except BaseException as err:  # noqa: BLE001 - the job's own failure
            if job.ctx.cancel_reason is not None:
                state, exc = self._stopped(job)
            else:
                state, exc = FAILED, err
        finally:
            self._tasks.pop(job.id, None)
            timer = self._timers.pop(job.id, None)
            if timer is not None:
                timer.cancel()
            self._running.pop(job.id, None)
            self._running_by_ex[ex.name] -= 1
            if ex.compute:
                self._compute_running -= 1
        if state == DONE and job.ctx.cancel_reason is not None and job.info.get("timed_out"):
            state, exc = self._stopped(job)  # finished, but after its deadline
        if state == FAILED and job.attempts <= job.retries and not self._closing:
            self._retry(job, exc)
        else:
            self._finish(job, state, result, exc)
        self._dispatch()

    def _stopped(self, job: Job, err: BaseException | None = None) -> tuple[str, BaseException]:
        reason = job.ctx.cancel_reason or (getattr(err, "reason", None)) or "cancelled"
        if job.info.get("timed_out"):
            return TIMED_OUT, JobTimedOut(reason)
        return CANCELLED, JobCancelled(reason)

    def _retry(self, job: Job, exc: BaseException | None) -> None:
        delay = job.backoff * 2 ** (job.attempts - 1)
        job.info.setdefault("attempt_errors", []).append(f"{type(exc).__name__}: {exc}")
        job._set_state(QUEUED)
        ctx = job.ctx
        ctx.message = f"retry {job.attempts}/{job.retries} in {delay:.2g} s after {type(exc).__name__}: {exc}"
        ctx.output.write(f"\n--- attempt {job.attempts} failed: {type(exc).__name__}: {exc}; "
                         f"retrying in {delay:.2g} s ---\n")
        self.notifier.changed(job)
        self.store.record(job, QUEUED)

        def again() -> None:
            if job.state == QUEUED:
                ctx.done, ctx.total = 0, None
                self._push(job)
                self._dispatch()

        self._loop.call_later(delay, again)

    def _on_timeout(self, job: Job, attempt: int) -> None:
        if job.state != RUNNING or job.attempts != attempt:
            return
        job.info["timed_out"] = True
        if job.ctx.cancel_reason is None:
            job.ctx.cancel_reason = f"timed out after {job.timeout:g} s"
        self._interrupt(job, abandon_after=self.thread_grace)

    def _cancel_on_loop(self, job: Job, abandon: bool) -> None:
        if job.done():
            return
        if job.state in (PENDING, QUEUED):
            self._finish(job, CANCELLED, exc=JobCancelled(job.ctx.cancel_reason or "cancelled"))
            self._dispatch()
            return
        self._interrupt(job, abandon_after=0.0 if abandon else None)
        self.notifier.changed(job)

    def _interrupt(self, job: Job, abandon_after: float | None) -> None:
        self._executors[job.executor].interrupt(job)
        if abandon_after is None:
            return

        def abandon() -> None:
            task = self._tasks.get(job.id)
            if task is not None and not task.done():
                job.info["abandoned"] = True
                task.cancel()

        self._loop.call_later(abandon_after, abandon)

    def _finish(self, job: Job, state: str, result: Any = None, exc: BaseException | None = None) -> None:
        if exc is not None and hasattr(exc, "__notebook_ext_traceback__"):
            job._finish(state, result, exc)
            job._traceback = exc.__notebook_ext_traceback__  # the worker's own traceback
        else:
            job._finish(state, result, exc)
        self.notifier.changed(job)
        self.store.record(job, state)
        for dependent in self._dependents.pop(job.id, []):
            if dependent.state != PENDING:
                continue
            if state != DONE:
                self._finish(dependent, CANCELLED, exc=JobCancelled(f"dependency {job.name!r} {state}"))
            elif all(d.state == DONE for d in dependent.after):
                self._enqueue(dependent)

    def _by_id(self, job_id: int) -> Job | None:
        return self._ids.get(job_id)

    # -- shutdown --------------------------------------------------------------
    def shutdown(self, wait: bool = True, timeout: float = 10.0) -> None:
        """Cancel every active job and release every thread, process and task
        this scheduler started."""
        if self._closing:
            return
        for job in self.all_jobs():
            if not job.done() and job.ctx.cancel_reason is None:
                job.ctx.cancel_reason = "the scheduler was shut down"

        async def close() -> None:
            self._closing = True
            for job in list(self._all):
                if job.state in (PENDING, QUEUED):
                    self._finish(job, CANCELLED, exc=JobCancelled(job.ctx.cancel_reason or "shut down"))
            for job in list(self._running.values()):
                self._executors[job.executor].interrupt(job)
            tasks = list(self._tasks.values())
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=self.thread_grace)
                for t in pending:
                    t.cancel()
                await asyncio.gather(*pending, return_exceptions=True)

        if self._thread.is_alive():
            fut = asyncio.run_coroutine_threadsafe(close(), self._loop)
            try:
                fut.result(timeout)
            except Exception:
                pass
        for ex in self._executors.values():
            ex.shutdown()
        self.notifier.close()
        self.store.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        if wait:
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> "Scheduler":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
