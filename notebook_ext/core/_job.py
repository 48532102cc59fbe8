"""The `Job` handle: the live object behind a background job, its typed
facts and the transitions of its state machine.

Cancellation follows trio's cancel scopes: `Job.cancel_called` says a
cancel was requested, `Job.cancelled_caught` that the cancellation is what
ended the job. A job that raised its own error after a cancel request ends
``failed`` with that error (the cancel is noted in `Job.cancel_note`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import namedtuple
import itertools
import threading
import traceback
from typing import Any, Callable, Generator, Iterator, Mapping, Protocol

from ._clock import SYSTEM_CLOCK, Clock
from ._context import JobContext, current_context
from ._records import JobRecord
from ._text import clean
from ._tracebacks import NAME as TB_NAME, attach as attach_traceback, format_traceback
from ._states import (
    CANCELLED,
    DONE,
    FAILED,
    FINAL_STATES,
    PENDING,
    QUEUED,
    RUNNING,
    TIMED_OUT,
    JobCancelled,
    JobDetail,
    JobSnapshot,
    Progress,
)

_ALLOWED = {  # FAILED before RUNNING: the scheduler's loop died under the job (LoopDied)
    PENDING: {QUEUED, CANCELLED, FAILED},
    QUEUED: {RUNNING, CANCELLED, FAILED},
    RUNNING: {DONE, FAILED, CANCELLED, TIMED_OUT, QUEUED},  # QUEUED: a retry
}


class JobControl(Protocol):
    """What a `Job` asks of whoever runs it (the `Scheduler`)."""

    clock: Clock

    @property
    def session(self) -> str:
        """The ledger's id for these jobs (a job's is ``session:job_id``)."""

    def cancel(self, job: "Job | str", reason: str | None = None, *, abandon: bool = False) -> bool: ...

    def request_stop(self, job: "Job") -> bool: ...

    def retry(self, job: "Job | str") -> "Job": ...

    def changed(self, job: "Job", *, record: bool = False) -> None: ...

    def lend_slot(self, job: "Job") -> None: ...

    def reclaim_slot(self, job: "Job") -> None: ...


_ids = itertools.count(1)
_LOCK = threading.Lock()  # short critical sections only: done callbacks, lazy events


class Job:
    """Handle to one background job.

    Created by `Scheduler.submit` (or `notebook_ext.submit`); never directly.

    Examples
    --------
    >>> job = submit(sum, [1, 2, 3])          # doctest: +SKIP
    >>> job.result(timeout=5)                 # doctest: +SKIP
    6
    """

    __slots__ = (
        "id", "name", "kind", "priority", "timeout", "retries", "backoff", "executor", "after",
        "parent", "_children", "params", "code", "fn", "args", "kwargs", "finalize", "retry_with",
        "shipment", "_control", "_state", "attempts", "created", "started", "ended", "ctx",
        "_result", "_exception", "_traceback", "_full_traceback", "_event", "_callbacks", "_sequence", "_rate",
        "_settled", "_settling",
        "timed_out", "abandoned", "cancelled_caught", "cancel_note", "retried_as", "_attempt_errors",
        "_artifacts", "dashboard_link", "detail", "resume_spec", "version", "__weakref__",
    )

    def __init__(
        self,
        control: JobControl,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        name: str,
        kind: str = "job",
        priority: int = 0,
        timeout: float | None = None,
        retries: int = 0,
        backoff: float = 0.5,
        executor: str = "thread",
        after: tuple["Job", ...] = (),
        parent: "Job | None" = None,
        params: Mapping[str, Any] | None = None,
        code: str | None = None,
        finalize: Callable[["Job", Any], Any] | None = None,
        retry_with: Callable[["Job"], "Job"] | None = None,
        detail: JobDetail | None = None,
        resume: Mapping[str, Any] | None = None,
    ) -> None:
        self.id = next(_ids)
        self.name = name
        self.kind = kind
        self.priority = int(priority)
        self.timeout = timeout
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.executor = executor
        self.after = after
        self.parent = parent
        self._children: list[Job] | None = None
        self.params = dict(params) if params else {}
        self.code = code
        self.fn, self.args, self.kwargs = fn, args, kwargs
        #: runs in the scheduler after the job's code succeeded; returns the result
        self.finalize = finalize
        #: how `Scheduler.retry` re-runs this job (default: the same call again)
        self.retry_with = retry_with
        #: the executor's packed form of the call (e.g. pickled); dropped when the job ends
        self.shipment: Any = None
        self._control = control
        self._state = PENDING
        self.attempts = 0
        self.created = control.clock.time()
        self.started: float | None = None
        self.ended: float | None = None
        self.ctx = JobContext(self.id, self)
        self._result: Any = None
        self._exception: BaseException | None = None
        self._traceback: str | None = None  # the user's frames (see _tracebacks)
        self._full_traceback: str | None = None
        self._event: threading.Event | None = None  # made when someone waits
        self._callbacks: list[Callable[[Job], None]] | None = None
        self._settled = False  # final, and its done callbacks have run: waiters may go on
        self._settling: int | None = None  # the thread running those callbacks
        self._sequence = 0
        self._rate: tuple[float, float, float | None] | None = None  # (t, done, rate)
        self.timed_out = False  #: the timeout is what stopped it
        self.abandoned = False  #: a thread that never reached a checkpoint was given up
        self.cancelled_caught = False  #: the cancellation is what ended it
        self.cancel_note: str | None = None  #: how a cancel request went, when not plainly
        self.retried_as: Job | None = None  #: the job `Scheduler.retry` made of this one
        self._attempt_errors: list[str] | None = None
        self._artifacts: list[str] | None = None
        self.dashboard_link: str | None = None
        self.detail = detail
        #: how to pick this job up after a crash (JSON-able; kept in the history), or None
        self.resume_spec: dict[str, Any] | None = dict(resume) if resume else None
        self.version = 0  # bumped by every change of facts (for observers)

    # -- reading -----------------------------------------------------------
    @property
    def state(self) -> str:
        """One of ``pending queued running done failed cancelled timed_out``."""
        return self._state

    @property
    def scheduler(self) -> JobControl:
        """Whoever runs this job (its `Scheduler`)."""
        return self._control

    @property
    def children(self) -> list["Job"]:
        return self._children if self._children is not None else []

    def done(self) -> bool:
        """True once the job is in a final state."""
        return self._state in FINAL_STATES

    @property
    def progress(self) -> Progress:
        return self.snapshot().progress

    @property
    def metrics(self) -> dict[str, list[tuple[float, float]]]:
        """Metric history: name -> list of (step, value)."""
        return {k: list(v) for k, v in list(self.ctx.metrics.items())}

    @property
    def output(self) -> str:
        """Captured stdout/stderr of the job (the tail, bounded)."""
        return self.ctx.output_text()

    @property
    def cancel_called(self) -> bool:
        """True once a cancel was requested (by the user, a timeout, shutdown)."""
        ctx = self.ctx  # (the dispatcher asks this four times a job: the flag first, no second property)
        return ctx.attention and ctx._cancel_reason is not None

    cancel_requested = cancel_called

    @property
    def cancel_reason(self) -> str | None:
        return self.ctx._cancel_reason

    @property
    def stop_requested(self) -> bool:
        return self.ctx.stop

    @property
    def attempt_errors(self) -> list[str]:
        """One line per failed attempt that was retried."""
        return list(self._attempt_errors or ())

    @property
    def artifacts(self) -> list[str]:
        """Files the job saved (e.g. a model), recorded in the history."""
        return list(self._artifacts or ())

    @property
    def error(self) -> str | None:
        """One line naming the failure, or None."""
        exc = self._exception
        if exc is None:
            return None
        if isinstance(exc, JobCancelled) and self.cancelled_caught:
            return exc.reason
        return describe_error(exc)

    @property
    def traceback(self) -> str | None:
        """The failure's traceback: the user's frames, with the cell's lines."""
        return self._traceback

    @property
    def full_traceback(self) -> str | None:
        """The traceback with every frame, notebook_ext's and asyncio's too."""
        return self._full_traceback

    def snapshot(self) -> JobSnapshot:
        """An immutable picture of the job now."""
        ctx = self.ctx
        now = self._control.clock.time()
        detail = self.detail
        done, total, message = self.counts(detail)
        rate = eta = None
        state = self._state
        if state == RUNNING and self.started is not None:
            rate = self._update_rate(now, done)
            if rate and total is not None and total > done:
                eta = (total - done) / rate
        elif self.started is not None and self.ended is not None:
            span = self.ended - self.started
            rate = done / span if span > 0 and done else None
        self._sequence += 1  # only the notifier and readers on demand: races cost a skipped number
        return JobSnapshot(
            id=self.id, name=self.name, kind=self.kind, state=state, priority=self.priority,
            executor=self.runs_on, attempts=self.attempts, retries=self.retries,
            created=self.created, started=self.started, ended=self.ended,
            progress=Progress(done, total, message, rate, eta),
            metrics={k: tuple(v) for k, v in list(ctx.metrics.items())},
            output=ctx.output_text(), displays=ctx.display_items(), error=self.error, traceback=self._traceback,
            cancel_requested=ctx.cancel_reason is not None, cancel_reason=ctx.cancel_reason,
            stop_requested=ctx.stop, parent=self.parent.name if self.parent else None,
            children=tuple(c.name for c in self.children), after=tuple(j.name for j in self.after),
            sequence=self._sequence, taken=now, timed_out=self.timed_out, abandoned=self.abandoned,
            cancelled_caught=self.cancelled_caught, cancel_note=self.cancel_note,
            retried_as=self.retried_as.id if self.retried_as is not None else None,
            attempt_errors=tuple(self._attempt_errors or ()), artifacts=tuple(self._artifacts or ()),
            dashboard_link=self.dashboard_link, detail=detail,
        )

    def counts(self, detail: JobDetail | None = None) -> "tuple[float, float | None, str]":
        """``(done, total, message)`` now: from ``detail`` (default: the
        job's) when it carries them, read at once with its other facts."""
        detail = detail if detail is not None else self.detail
        counted = detail.counts() if detail is not None else None
        if counted is not None:
            return counted
        ctx = self.ctx
        return ctx.done, ctx.total, ctx.message

    def _update_rate(self, now: float, done: float) -> float | None:
        # A smoothed rate, so the ETA does not jump with every tick.
        prev = self._rate
        if prev is None:
            assert self.started is not None
            span = now - self.started
            rate = done / span if span > 0 and done else None
            self._rate = (now, done, rate)
            return rate
        t0, d0, r0 = prev
        if now - t0 < 0.05:
            return r0
        inst = (done - d0) / (now - t0)
        rate = inst if r0 is None else 0.3 * inst + 0.7 * r0
        self._rate = (now, done, rate)
        return rate if rate and rate > 0 else r0

    # -- results -----------------------------------------------------------
    def _wait_event(self, timeout: float | None, lend: bool = True) -> bool:
        # Waiters go on once the done callbacks ran (a callback may read the result itself).
        if self._settled or (self._settling == threading.get_ident() and self.done()):
            return True
        with _LOCK:
            event = self._event
            if event is None:
                event = self._event = threading.Event()
            if self._settled:
                event.set()
        if not lend:  # the caller lends the slot around all its waits
            return event.wait(timeout)
        with lending_slot(self._control, self):
            return event.wait(timeout)

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the job and return its value, or raise its exception.

        Raises `TimeoutError` when ``timeout`` seconds pass first, and
        `JobCancelled` (or `JobTimedOut`) for a job that was stopped.
        """
        if not self._wait_event(timeout):
            raise TimeoutError(f"job {self.name!r} is still {self._state} after {timeout} s")
        if self._exception is not None:
            raise self._exception
        return self._result

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the job and return its exception (None when it succeeded)."""
        if not self._wait_event(timeout):
            raise TimeoutError(f"job {self.name!r} is still {self._state} after {timeout} s")
        return self._exception

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends; True if it did within ``timeout``."""
        return self._wait_event(timeout)

    def __await__(self) -> Generator[Any, None, Any]:
        return self._wait_async().__await__()

    async def _wait_async(self) -> Any:
        await self.wait_async()
        return self.result()

    async def wait_async(self) -> None:
        """Await the end of the job (from any event loop), without its result."""
        if self.done():
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def settle() -> None:
            if not fut.done():
                fut.set_result(None)

        def wake(_job: Job) -> None:
            try:
                loop.call_soon_threadsafe(settle)
            except RuntimeError:  # that loop is closed: nobody waits any more
                pass

        self.add_done_callback(wake)
        with lending_slot(self._control, self):
            await fut

    def add_done_callback(self, fn: Callable[["Job"], None]) -> None:
        """Call ``fn(job)`` once the job ends (at once if it has), from any thread."""
        with _LOCK:
            if not self.done():
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
                return
        fn(self)

    # -- control -----------------------------------------------------------
    def cancel(self, reason: str | None = None) -> bool:
        """Ask the job to stop; True if the request was made.

        A pending or queued job is cancelled at once, a coroutine at its next
        ``await``, a thread job at its next `progress` / `report` /
        `checkpoint`, a process job by terminating its worker process.
        """
        return self._control.cancel(self, reason)

    def request_stop(self) -> bool:
        """"Stop and keep": ask the job to finish cleanly at its next step,
        keeping what it has so far (code checks `stop_requested()`)."""
        return self._control.request_stop(self)

    @property
    def runs_on(self) -> str:
        """The executor the job's work runs on, as cards and the history
        name it: its detail's ``runs_on`` when the job's own code only
        coordinates work elsewhere (a search awaiting its folds on Dask),
        else ``executor``, where its code runs."""
        detail = self.detail
        return detail.runs_on if detail is not None and detail.runs_on else self.executor

    def set_detail(self, detail: JobDetail) -> None:
        """Replace the job's typed facts (a leaderboard, serving stats …);
        observers get a fresh snapshot."""
        self.set_facts(detail=detail)

    _FACTS = frozenset({"detail", "dashboard_link", "cancel_note", "timed_out", "abandoned"})

    def set_facts(self, **facts: Any) -> None:
        """Change facts about the job that the scheduler does not own (its
        executor's dashboard link, a note on how a cancel went, its typed
        detail, a timeout that stopped it …): the one way layers change a
        job's record, so observers always get a fresh snapshot."""
        unknown = set(facts) - self._FACTS
        if unknown:
            raise TypeError(f"set_facts() cannot set {', '.join(sorted(unknown))}; it sets "
                            f"{', '.join(sorted(self._FACTS))}")
        for key, value in facts.items():
            setattr(self, key, value)
        self.version += 1
        self._control.changed(self)

    @property
    def record(self) -> JobRecord:
        """The job's durable record now: what the ledger keeps of it, the
        type `notebook_ext.history()` lists."""
        return JobRecord.of(self, self._control.session)

    def add_artifact(self, path: str) -> None:
        """Record a file the job saved (shown on its card, kept in the history)."""
        if self._artifacts is None:
            self._artifacts = []
        self._artifacts.append(str(path))
        self.version += 1
        self._control.changed(self, record=True)

    def __repr__(self) -> str:
        p = self.ctx
        prog = f" {p.done:g}/{p.total:g}" if p.total else ""
        return f"<Job {self.name!r} {self._state}{prog}>"

    # -- scheduler side ----------------------------------------------------
    def _add_child(self, child: "Job") -> None:
        if self._children is None:
            self._children = []
        self._children.append(child)

    def _note_attempt_error(self, line: str) -> None:
        if self._attempt_errors is None:
            self._attempt_errors = []
        self._attempt_errors.append(line)
        self.version += 1

    def _set_state(self, state: str) -> None:
        if state not in _ALLOWED.get(self._state, ()):
            raise RuntimeError(f"job {self.name!r}: illegal transition {self._state} -> {state}")
        self._state = state

    def _finish(self, state: str, result: Any = None, exc: BaseException | None = None,
                tb: tuple[str, str] | None = None,
                announce: Callable[["Job", str], None] | None = None) -> None:
        if state not in _ALLOWED.get(self._state, ()):
            raise RuntimeError(f"job {self.name!r}: illegal transition {self._state} -> {state}")
        self._result = result
        self._exception = exc
        if tb is None and exc is not None and not (isinstance(exc, JobCancelled) and self.cancelled_caught):
            tb = format_traceback(exc)
        if tb is not None:
            short, self._full_traceback = tb
            self._traceback = short.replace(f"%result {TB_NAME} --full", f"%result {self.name} --full")
            if exc is not None:
                attach_traceback(exc, self._traceback)  # re-raised in a cell, it shows the user's frames
        self.ended = self._control.clock.time()
        # Inputs are no longer needed by anyone but Retry, which re-packs them.
        self.shipment = None
        if state == DONE and (self.parent is not None or self.retry_with is not None):
            # Nobody re-runs this call as it was (a child is retried through
            # its parent; `retry_with` says how): let its inputs go.
            self.fn, self.args, self.kwargs = _dropped, (), {}
        self._state = state  # last: readers that see a final state see its result
        if announce is not None:  # before waiters wake: whoever waited reads the history with this state
            announce(self, state)
        with _LOCK:
            callbacks, self._callbacks = self._callbacks, None
        if callbacks:  # before waiters wake: `--out` is assigned, a checkpoint gone, when they do
            self._settling = threading.get_ident()
            for cb in callbacks:
                try:
                    cb(self)
                except Exception:  # a broken observer must not break the scheduler
                    traceback.print_exc()
        with _LOCK:
            self._settled = True
            event = self._event
        if event is not None:
            event.set()


