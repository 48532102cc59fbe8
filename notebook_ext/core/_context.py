"""What job code calls: `progress`, `report`, `checkpoint`, `stop_requested`,
and the per-job capture of ``print`` output.

These work the same in coroutine, thread and process jobs: each executor sets
the current `JobContext` before running the job's code. Outside a job they do
nothing (``progress`` just iterates), so the same code runs in a plain cell.
"""

from __future__ import annotations

import contextvars
import copyreg
import importlib
import io
import logging
import sys
import threading
import types
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sized, TextIO, TypeVar, cast

from . import _tqdm
from ._clock import SYSTEM_CLOCK, Clock
from ._displays import Displays
from ._gil import RESPONSIVE
from ._hooks import HOOKS
from ._states import JobCancelled
from ._text import clean

if TYPE_CHECKING:  # pragma: no cover
    from ._job import Job

T = TypeVar("T")

OUTPUT_LIMIT = 64_000  # characters of captured output kept per job (the tail)
_OUTPUT_LOCK = threading.Lock()


class Output:
    """A bounded text buffer keeping the tail; appends are cheap."""

    __slots__ = ("_chunks", "_size", "_limit", "_dropped", "version", "_lock", "_text_cache")

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
        text = clean(text)  # a lone surrogate would break every reader downstream
        if len(text) > self._limit:  # one huge write: keep its tail, not a single oversized chunk
            self._dropped += len(text) - self._limit
            text = text[-self._limit:]
        with self._lock:
            self._chunks.append(text)
            self._size += len(text)
            if self._size > self._limit + self._limit // 4:  # trimmed now and then, not per write
                self._trim()
            self.version += 1

    def _trim(self) -> None:
        # Down to the limit: whole chunks first, then the head of the oldest
        # kept one (so a huge write followed by "\n" keeps its tail).
        while self._size > self._limit:
            excess = self._size - self._limit
            first = self._chunks[0]
            if len(first) <= excess:
                self._chunks.popleft()
                self._size -= len(first)
                self._dropped += len(first)
            else:
                self._chunks[0] = first[excess:]
                self._size -= excess
                self._dropped += excess

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
    notifier thread reads these fields at most ten times a second. The
    output buffer is made on the first write.
    """

    __slots__ = ("done", "total", "message", "metrics", "_output", "_cancel_reason", "attention", "stop", "job_id",
                 "job", "bars", "_displays")

    def __init__(self, job_id: int = 0, job: "Job | None" = None) -> None:
        self.job_id = job_id
        self.job = job  # None in worker processes
        self.done: float = 0
        self.total: float | None = None
        self.message: str = ""
        self.metrics: dict[str, list[tuple[float, float]]] = {}
        self._output: Output | None = None
        # `attention`: the one flag job code's hot paths test; set when a cancel is asked
        # for and (for thread jobs) while the kernel handles a request (see _gil)
        self.attention = False
        self._cancel_reason: str | None = None
        self.stop = False  # "stop and keep": finish at the next step boundary
        self.bars: list[_tqdm.JobBar] | None = None  # the job's open tqdm bars, outermost first (see _tqdm)
        self._displays: Displays | None = None

    @property
    def cancel_reason(self) -> str | None:
        """Why the job was asked to cancel; None while it was not."""
        return self._cancel_reason

    @cancel_reason.setter
    def cancel_reason(self, reason: str | None) -> None:
        self._cancel_reason = reason
        if reason is not None:
            self.attention = True  # (after the reason: whoever sees the flag finds the reason)

    @property
    def output(self) -> Output:
        out = self._output
        if out is None:
            with _OUTPUT_LOCK:
                out = self._output
                if out is None:
                    out = self._output = Output()
        return out

    @output.setter
    def output(self, value: Output) -> None:
        self._output = value

    @property
    def clock(self) -> Clock:
        """The clock of the job's scheduler (in a worker process: its own)."""
        return self.job._control.clock if self.job is not None else SYSTEM_CLOCK

    @property
    def displays(self) -> Displays:
        """The job's rich outputs (made on the first one)."""
        shown = self._displays
        if shown is None:
            with _OUTPUT_LOCK:
                shown = self._displays
                if shown is None:
                    shown = self._displays = Displays()
        return shown

    def display_version(self) -> int:
        return self._displays.version if self._displays is not None else 0

    def display_items(self) -> tuple[dict[str, Any], ...]:
        return self._displays.items if self._displays is not None else ()

    def output_text(self) -> str:
        return self._output.text() if self._output is not None else ""

    def output_version(self) -> int:
        return self._output.version if self._output is not None else 0


