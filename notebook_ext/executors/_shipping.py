"""Shipping a job to another process and its progress back: one module for
the process and the Dask executors.

Parent side: `pack_call` pickles the call at submit time (an unsendable call
is refused there, not in a worker), `apply_delta` folds progress into the
job's context, `unpack_outcome` gives the value or raises the job's error
with the worker's own traceback.

Worker side: `run_shipped` runs the call inside `job_context`; a sender
thread ships what changed (progress, metrics, output) at most ten times a
second through the ``send`` the executor gives it, and polls the executor's
control flags (cancel, stop and keep).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from concurrent.futures import Future, InvalidStateError
from typing import TYPE_CHECKING, Any, Callable, Sequence, cast

from ..core.lowlevel import (ITEM_BACKOFF, SYSTEM_CLOCK, JobContext, Output, describe_error, format_traceback,
                             job_context)

if TYPE_CHECKING:  # pragma: no cover
    from ..core import Job

SHIP_INTERVAL = 0.1  # seconds between updates from a worker


def pack_call(job: "Job", where: str) -> bytes:
    """The job's call as cloudpickle bytes; `TypeError` naming what cannot go."""
    import cloudpickle

    try:
        return cast(bytes, cloudpickle.dumps((job.fn, job.args, job.kwargs)))
    except Exception as exc:
        raise TypeError(
            f"cannot send {getattr(job.fn, '__name__', job.fn)!r} or its arguments to {where} "
            f"({type(exc).__name__}: {exc}); use executor='thread'"
        ) from None


def apply_delta(ctx: JobContext, delta: Sequence[Any]) -> None:
    """Fold one update from a worker into the job's context."""
    done, total, message, metrics, out = delta
    ctx.done, ctx.total, ctx.message = done, total, message
    for key, points in metrics.items():
        ctx.metrics.setdefault(key, []).extend(points)
    if out is not None:
        ctx.output.write(out)


class ProgressRouter:
    """Parent side: updates from workers go to the context of their job
    while it runs (late updates of a finished job are dropped).

    Where a worker's result comes home on another channel than its updates
    (Dask: the result, and events for the updates) it may overtake them, so
    such a worker says ("end", job_id) after its last update and `drained`
    waits for that before the job ends (``track(job, end=True)``): what a
    job printed just before it returned is in its output when it is done."""

    END_WAIT = 30.0  # seconds at most: an "end" that never comes must not hold the job

    def __init__(self) -> None:
        self._contexts: dict[int, JobContext] = {}
        self._ends: dict[int, Future[None]] = {}
        self._lock = threading.Lock()

    def track(self, job: "Job", *, end: bool = False) -> None:
        with self._lock:
            self._contexts[job.id] = job.ctx
            if end:
                self._ends[job.id] = Future()

    def forget(self, job: "Job") -> None:
        with self._lock:
            self._contexts.pop(job.id, None)
            self._ends.pop(job.id, None)

    def deliver(self, msg: Sequence[Any]) -> None:
        """Apply a ("progress", job_id, …) or an ("end", job_id) message."""
        if msg[0] == "end":
            self.ended(msg[1])
            return
        ctx = self._contexts.get(msg[1])
        if ctx is not None:
            apply_delta(ctx, msg[2:])

    def ended(self, job_id: int) -> None:
        """Nothing more comes for ``job_id`` (its "end", or its channel is gone)."""
        with self._lock:
            end = self._ends.get(job_id)
        if end is not None and not end.done():
            try:
                end.set_result(None)
            except InvalidStateError:  # set by another thread meanwhile
                pass

    async def drained(self, job: "Job") -> bool:
        """Wait (without blocking the loop) until the updates ``job``'s worker
        sent before its result are applied, or `END_WAIT` passed; whether
        they were."""
        with self._lock:
            end = self._ends.get(job.id)
        if end is None:
            return False
        await asyncio.wait([asyncio.wrap_future(end)], timeout=self.END_WAIT)
        return end.done()


def unpack_outcome(ctx: JobContext, outcome: tuple[Any, ...]) -> Any:
    """The value a worker sent back, or raise the error it sent."""
    import cloudpickle

    if outcome[-1] is not None:
        apply_delta(ctx, outcome[-1][1:])
    if outcome[0] == "ok":
        return cloudpickle.loads(outcome[1])
    _, blob, line, tb = outcome[:4]
    exc: BaseException
    try:
        exc = cloudpickle.loads(blob) if blob is not None else RuntimeError(line)
    except BaseException:  # noqa: BLE001 - even a KeyboardInterrupt from its unpickling: the line stands
        exc = RuntimeError(line)
    if not isinstance(exc, BaseException):
        exc = RuntimeError(line)
    setattr(exc, "__notebook_ext_traceback__", tb)
    raise exc


# -- worker side --------------------------------------------------------------


class ShippedOutput(Output):
    """Worker-side output buffer that also remembers what is not sent yet."""

    __slots__ = ("_unsent",)

    def __init__(self) -> None:
        super().__init__()
        self._unsent: list[str] = []

    def write(self, text: str) -> None:
        super().write(text)
        with self._lock:
            self._unsent.append(text)

    def take(self) -> str | None:
        with self._lock:
            if not self._unsent:
                return None
            text, self._unsent = "".join(self._unsent), []
            return text


