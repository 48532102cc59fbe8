"""The job model: states, immutable snapshots and the live `Job` handle."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from ._scheduler import Scheduler

PENDING = "pending"
QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
TIMED_OUT = "timed_out"
#: only found in the history store: the job was active when its kernel died
INTERRUPTED = "interrupted"

STATES = (PENDING, QUEUED, RUNNING, DONE, FAILED, CANCELLED, TIMED_OUT)
ACTIVE_STATES = frozenset({PENDING, QUEUED, RUNNING})
FINAL_STATES = frozenset({DONE, FAILED, CANCELLED, TIMED_OUT})

_ALLOWED = {
    PENDING: {QUEUED, CANCELLED},
    QUEUED: {RUNNING, CANCELLED},
    RUNNING: {DONE, FAILED, CANCELLED, TIMED_OUT, QUEUED},  # QUEUED: a retry
}

OUTPUT_LIMIT = 64_000  # characters of captured output kept per job (the tail)


class JobError(Exception):
    """Base class of the errors notebook_ext raises itself."""


class JobCancelled(JobError):
    """Raised inside a job when its cancellation takes effect, and by
    `Job.result()` for a cancelled job."""

    def __init__(self, reason: str = "cancelled") -> None:
        super().__init__(reason)
        self.reason = reason


class JobTimedOut(JobCancelled):
    """Raised by `Job.result()` for a job that ran past its timeout."""


class WorkerDied(JobError):
    """The process (or cluster worker) running a job died under it."""


@dataclass(frozen=True)
class Progress:
    """Progress of a job: ``done`` of ``total`` steps (``total`` may be None)."""

    done: float = 0
    total: float | None = None
    message: str = ""
    rate: float | None = None  # steps per second
    eta: float | None = None  # seconds left

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))


@dataclass(frozen=True)
class JobSnapshot:
    """An immutable picture of a job at one moment; what renderers draw."""

    id: int
    name: str
    kind: str
    state: str
    priority: int
    executor: str
    attempts: int
    retries: int
    created: float
    started: float | None
    ended: float | None
    progress: Progress
    metrics: Mapping[str, tuple[tuple[float, float], ...]]
    output: str
    error: str | None
    traceback: str | None
    cancel_requested: bool
    cancel_reason: str | None
    stop_requested: bool
    parent: str | None
    children: tuple[str, ...]
    after: tuple[str, ...]
    info: Mapping[str, Any]
    sequence: int  # grows with every snapshot of this job
    taken: float  # wall clock when taken

    @property
    def elapsed(self) -> float | None:
        if self.started is None:
            return None
        end = self.ended if self.ended is not None else self.taken
        return max(0.0, end - self.started)

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    def latest_metrics(self) -> dict[str, float]:
        return {k: v[-1][1] for k, v in self.metrics.items() if v}


class _Output:
    """A bounded text buffer keeping the tail; appends are cheap."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        self._chunks: deque[str] = deque()
        self._size = 0
        self._limit = limit
        self._dropped = 0
        self.version = 0
        self._lock = threading.Lock()
        self._text_cache: tuple[int, str] = (0, "")

    def write(self, text: str) -> None:
        if not text:
            return
        with self._lock:
            self._chunks.append(text)
            self._size += len(text)
            while self._size > self._limit and len(self._chunks) > 1:
                gone = self._chunks.popleft()
                self._size -= len(gone)
                self._dropped += len(gone)
            self.version += 1

    def text(self) -> str:
        with self._lock:
            if self._text_cache[0] == self.version:
                return self._text_cache[1]
            text = "".join(self._chunks)
            if len(text) > self._limit:
                self._dropped += len(text) - self._limit
                text = text[-self._limit :]
                self._chunks = deque([text])
                self._size = len(text)
            if self._dropped:
                text = f"[… {self._dropped} earlier characters dropped]\n" + text
            self._text_cache = (self.version, text)
            return text