_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar(
    "notebook_ext_job", default=None
)


def current_context() -> JobContext | None:
    """The `JobContext` of the job running this code, or None."""
    return _current.get()


def current_job() -> Any:
    """The `Job` running this code (None outside a job and in worker processes).

    Lets a coroutine job fan out children: ``submit(..., parent=current_job())``.
    """
    ctx = _current.get()
    return ctx.job if ctx is not None else None


def _raise_if_cancelled(ctx: JobContext) -> None:
    if ctx.cancel_reason is not None:
        raise JobCancelled(ctx.cancel_reason)


def checkpoint() -> None:
    """Raise `JobCancelled` here if the running job was asked to cancel.

    Thread jobs cannot be interrupted from outside; call this (or `progress`
    / `report`) at safe points so Cancel takes effect there.

    Examples
    --------
    >>> for chunk in chunks:                      # doctest: +SKIP
    ...     checkpoint()
    ...     handle(chunk)
    """
    ctx = _current.get()
    if ctx is not None and ctx.attention:
        _attend(ctx)


def _attend(ctx: JobContext) -> None:
    """The job's attention flag is up: raise if it was asked to cancel; else
    the kernel handles a request, and a job thread gives way to it."""
    if ctx.cancel_reason is None:
        RESPONSIVE.give_way(ctx)
    reason = ctx.cancel_reason
    if reason is not None:
        raise JobCancelled(reason)


def stop_requested() -> bool:
    """True when the user asked the running job to "stop and keep"."""
    ctx = _current.get()
    return bool(ctx is not None and ctx.stop)


def report(
    done: float | None = None,
    total: float | None = None,
    message: str | None = None,
    **metrics: float,
) -> None:
    """Report progress and metrics of the running job.

    Cheap enough for tight loops: it only stores the values; the scheduler
    reads them at most ten times a second. Also a cancellation point.

    Parameters
    ----------
    done, total : number, optional
        Steps done and steps in all.
    message : str, optional
        A short status line shown on the card.
    **metrics : float
        Named values, recorded as a series (step = ``done``, else a count).

    Examples
    --------
    >>> for epoch in range(10):                   # doctest: +SKIP
    ...     loss = train_one_epoch()
    ...     report(epoch + 1, 10, loss=loss)
    """
    ctx = _current.get()
    if ctx is None:
        return
    if ctx.attention:  # a cancel asked for, or the kernel busy
        _attend(ctx)
    if total is not None:
        ctx.total = total
    if done is not None:
        ctx.done = done
    if message is not None:
        ctx.message = clean(str(message))
    if metrics:
        for key, value in metrics.items():
            series = ctx.metrics.get(key)
            if series is None:
                series = ctx.metrics[key] = []
            step = done if done is not None else len(series) + 1
            series.append((step, float(value)))


def progress(
    iterable: Iterable[T], total: float | None = None, message: str | None = None
) -> Iterator[T]:
    """Iterate and report one step per item; a cancellation point per item.

    Examples
    --------
    >>> for x in progress(range(100)):            # doctest: +SKIP
    ...     work(x)
    """
    ctx = _current.get()
    if ctx is None:
        yield from iterable
        return
    if total is None:
        try:
            total = len(cast(Sized, iterable))
        except TypeError:
            total = None
    ctx.total = total
    ctx.done = n = 0
    if message is not None:
        ctx.message = clean(str(message))
    for item in iterable:
        if ctx.attention:  # a cancel asked for, or the kernel busy
            _attend(ctx)
        yield item
        n += 1
        ctx.done = n


# -- output capture ---------------------------------------------------------