class Shipper:
    """Worker-side: what changed in the job's context since the last call."""

    def __init__(self, ctx: JobContext, job_id: int) -> None:
        self.ctx, self.job_id = ctx, job_id
        self.sent_metrics: dict[str, int] = {}
        self.last: tuple[float, float | None, str] | tuple[()] = ()
        self.finished = threading.Event()

    def delta(self) -> (tuple[int, float, float | None, str, dict[str, list[tuple[float, float]]], str | None]
                        | None):
        ctx = self.ctx
        metrics: dict[str, list[tuple[float, float]]] = {}
        for key, series in list(ctx.metrics.items()):
            n = self.sent_metrics.get(key, 0)
            if len(series) > n:
                metrics[key] = series[n:]
                self.sent_metrics[key] = n + len(metrics[key])
        out = cast(ShippedOutput, ctx.output).take()  # (`run_shipped` made it so)
        head = (ctx.done, ctx.total, ctx.message)
        if head == self.last and not metrics and out is None:
            return None
        self.last = head
        return (self.job_id, ctx.done, ctx.total, ctx.message, metrics, out)


def run_shipped(job_id: int, payload: bytes, send: Callable[[tuple[Any, ...]], None],
                poll: Callable[[JobContext], None] | None = None) -> tuple[Any, ...]:
    """Run a packed call in this (worker) process; returns the outcome tuple
    `unpack_outcome` reads. ``send(msg)`` carries ("progress", …) updates
    home; ``poll(ctx)`` may set ``ctx.cancel_reason`` / ``ctx.stop``."""
    import cloudpickle

    ctx = JobContext(job_id)
    ctx.output = ShippedOutput()
    shipper = Shipper(ctx, job_id)

    def ship() -> None:
        while not shipper.finished.wait(SHIP_INTERVAL):
            try:
                if poll is not None:
                    poll(ctx)
                delta = shipper.delta()
                if delta is not None:
                    send(("progress",) + delta)
            except Exception:  # noqa: BLE001 - a lost update must not stop the job
                pass

    sender = threading.Thread(target=ship, name="notebook_ext-shipper", daemon=True)
    sender.start()
    try:
        with job_context(ctx):
            fn, args, kwargs = cloudpickle.loads(payload)
            value = fn(*args, **kwargs)
        outcome: tuple[Any, ...] = ("ok", cloudpickle.dumps(value))
    except BaseException as exc:  # noqa: BLE001 - shipped to the parent
        tb = format_traceback(exc)  # (short, full), formatted here where the cell's lines are
        try:
            blob = cloudpickle.dumps(exc)
        except BaseException:  # noqa: BLE001 - an error that cannot travel goes as its line
            blob = None
        outcome = ("error", blob, describe_error(exc), tb)
    finally:
        try:
            sys.stdout.flush()
        except Exception:  # noqa: BLE001
            pass
        shipper.finished.set()
        sender.join()
    return outcome + (shipper.delta(),)



# -- work items in chunks -------------------------------------------------------


def pack_function(func: Any, where: str) -> bytes:
    """A work-item function as cloudpickle bytes; `TypeError` naming what cannot go."""
    import cloudpickle

    try:
        return cast(bytes, cloudpickle.dumps(func))
    except Exception as exc:
        raise TypeError(f"cannot send {getattr(func, '__name__', func)!r} to {where} "
                        f"({type(exc).__name__}: {exc}); use executor='thread'") from None


_functions: dict[str, Any] = {}  # worker side: each function unpacked once per worker, not per chunk


def _function(payload: tuple[str, Any]) -> Any:
    """``payload`` is ``(key, bytes or the path of a file holding them)``:
    a big function (a closure over X and y) travels to each worker once."""
    import cloudpickle

    key, source = payload
    func = _functions.get(key)
    if func is None:
        if isinstance(source, str):
            with open(source, "rb") as f:
                source = f.read()
        if len(_functions) > 8:
            _functions.clear()
        func = _functions[key] = cloudpickle.loads(source)
    return func


def run_chunk(payload: tuple[str, Any], items: bytes, retries: int) -> bytes:
    """Worker side: ``func(item)`` for each item of a chunk, each failure
    kept apart (``(False, ("Type: message", traceback))``) so the others go
    on. Returns cloudpickle bytes of ``(outcomes, printed text)``, each good
    result pickled on its own: one that cannot travel, or cannot be read
    back home, fails alone (`unpack_chunk`)."""
    import contextlib
    import io

    import cloudpickle

    func = _function(payload)
    outcomes: list[tuple[bool, Any]] = []
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        for item in cloudpickle.loads(items):
            for attempt in range(retries + 1):
                try:
                    value = func(item)
                except BaseException as exc:  # noqa: BLE001 - one item's failure, shipped home
                    if attempt < retries:
                        SYSTEM_CLOCK.sleep(ITEM_BACKOFF.delay(attempt + 1))  # as items in threads wait
                        continue
                    outcomes.append((False, (describe_error(exc), format_traceback(exc)[0])))
                    break
                try:
                    outcomes.append((True, cloudpickle.dumps(value)))
                except BaseException as exc:  # noqa: BLE001 - even a SystemExit from its __reduce__:
                    # it must not end the worker; this result fails alone
                    outcomes.append((False, (f"cannot send the result back ({describe_error(exc)})", "")))
                break
    return cast(bytes, cloudpickle.dumps((outcomes, printed.getvalue())))


def unpack_chunk(blob: bytes) -> tuple[list[tuple[bool, Any]], str]:
    """Parent side of `run_chunk`: ``(ok, value or (error line, traceback))``
    per item, and what the chunk printed. A result whose unpickling raises
    (anything, a KeyboardInterrupt too) is that item's failure."""
    import cloudpickle

    packed, printed = cloudpickle.loads(blob)
    outcomes: list[tuple[bool, Any]] = []
    for ok, value in packed:
        if ok:
            try:
                value = cloudpickle.loads(value)
            except BaseException as exc:  # noqa: BLE001 - this item's failure, never the loop's end
                ok, value = False, (f"cannot read the result back ({describe_error(exc)})", "")
        outcomes.append((ok, value))
    return outcomes, printed
