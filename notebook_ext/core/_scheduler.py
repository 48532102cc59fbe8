"""The scheduler: priorities, slots, timeouts, retries, dependencies, cancel.

This is the facade other threads call: it validates, names and registers
jobs, then hands them to the `Dispatcher` on the scheduler's own loop thread
(a `LoopThread`), so scheduling keeps going while a notebook cell blocks the
kernel's main thread, and works the same in a plain Python script.
"""

from __future__ import annotations

import inspect
import os
import threading
import warnings
from types import FunctionType
from typing import Any, Callable, Iterable, Mapping, Sequence

from ._clock import SYSTEM_CLOCK, Clock
from ._dispatch import Dispatcher
from ._executor import Executor, with_defaults
from ._job import Job, WaitResult, describe_error, wait_all
from ._registry import JobRegistry, check_call
from ._states import DONE, INTERRUPTED, PENDING, QUEUED, JobDetail, LoopDied
from ._loopthread import LoopThread
from ._notify import Notifier, Observer
from ._store import HistoryStore, default_history_path
from ._text import clean

_DEFAULT = object()
_SHUTDOWN = "the scheduler was shut down"
_CANCEL_CONFIRM = 1.0  # seconds cancel() waits for the loop to confirm a queued job's end


class Scheduler:
    """Runs jobs in the background with priorities and concurrency slots.

    Parameters
    ----------
    slots : int, optional
        Compute jobs (thread, process) running at once; default: the number
        of CPUs. Coroutine jobs (the ``loop`` executor) have slots of their
        own (256), since they mostly wait.
    history : path, None or False
        Where job records are kept; default `default_history_path()`;
        None or False: no history.
    executors : iterable of Executor
        Added to (or replacing by name) the default loop, thread and
        process executors.
    thread_grace : float
        Seconds a thread job gets to reach a checkpoint after its timeout
        before it is abandoned (marked ``timed_out``; the thread's eventual
        result is discarded).
    clock : Clock
        Where time comes from (timeouts, back-off, throttling, timestamps);
        tests pass `notebook_ext.testing.FakeClock`.

    Examples
    --------
    >>> sched = Scheduler(slots=2, history=None)       # doctest: +SKIP
    >>> job = sched.submit(sum, [1, 2, 3])
    >>> job.result(timeout=5)
    6
    >>> sched.shutdown()
    """

    def __init__(
        self, slots: int | None = None, *, history: Any = _DEFAULT, executors: Iterable[Executor] = (),
        thread_grace: float = 1.0, notify_interval: float = 0.1, clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if slots is not None and (isinstance(slots, bool) or not isinstance(slots, int) or slots < 1):
            raise ValueError(f"`slots` must be a positive integer, got {slots!r}")
        self.slots = slots or os.cpu_count() or 1
        self.clock = clock
        self.thread_grace = thread_grace
        self._registry = JobRegistry()
        self._closing = False
        path = default_history_path() if history is _DEFAULT else (history or None)
        self.store = HistoryStore(path, clock=clock)
        self.store.on_request = self._requested
        self._executors: dict[str, Executor] = {}
        self._loop_lock = threading.Lock()  # a job's admission and a dead loop's replacement, one at a time
        self._arrivals: list[Job] = []  # submitted, not yet taken by the loop (under _loop_lock)
        self.loop_thread: LoopThread
        self._dispatcher: Dispatcher
        self._start_loop()
        self.notifier = Notifier(lambda: list(self._dispatcher.running.values()),
                                 interval=notify_interval, clock=clock)
        for ex in with_defaults(executors):
            self.add_executor(ex)

    def _start_loop(self) -> None:
        """A loop thread and its dispatcher: at start, and after a loop died."""
        lt = LoopThread("notebook_ext-scheduler", self.clock, on_death=self._loop_died)
        self._dispatcher = Dispatcher(lt, self._executors, self.slots, self.thread_grace, self._on_change)
        self.loop_thread = lt

    def _loop_died(self, exc: BaseException) -> None:
        """The watchdog's call, on the dead loop's thread: every job that loop
        held (admitted, or still in its inbox) fails with one error that says
        so, and new jobs go to a fresh loop. Never a silent hang."""
        with self._loop_lock:
            old = self._dispatcher
            arrived, self._arrivals = self._arrivals, []  # that loop's to take: it never will
            if not self._closing:
                self._start_loop()
        held = dict(old.held)
        held.update((job.id, job) for job in arrived)
        cause = describe_error(exc)
        old.fail_all(held.values(), lambda job: LoopDied(
            f"the scheduler's loop thread died ({cause}: user code raised it on the loop itself) "
            f"while job {job.name!r} was {job.state}; new jobs get a fresh loop, %retry runs this one again"))

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

    @property
    def max_running_seen(self) -> int:
        """The most compute jobs that ran at once (for tests and benchmarks)."""
        return self._dispatcher.max_running_seen

    @property
    def session(self) -> str:
        """This scheduler's session in the ledger: its jobs' ids are ``session:N``."""
        return self.store.session

    @property
    def closed(self) -> bool:
        return self._closing

    # -- submitting ----------------------------------------------------------
    def submit(
        self, fn: Callable[..., Any], *args: Any, name: str | None = None, priority: int = 0,
        timeout: float | None = None, retries: int = 0, backoff: float = 0.5, executor: str | None = None,
        after: Sequence["Job | str"] | "Job | str" = (), kind: str = "job", parent: "Job | None" = None,
        params: Mapping[str, Any] | None = None, code: str | None = None,
        finalize: Callable[[Job, Any], Any] | None = None, retry_with: Callable[[Job], Job] | None = None,
        detail: JobDetail | None = None, resume: Mapping[str, Any] | None = None, **kwargs: Any,
    ) -> Job:
        """Run ``fn(*args, **kwargs)`` in the background; return its `Job`.

        A coroutine function runs on the scheduler's loop, a plain function
        in a thread, unless ``executor`` ("loop", "thread", "process", "dask")
        says otherwise. Higher ``priority`` starts first; ``timeout`` limits
        each attempt (seconds); ``retries`` re-runs a job that raised, after
        ``backoff * 2**(attempt-1)`` seconds; ``after`` names jobs that must
        finish ``done`` first (if one fails, this job is cancelled).
        ``finalize(job, value)``, when given, runs in the scheduler after the
        job's code succeeded and returns the job's result (an exception
        there fails the job); ``retry_with(job)`` is how `retry` re-runs it.
        ``kind``, ``params``, ``code`` and ``detail`` describe the job in
        cards and the history; ``resume`` (JSON-able) is kept in the history
        for whoever resumes the job after a crash (see `notebook_ext.resume`).

        Examples
        --------
        >>> job = sched.submit(fit, X, y, name="fit", retries=2)   # doctest: +SKIP
        """
        ex = self._checked(fn, executor, priority, timeout, retries)
        deps = self._dependencies(after)
        with self._registry.lock:
            # One pass of the options, straight into the Job: each hop of
            # sixteen keywords costs about as much as the Job itself.
            job = Job(self, fn, args, kwargs, name=self._registry.claim_name(name, kind), kind=kind,
                      priority=priority, timeout=timeout, retries=retries, backoff=backoff, executor=ex.name,
                      after=deps, parent=parent, params=params, code=code, finalize=finalize,
                      retry_with=retry_with, detail=detail, resume=resume)
            self._enlist(job, ex)
        self._on_change(job, PENDING)
        self._admit([job])
        return job

    def submit_many(self, fn: Callable[..., Any], arguments: Iterable[Any], **options: Any) -> list[Job]:
        """Submit ``fn(*a)`` for every ``a`` in ``arguments`` (a tuple, or
        one value) with the same options; the batch reaches the loop in one
        call, which is much cheaper than as many `submit` calls.

        Examples
        --------
        >>> jobs = sched.submit_many(load, [("a.csv",), ("b.csv",)], retries=1)   # doctest: +SKIP
        """
        if "name" in options:
            raise ValueError("`name` cannot be given to submit_many (names must be unique); "
                             "jobs get kind-N names")
        # The options are the same for every job: checked and resolved once.
        ex = self._checked(fn, options.pop("executor", None), options.get("priority", 0),
                           options.get("timeout"), options.get("retries", 0))
        deps = self._dependencies(options.pop("after", ()))
        kind = options.setdefault("kind", "job")
        jobs: list[Job] = []
        try:
            with self._registry.lock:
                for a in arguments:
                    job = Job(self, fn, a if isinstance(a, tuple) else (a,), {},
                              name=self._registry.claim_name(None, kind), executor=ex.name, after=deps, **options)
                    self._enlist(job, ex)
                    jobs.append(job)
        finally:  # a job refused halfway (its executor could not pack it): the ones made before still run
            for job in jobs:
                self._on_change(job, PENDING)
            if jobs:
                self._admit(jobs)
        return jobs

    def _checked(self, fn: Callable[..., Any], executor: str | None, priority: Any, timeout: Any,
                 retries: Any) -> Executor:
        """The executor a call goes to, once the call passed `check_call`."""
        if self._closing:
            raise RuntimeError("this scheduler is shut down; create a new one")
        check_call(fn, priority, timeout, retries)
        if executor is None:
            executor = "loop" if _is_coroutine_function(fn) else "thread"
        return self.executor(executor)

    def _dependencies(self, after: Any) -> tuple[Job, ...]:
        if not after:
            return ()
        return tuple(self._registry.resolve(a, "after")
                     for a in ([after] if isinstance(after, (str, Job)) else after))

    def _enlist(self, job: Job, ex: Executor) -> None:
        """A new job becomes known: packed by its executor, registered,
        adopted by its parent (call with the registry's lock held)."""
        ex.prepare(job)
        self._registry.add(job)
        if job.parent is not None:
            job.parent._add_child(job)

    def _admit(self, jobs: list[Job]) -> None:
        """Hand new jobs to the loop. A burst of submits reaches it as one
        batch (one call in its inbox, one admission), however many calls
        made it; calls posted after a job's submit returned (its cancel)
        still come after its admission."""
        with self._loop_lock:
            if not self._arrivals:
                self.loop_thread.call_soon(self._take_arrivals)
            self._arrivals.extend(jobs)

    def _take_arrivals(self) -> None:
        """On the loop thread: admit every job submitted since the last time."""
        with self._loop_lock:
            jobs, self._arrivals = self._arrivals, []
        self._dispatcher.admit(jobs)

    # -- reading -------------------------------------------------------------
    @property
    def jobs(self) -> dict[str, Job]:
        """Name -> newest job of that name, in submission order."""
        return self._registry.by_name()

    def all_jobs(self) -> list[Job]:
        """Every job this scheduler ran, older ones of a reused name too."""
        return self._registry.all()

    def get(self, name: "str | Job") -> Job:
        """The job named ``name``; `KeyError` with a helpful message if none."""
        return self._registry.get(name)

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Deliver job snapshots to ``observer`` (from the notifier thread)."""
        return self.notifier.subscribe(observer)

    def wait(self, *jobs: "Job | str", timeout: float | None = None) -> WaitResult:
        """Block until the jobs (default: all active ones) end or ``timeout``
        passes; returns ``(done, pending)`` lists. Interruptible."""
        targets = ([self._registry.resolve(j, "jobs") for j in jobs] if jobs
                   else [j for j in self.all_jobs() if not j.done()])
        wait_all(targets, timeout)
        return WaitResult([j for j in targets if j.done()], [j for j in targets if not j.done()])

    # -- control (JobControl) --------------------------------------------------
    def cancel(self, job: "Job | str", reason: str | None = None, *, abandon: bool = False) -> bool:
        """Ask ``job`` to stop (see `Job.cancel`); True if the request was made.

        The request is recorded at once and cannot be lost; a pending or
        queued job is confirmed ``cancelled`` before this returns (unless the
        scheduler's loop is blocked). ``abandon=True`` also gives up on a
        thread job that does not reach a checkpoint: it is marked cancelled
        now and its thread's result is discarded when it ends.
        """
        job = self._registry.resolve(job, "job")
        if job.done():
            return False
        if job.ctx.cancel_reason is None:
            job.ctx.cancel_reason = clean(str(reason)) if reason else "cancelled by the user"
        # Queued: confirmed before returning; running: interrupted soon after.
        self.loop_thread.call_soon_confirmed(self._dispatcher.cancel, job, abandon,
                                             timeout=_CANCEL_CONFIRM if job.state in (PENDING, QUEUED) else 0)
        return True

    def request_stop(self, job: "Job | str") -> bool:
        """"Stop and keep" for ``job``; False when it has ended already."""
        job = self._registry.resolve(job, "job")
        if job.done():
            return False
        job.ctx.stop = True
        self.loop_thread.call_soon(self._dispatcher.request_stop, job)
        self.notifier.changed(job)
        return True

    def _requested(self, job_id: int, action: str, reason: str | None, sender: str | None) -> None:
        """A cancel or stop request another process left in the ledger's
        mailbox for one of our jobs (called on the history's writer thread)."""
        job = self._registry.by_id(job_id)
        if job is None or job.done():
            return
        if action == "stop":
            self.request_stop(job)
        else:
            self.cancel(job, reason or f"cancelled from {sender or 'another process'}")

    def retry(self, job: "Job | str") -> Job:
        """Run a finished job again as a new job under the same name (same
        options); a job submitted with ``retry_with`` is retried its own way,
        e.g. preprocessing only its failed items."""
        job = self._registry.resolve(job, "job")
        if not job.done():
            raise ValueError(f"job {job.name!r} is still {job.state}; wait for it or cancel it first")
        if job.retry_with is not None:
            new = job.retry_with(job)
        else:
            new = self.submit(
                job.fn, *job.args, name=job.name, priority=job.priority, timeout=job.timeout,
                retries=job.retries, backoff=job.backoff, executor=job.executor, kind=job.kind,
                parent=job.parent, params=job.params, code=job.code, finalize=job.finalize,
                detail=job.detail, **job.kwargs,
            )
        job.retried_as = new  # its cards follow the new run (not "1 failed" beside a second card)
        self.notifier.changed(job)
        return new

    def lend_slot(self, job: Job) -> None:
        """``job`` blocks waiting on other jobs: lend its slot meanwhile."""
        self.loop_thread.call_soon(self._dispatcher.lend, job)

    def reclaim_slot(self, job: Job) -> None:
        """``job`` waits no more: it takes its slot back."""
        self.loop_thread.call_soon(self._dispatcher.reclaim, job)

    def cancel_all(self, reason: str | None = None) -> int:
        """Cancel every active job; returns how many were asked."""
        return sum(1 for job in self.all_jobs() if not job.done() and self.cancel(job, reason))

    def changed(self, job: Job, *, record: bool = False) -> None:
        """A job's facts changed: observers get a fresh snapshot (and the
        history a fresh row when ``record``)."""
        self._on_change(job, job.state if record or job.done() else None)

    def _on_change(self, job: Job, state: str | None) -> None:
        # Three calls per job at least (queued, running, the end): when nobody
        # observes and no history is kept, nothing is made of them.
        if self.notifier.observed:
            self.notifier.changed(job)
        if state is not None and self.store.enabled:
            if self._closing and state != DONE and job.ctx.cancel_reason == _SHUTDOWN:
                state = INTERRUPTED  # in the history, as if the kernel had died
            self.store.record(job, state)

    # -- shutdown --------------------------------------------------------------
    def shutdown(self, wait: bool = True, timeout: float = 10.0) -> None:
        """Cancel every active job and release every thread, process and task
        this scheduler started. A part that fails to close does not keep the
        others open; each such failure is told in one `RuntimeWarning` line."""
        if self._closing:
            return
        self._closing = True
        jobs = self.all_jobs()
        for job in jobs:
            if not job.done() and job.ctx.cancel_reason is None:
                job.ctx.cancel_reason = _SHUTDOWN
        failures: list[str] = []
        if self.loop_thread.running:
            try:
                self.loop_thread.submit(self._dispatcher.close(jobs, self.thread_grace)).result(timeout)
            except Exception as exc:  # noqa: BLE001 - release the rest anyway, and say so below
                failures.append(f"stopping the jobs ({describe_error(exc)})")
        for ex in self._executors.values():
            try:
                ex.shutdown()
            except Exception as exc:  # noqa: BLE001 - release the rest anyway, and say so below
                failures.append(f"the {ex.name} executor ({describe_error(exc)})")
        self.notifier.close()
        self.store.close()
        self.loop_thread.stop(timeout if wait else 0.0)
        for failure in failures:
            warnings.warn(f"notebook_ext: shutdown could not close {failure}; the rest was released",
                          RuntimeWarning, stacklevel=2)

    def __enter__(self) -> "Scheduler":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()


def _is_coroutine_function(fn: Callable[..., Any]) -> bool:
    # A plain function's flag is read directly: `inspect` unwraps methods and
    # partials first, which costs more than the rest of the check.
    if type(fn) is FunctionType:
        return bool(fn.__code__.co_flags & inspect.CO_COROUTINE)
    return inspect.iscoroutinefunction(fn)