class JobOutputRouter(io.TextIOBase):
    """Stands in for ``sys.stdout`` / ``sys.stderr``: text written by job code
    goes to that job's buffer, everything else to the stream it stands for
    (`original`), whose ``isatty``, ``encoding``, ``fileno`` … it mirrors.

    Background prints otherwise land in whichever notebook cell runs now.
    """

    def __init__(self, original: TextIO) -> None:
        self._original = original

    @property
    def original(self) -> TextIO:
        return self._original

    def write(self, text: str) -> int:
        ctx = _current.get()
        if ctx is None:
            return self._original.write(text)
        ctx.output.write(text)
        return len(text)

    def writelines(self, lines: Iterable[Any]) -> None:  # Any: io.IOBase's stub says buffers; str comes here
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if _current.get() is None:
            self._original.flush()

    # -- the stream it stands for ----------------------------------------------
    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._original.isatty()

    def fileno(self) -> int:
        return self._original.fileno()

    def readable(self) -> bool:
        return self._original.readable()

    def seekable(self) -> bool:
        return self._original.seekable()

    @property
    def closed(self) -> bool:
        return self._original.closed

    def close(self) -> None:
        """Does not close the stream it stands for (a router dropped by the
        garbage collector calls this too)."""

    # io.TextIOBase declares these three as plain attributes, and setting one
    # works (`__setattr__` sets it on the stream): the setters below exist for
    # the type checker only.
    @property
    def encoding(self) -> str:
        return getattr(self._original, "encoding", "utf-8")

    if TYPE_CHECKING:
        @encoding.setter
        def encoding(self, value: str) -> None: ...

    @property
    def errors(self) -> str | None:
        return getattr(self._original, "errors", None)

    if TYPE_CHECKING:
        @errors.setter
        def errors(self, value: str | None) -> None: ...

    @property
    def newlines(self) -> Any:
        return getattr(self._original, "newlines", None)

    if TYPE_CHECKING:
        @newlines.setter
        def newlines(self, value: Any) -> None: ...

    def __getattr__(self, name: str) -> Any:
        # Kernel streams carry extra API (e.g. ipykernel's OutStream), a StringIO its getvalue.
        return getattr(self._original, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # What the router mirrors (`sys.stderr.encoding = None`, as tqdm's own tests
        # do) is set on the stream; anything else on the router itself: IPython 9
        # wraps `sys.stdout.write` with its own (`_tee`), around our routing.
        if isinstance(getattr(type(self), name, None), property):
            setattr(self._original, name, value)
        elif name == "write":
            if getattr(value, "__self__", None) is self and getattr(value, "__func__", None) is JobOutputRouter.write:
                self.__dict__.pop("write", None)  # our own write put back
            else:
                object.__setattr__(self, name, _foreground_only(self, value))
        else:
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return f"<notebook_ext router for {self._original!r}>"


def _foreground_only(router: JobOutputRouter, theirs: Callable[..., Any]) -> Callable[..., Any]:
    """A write someone set around the router's (IPython 9 tees the foreground's
    output into the running cell's history) serves the foreground only: a
    job's text goes straight to the job, never into a cell's history."""
    ours = JobOutputRouter.write.__get__(router)

    def write(text: str, *args: Any, **kwargs: Any) -> Any:
        if _current.get() is not None:
            return ours(text)
        return theirs(text, *args, **kwargs)

    return write


class _RoutedSys(types.ModuleType):
    """``sys``'s class while notebook_ext is loaded (a documented way to give
    a module a ``__setattr__``): a stream set on ``sys.stdout`` or
    ``sys.stderr`` later (``%%capture``, ``redirect_stdout``, pytest) is
    wrapped as it is set, so a running job's prints stay the job's and the
    foreground's go where the foreground sent them."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _STREAMS and value is not None and not isinstance(value, JobOutputRouter):
            value = JobOutputRouter(value)
        super().__setattr__(name, value)


# Code that reads a type's name (IPython's `%whos`, pretty printers) still sees a module.
_RoutedSys.__name__ = _RoutedSys.__qualname__ = "module"
_STREAMS = ("stdout", "stderr")


def _reduce_routed_sys(module: types.ModuleType) -> tuple[Callable[[str], Any], tuple[str]]:
    # A module pickles by name (as cloudpickle does for every module, whose
    # table is keyed by exact type): a function using `sys` still travels to
    # worker processes, where it gets their own `sys`.
    return importlib.import_module, (module.__name__,)


def install_output_capture() -> None:
    """Route ``sys.stdout``/``sys.stderr`` through `JobOutputRouter`, now and
    whenever they are replaced (idempotent; `HOOKS.undo` takes it back)."""
    if type(sys) is _RoutedSys:
        return
    with HOOKS.lock:
        if type(sys) is _RoutedSys:
            return
        HOOKS.on_undo("sys.stdout, sys.stderr (and what is set there later)", _unroute_streams)
        copyreg.pickle(_RoutedSys, _reduce_routed_sys)
        sys.__class__ = _RoutedSys
        for name in _STREAMS:
            stream = getattr(sys, name)
            if stream is None or isinstance(stream, JobOutputRouter):
                continue
            setattr(sys, name, stream)  # wrapped by _RoutedSys
            # Logging handlers made earlier hold the raw stream: point them at
            # the router too, so a job's log lines land on its own card.
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is stream:
                    handler.setStream(getattr(sys, name))


def _unroute_streams() -> None:
    sys.__class__ = types.ModuleType
    copyreg.dispatch_table.pop(_RoutedSys, None)
    for name in _STREAMS:
        stream = getattr(sys, name)
        if isinstance(stream, JobOutputRouter):
            setattr(sys, name, stream.original)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and isinstance(handler.stream, JobOutputRouter):
            handler.setStream(handler.stream.original)


_thread_start = threading.Thread.start
_pool_submit: Any = None


def _start_in_job(thread: threading.Thread) -> None:
    # A thread started by job code belongs to that job: its prints, progress
    # and checkpoints go there (Python copies no context into new threads).
    ctx = _current.get()
    if ctx is not None and not thread.name.startswith("notebook_ext-") and not _in_pool_submit():
        run = thread.run

        def run_in_job() -> None:
            token = _current.set(ctx)
            try:
                run()
            finally:
                _current.reset(token)

        setattr(thread, "run", run_in_job)  # an instance attribute over the method
    _thread_start(thread)


_pool_submitting = threading.local()  # set while a job's submit runs the pool's own (which may start a worker)


def _in_pool_submit() -> bool:
    # A thread a pool starts in its submit is its worker: it serves whoever
    # submits later, so each task carries its caller's job (see
    # `_submit_in_caller_job`) and the thread itself none.
    return getattr(_pool_submitting, "active", False)


def _submit_in_caller_job(pool: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    # Pool threads outlive the job that started them: each task runs in the
    # job of whoever submitted it (or in none).
    ctx = _current.get()
    if ctx is None:  # not called from a job: exactly what the pool does by itself
        return _pool_submit(pool, fn, *args, **kwargs)

    def in_job() -> Any:
        token = _current.set(ctx)
        try:
            return fn(*args, **kwargs)
        finally:
            _current.reset(token)

    _pool_submitting.active = True
    try:
        return _pool_submit(pool, in_job)
    finally:
        _pool_submitting.active = False


def follow_jobs_into_threads() -> None:
    """Make threads and thread-pool tasks started by job code run in that
    job (idempotent; `job_context` calls it; `HOOKS.undo` takes it back)."""
    global _pool_submit
    if threading.Thread.start is _start_in_job:
        return
    with HOOKS.lock:
        if threading.Thread.start is _start_in_job:
            return
        from concurrent.futures import ThreadPoolExecutor

        _pool_submit = vars(ThreadPoolExecutor)["submit"]
        HOOKS.replace(ThreadPoolExecutor, "submit", _submit_in_caller_job, "ThreadPoolExecutor.submit")
        HOOKS.replace(threading.Thread, "start", _start_in_job, "threading.Thread.start")
        _tqdm.install(current_context)  # tqdm bars made in a job drive its progress


class job_context:
    """Make ``ctx`` the current job in this thread (or task) for the block:
    `report`, `progress`, `checkpoint` and ``print`` go to that job.

    Every executor runs job code inside this, in threads, on the loop and in
    worker processes alike. (A class rather than a generator: it is entered
    once per job, and a generator-based context manager costs several times
    as much.)

    Examples
    --------
    >>> with job_context(JobContext()):          # doctest: +SKIP
    ...     report(1, 10)
    """

    __slots__ = ("_ctx", "_token")

    def __init__(self, ctx: JobContext) -> None:
        self._ctx = ctx
        self._token: contextvars.Token[JobContext | None] | None = None

    def __enter__(self) -> JobContext:
        install_output_capture()
        follow_jobs_into_threads()
        self._token = _current.set(self._ctx)
        return self._ctx

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