def _dropped(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("this job finished and let go of its inputs; submit the call again")


def describe_error(exc: BaseException) -> str:
    """``Type: message``, whatever the exception's ``__str__`` does."""
    try:
        text = str(exc)
    except Exception as err:  # noqa: BLE001 - a user's broken __str__
        text = f"<str() of this exception raised {type(err).__name__}>"
    return clean(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


@contextlib.contextmanager
def lending_slot(control: JobControl, awaited: Job | None = None) -> Iterator[None]:
    """While the job running this code blocks on other jobs of ``control``,
    its slot serves them: fan-out from inside jobs cannot deadlock."""
    ctx = current_context()
    waiter = ctx.job if ctx is not None else None
    if waiter is None or waiter is awaited or waiter._control is not control or waiter._state != RUNNING:
        yield
        return
    control.lend_slot(waiter)
    try:
        yield
    finally:
        control.reclaim_slot(waiter)


WaitResult = namedtuple("WaitResult", "done pending")


def wait_all(jobs: "list[Job]", timeout: float | None) -> None:
    """Wait for every job to end, at most ``timeout`` real seconds in all
    (in short waits, so Ctrl-C interrupts it)."""
    deadline = None if timeout is None else SYSTEM_CLOCK.monotonic() + timeout
    if not jobs or all(job._settled for job in jobs):
        return
    with lending_slot(jobs[0]._control):
        # Newest first: jobs mostly end in the order they were submitted, so
        # one wake-up usually finds the others ended too (in order, the
        # waiter would wake, and take the GIL from the loop, once per job).
        for job in reversed(jobs):
            while not job._settled:
                left = None if deadline is None else deadline - SYSTEM_CLOCK.monotonic()
                if left is not None and left <= 0:
                    return
                job._wait_event(0.2 if left is None else min(0.2, left), lend=False)
