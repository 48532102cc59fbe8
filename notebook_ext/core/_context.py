"""What job code calls: `progress`, `report`, `checkpoint`, `stop_requested`,
and the per-job capture of ``print`` output.

These work the same in coroutine, thread and process jobs: each executor sets
the current `JobContext` before running the job's code. Outside a job they do
nothing (``progress`` just iterates), so the same code runs in a plain cell.
"""

from __future__ import annotations

import contextvars
import io
import logging
import sys
import threading
from typing import Any, Iterable, Iterator, TextIO, TypeVar

from ._job import JobCancelled, JobContext

T = TypeVar("T")

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
    if ctx is not None and ctx.cancel_reason is not None:
        raise JobCancelled(ctx.cancel_reason)


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
    if ctx.cancel_reason is not None:
        raise JobCancelled(ctx.cancel_reason)
    if total is not None:
        ctx.total = total
    if done is not None:
        ctx.done = done
    if message is not None:
        ctx.message = str(message)
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
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    ctx.total = total
    ctx.done = n = 0
    if message is not None:
        ctx.message = message
    for item in iterable:
        if ctx.cancel_reason is not None:
            raise JobCancelled(ctx.cancel_reason)
        yield item
        n += 1
        ctx.done = n


# -- output capture ---------------------------------------------------------


class JobOutputRouter(io.TextIOBase):
    """Stands in for ``sys.stdout`` / ``sys.stderr``: text written by job code
    goes to that job's buffer, everything else to the original stream.

    Background prints otherwise land in whichever notebook cell runs now.
    """

    def __init__(self, original: TextIO) -> None:
        self._original = original

    @property
    def original(self) -> TextIO:
        return self._original

    def write(self, text: str) -> int:  # type: ignore[override]
        ctx = _current.get()
        if ctx is None:
            return self._original.write(text)
        ctx.output.write(text)
        return len(text)

    def flush(self) -> None:
        if _current.get() is None:
            self._original.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._original, "encoding", "utf-8")

    def fileno(self) -> int:
        return self._original.fileno()

    def __getattr__(self, name: str) -> Any:
        # Kernel streams carry extra API (e.g. ipykernel's OutStream).
        return getattr(self._original, name)


_install_lock = threading.Lock()


def install_output_capture() -> None:
    """Route ``sys.stdout``/``sys.stderr`` through `JobOutputRouter` (idempotent).

    Re-wraps if something (a kernel, pytest) replaced the streams since.
    """
    with _install_lock:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is None or isinstance(stream, JobOutputRouter):
                continue
            router = JobOutputRouter(stream)
            setattr(sys, name, router)
            # Logging handlers made earlier hold the raw stream: point them at
            # the router too, so a job's log lines land on its own card.
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is stream:
                    handler.setStream(router)  # type: ignore[arg-type]


def run_in_context(ctx: JobContext, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` with ``ctx`` as the current job (in this thread)."""
    install_output_capture()
    token = _current.set(ctx)
    try:
        return fn(*args, **kwargs)
    finally:
        _current.reset(token)