class JobContext:
    """What job code writes to (through `report`, `progress`, `checkpoint`).

    The hot path is plain attribute assignment: no lock, no message. The
    scheduler's notifier thread reads these fields at most ten times a second.
    """

    __slots__ = (
        "done", "total", "message", "metrics", "output",
        "cancel_reason", "stop", "job_id", "job",
    )

    def __init__(self, job_id: int = 0, job: "Job | None" = None) -> None:
        self.job_id = job_id
        self.job = job  # None in worker processes
        self.done: float = 0
        self.total: float | None = None
        self.message: str = ""
        self.metrics: dict[str, list[tuple[float, float]]] = {}
        self.output = _Output()
        self.cancel_reason: str | None = None  # set => cancellation requested
        self.stop = False  # "stop and keep": finish at the next step boundary


_ids = itertools.count(1)


class Job:
    """Handle to one background job.

    Created by `Scheduler.submit` (or `notebook_ext.submit`); never directly.

    Examples
    --------
    >>> job = submit(sum, [1, 2, 3])          # doctest: +SKIP
    >>> job.result(timeout=5)                 # doctest: +SKIP
    6
    """

    def __init__(
        self,
        scheduler: "Scheduler",
        fn: Callable[..., Any],
        args: tuple,
        kwargs: dict,
        *,
        name: str,
        kind: str,
        priority: int,
        timeout: float | None,
        retries: int,
        backoff: float,
        executor: str,
        after: tuple["Job", ...],
        parent: "Job | None",
        params: Mapping[str, Any] | None,
        code: str | None,
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
        self.children: list[Job] = []
        self.params = dict(params or {})
        self.code = code
        self.info: dict[str, Any] = {}
        self._finalize: Callable[[Job, Any], Any] | None = None
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self._scheduler = scheduler
        self._state = PENDING
        self.attempts = 0
        self.created = time.time()
        self.started: float | None = None
        self.ended: float | None = None
        self.ctx = JobContext(self.id, self)
        self._result: Any = None
        self._exception: BaseException | None = None
        self._traceback: str | None = None
        self._done_event = threading.Event()
        self._callbacks: list[Callable[[Job], None]] = []
        self._lock = threading.Lock()
        self._sequence = 0
        self._rate: tuple[float, float, float | None] | None = None  # (t, done, rate)

    # -- reading -----------------------------------------------------------
    @property
    def state(self) -> str:
        """One of ``pending queued running done failed cancelled timed_out``."""
        return self._state

    def done(self) -> bool:
        """True once the job is in a final state."""
        return self._done_event.is_set()

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
        return self.ctx.output.text()

    @property
    def cancel_requested(self) -> bool:
        return self.ctx.cancel_reason is not None

    @property
    def stop_requested(self) -> bool:
        return self.ctx.stop

    @property
    def error(self) -> str | None:
        """One line naming the failure, or None."""
        exc = self._exception
        if exc is None:
            return None
        if isinstance(exc, JobCancelled):
            return exc.reason
        return f"{type(exc).__name__}: {exc}"

    @property
    def traceback(self) -> str | None:
        return self._traceback

    def snapshot(self) -> JobSnapshot:
        """An immutable picture of the job now."""
        ctx = self.ctx
        now = time.time()
        done, total = ctx.done, ctx.total
        rate = eta = None
        if self._state == RUNNING and self.started is not None:
            rate = self._update_rate(now, done)
            if rate and total is not None and total > done:
                eta = (total - done) / rate
        elif self.started is not None and self.ended is not None:
            span = self.ended - self.started
            rate = done / span if span > 0 and done else None
        with self._lock:
            self._sequence += 1
            seq = self._sequence
        return JobSnapshot(
            id=self.id,
            name=self.name,
            kind=self.kind,
            state=self._state,
            priority=self.priority,
            executor=self.executor,
            attempts=self.attempts,
            retries=self.retries,
            created=self.created,
            started=self.started,
            ended=self.ended,
            progress=Progress(done, total, ctx.message, rate, eta),
            metrics={k: tuple(v) for k, v in list(ctx.metrics.items())},
            output=ctx.output.text(),
            error=self.error,
            traceback=self._traceback,
            cancel_requested=ctx.cancel_reason is not None,
            cancel_reason=ctx.cancel_reason,
            stop_requested=ctx.stop,
            parent=self.parent.name if self.parent else None,
            children=tuple(c.name for c in self.children),
            after=tuple(j.name for j in self.after),
            info=dict(self.info),
            sequence=seq,
            taken=now,
        )

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
    def result(self, timeout: float | None = None) -> Any:
        """Wait for the job and return its value, or raise its exception.

        Raises `TimeoutError` when ``timeout`` seconds pass first, and
        `JobCancelled` (or `JobTimedOut`) for a job that was stopped.
        """
        if not self._done_event.wait(timeout):
            raise TimeoutError(f"job {self.name!r} is still {self._state} after {timeout} s")
        if self._exception is not None:
            raise self._exception
        return self._result

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the job and return its exception (None when it succeeded)."""
        if not self._done_event.wait(timeout):
            raise TimeoutError(f"job {self.name!r} is still {self._state} after {timeout} s")
        return self._exception

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends; True if it did within ``timeout``."""
        return self._done_event.wait(timeout)

    def __await__(self):
        return self._wait_async().__await__()

    async def _wait_async(self) -> Any:
        if not self.done():
            loop = asyncio.get_running_loop()
            fut: asyncio.Future = loop.create_future()

            def settle() -> None:
                if not fut.done():
                    fut.set_result(None)

            def wake(_job: Job) -> None:
                loop.call_soon_threadsafe(settle)

            self.add_done_callback(wake)
            await fut
        return self.result()

    def add_done_callback(self, fn: Callable[["Job"], None]) -> None:
        """Call ``fn(job)`` once the job ends (at once if it has), from any thread."""
        with self._lock:
            if not self._done_event.is_set():
                self._callbacks.append(fn)
                return
        fn(self)

    # -- control -----------------------------------------------------------
    def cancel(self, reason: str | None = None) -> bool:
        """Ask the job to stop; True if the request was made.

        A queued job is cancelled at once, a coroutine at its next ``await``,
        a thread job at its next `progress` / `report` / `checkpoint`, a
        process job by terminating its worker process.
        """
        return self._scheduler.cancel(self, reason)

    def request_stop(self) -> bool:
        """"Stop and keep": ask the job to finish cleanly at its next step,
        keeping what it has so far (code checks `stop_requested()`)."""
        if self.done():
            return False
        self.ctx.stop = True
        self._scheduler._stop_requested(self)
        return True

    def set_info(self, **info: Any) -> None:
        """Attach facts to the job for cards and the history (e.g. a
        leaderboard, ``artifacts=[path]``); observers get a fresh snapshot."""
        self.info.update(info)
        self._scheduler.notifier.changed(self)
        if "artifacts" in info or self.done():
            self._scheduler.store.record(self)

    def __repr__(self) -> str:
        p = self.ctx
        prog = f" {p.done:g}/{p.total:g}" if p.total else ""
        return f"<Job {self.name!r} {self._state}{prog}>"

    # -- scheduler side ----------------------------------------------------
    def _set_state(self, state: str) -> None:
        if state not in _ALLOWED.get(self._state, ()):
            raise RuntimeError(f"job {self.name!r}: illegal transition {self._state} -> {state}")
        self._state = state

    def _finish(self, state: str, result: Any = None, exc: BaseException | None = None) -> None:
        self._set_state(state)
        self._result = result
        self._exception = exc
        if exc is not None and not isinstance(exc, JobCancelled):
            self._traceback = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.ended = time.time()
        with self._lock:
            self._done_event.set()
            callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            try:
                cb(self)
            except Exception:  # a broken observer must not break the scheduler
                traceback.print_exc()
