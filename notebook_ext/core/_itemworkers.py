"""The producing half of a run of work items: the feeder that reads the
source and the three kinds of stage workers (threads, coroutines, chunks
sent to processes or Dask). `ItemMap` in `_items.py` starts them and
consumes what they produce."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Sequence, cast

from ._channel import _EMPTY, Channel, Closed
from ._clock import Clock
from ._context import JobContext, job_context
from ._executor import ItemExecutor
from ._gil import RESPONSIVE
from ._job import describe_error
from ._loopthread import LoopThread
from ._pace import ITEM_BACKOFF, pause
from ._pipeline import FailedItem, Pipeline, Stage, StageStats
from ._states import JobCancelled, WorkerDied
from ._text import safe_repr, shorten
from ._tracebacks import format_traceback

if TYPE_CHECKING:  # pragma: no cover
    from ._scheduler import Scheduler



def item_label(item: Any, limit: int = 80) -> str:
    """How a card names an item: a path as the path (its end kept when
    long: the file's name), anything else by its short repr."""
    if isinstance(item, os.PathLike):
        text = os.fsdecode(os.fspath(item))
        return text if len(text) <= limit else "…" + text[-(limit - 1):]
    return safe_repr(item, limit)


class _Failure:
    __slots__ = ("record", "item", "stage")

    def __init__(self, record: FailedItem, item: Any, stage: int) -> None:
        self.record, self.item, self.stage = record, item, stage


class _Tally:
    """One worker's counts: written by that worker only, summed by readers."""

    __slots__ = ("started", "finished", "failed")

    def __init__(self) -> None:
        self.started = self.finished = self.failed = 0


class _StageRun:
    def __init__(self, spec: Stage, inbox: Channel, outbox: Channel, position: int, clock: Clock) -> None:
        self.spec, self.inbox, self.outbox, self.position = spec, inbox, outbox, position
        self.clock = clock
        self.tallies: list[_Tally] = []
        self.live = 0
        self.lock = threading.Lock()
        self.started_at = clock.monotonic()
        self.active = 0  # items between their start and their end, now (thread workers: under ``lock``)
        self.peak = 0  # the most at once, measured at each start
        self.runner: Any = None
        self.payload: asyncio.Task[Any] | None = None  # where the workers find the packed function
        self.chunk = 1
        self.suspects = asyncio.Lock()  # items re-run after a worker died: one at a time

    def stats(self) -> StageStats:
        started = sum(t.started for t in self.tallies)
        finished = sum(t.finished for t in self.tallies)
        failed = sum(t.failed for t in self.tallies)
        in_flight = max(0, started - finished)
        self.peak = max(self.peak, in_flight)  # the two counts are read apart: never below what they say
        elapsed = max(self.clock.monotonic() - self.started_at, 1e-9)
        return StageStats(self.spec.name, self.spec.executor, self.spec.workers, finished - failed, failed,
                          in_flight, len(self.inbox), self.inbox.maxsize, finished / elapsed, self.peak)


class StageWorkers:
    """The producing half of an `ItemMap`: the feeder, each stage's workers
    (threads, coroutines on the loop, or chunks on an executor's own workers,
    as the stage's executor says by its ``item_place``), the channels between
    them and what went wrong. The map starts them, takes the results from
    `out` and stops them; nothing else reaches in."""

    def __init__(self, pipe: Pipeline, scheduler: "Scheduler", ctx: JobContext | None,
                 names: "Sequence[str] | None") -> None:
        self.pipe = pipe
        self.sched = scheduler
        self.ctx = ctx
        self.lt: LoopThread = scheduler.loop_thread
        self.stages: list[_StageRun] = []
        self.tickets: Channel  # one per item in flight: the back-pressure bound (made by `start`)
        self.out: Channel  # the last stage's results (made by `start`)
        self.tasks: list[asyncio.Task[Any]] = []
        self.threads_live = 0
        self.threads_gone: asyncio.Event | None = None
        self.fed = 0  # items the feeder put in
        self.error: BaseException | None = None  # what ended the run (a source or a task that raised)
        self.stopped = False  # "stop and keep" ended the feeding before the source did
        # what the user passed for each item inside a pipeline of several
        # stages (a later stage's failure is named by it, not by its input)
        self.sources: dict[int, Any] | None = {} if len(pipe.stages) > 1 else None
        #: how the items are named on the card, by position, when the source is
        #: not what the user passed (a retry re-runs what a stage was given)
        self.names = names

    def start(self, loop: asyncio.AbstractEventLoop, total: int | None,
              publisher: "Callable[[], Awaitable[None]] | None" = None) -> None:
        """Build the channels and start the feeder, the workers and the
        ``publisher`` (on the loop, in the job's context)."""
        ident = threading.get_ident()
        pipe = self.pipe
        self.threads_gone = asyncio.Event()
        self.tickets = Channel(pipe.max_pending, loop, ident)
        chans = [Channel(s.queue, loop, ident) for s in pipe.stages] + [Channel(pipe.max_pending, loop, ident)]
        self.out = chans[-1]
        self.stages = [_StageRun(s, chans[i], chans[i + 1], i, self.sched.clock) for i, s in enumerate(pipe.stages)]
        with job_context(self.ctx) if self.ctx is not None else contextlib.nullcontext():
            # tasks made here copy the job's context: items print and check cancel there
            if hasattr(pipe.source, "__aiter__"):
                self.tasks.append(loop.create_task(self.fenced(self._feed, chans[0]), name="notebook_ext-items-feed"))
            else:  # a plain iterable may block (a generator reading files): never on the loop
                self.threads_live += 1
                threading.Thread(target=self._feed_sync, args=(chans[0],), daemon=True,
                                 name="notebook_ext-items-feed").start()
            for run in self.stages:
                self._start_stage(run, loop, total)
            if publisher is not None:
                self.tasks.append(loop.create_task(self.fenced(publisher), name="notebook_ext-items-publish"))

    def _start_stage(self, run: _StageRun, loop: asyncio.AbstractEventLoop, total: int | None) -> None:
        spec = run.spec
        executor = self.sched.executor(spec.executor)
        if executor.item_place == "threads":
            n = spec.workers if total is None else max(1, min(spec.workers, total))
            run.live = n
            self.threads_live += n
            for i in range(n):
                tally = _Tally()
                run.tallies.append(tally)
                threading.Thread(target=self._thread_worker, args=(run, tally), daemon=True,
                                 name=f"notebook_ext-items-{spec.name}-{i}").start()
        elif executor.item_place == "loop":
            run.live = spec.workers
            for _ in range(spec.workers):
                tally = _Tally()
                run.tallies.append(tally)
                self.tasks.append(loop.create_task(self.fenced(self._async_worker, run, tally)))
        else:
            if not isinstance(executor, ItemExecutor):
                raise TypeError(f"the {executor.name!r} executor runs items on workers of its own "
                                "but has no item_runner")
            run.runner = executor.item_runner(spec.cpu)
            # a file write or a Dask scatter of the packed function: in a thread, not on the loop
            run.payload = loop.create_task(asyncio.to_thread(run.runner.store, spec.shipment))
            self.tasks.append(run.payload)
            # Two chunks per worker: the next one waits at the worker while the
            # current one runs, so no worker idles for a round trip between chunks.
            n = max(1, min(spec.workers, 2 * run.runner.slots))
            run.live = n
            for _ in range(n):
                tally = _Tally()
                run.tallies.append(tally)
                self.tasks.append(loop.create_task(self.fenced(self._chunk_worker, run, tally)))

    def abort(self) -> None:
        """Close every channel at once: each worker and the feeder stop at their next step."""
        for run in self.stages:
            run.inbox.abort()
        if self.stages:
            self.out.abort()
            self.tickets.abort()

    async def stop(self, finished: bool) -> int:
        """Stop everything still running (``finished``: every item is out)
        and wait for it; returns the item threads still busy after ~1 s
        (they cannot be killed: each ends with its current item)."""
        if not finished:
            self.abort()
            for run in self.stages:
                if run.runner is not None:
                    run.runner.kill()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        abandoned = 0
        if self.threads_live > 0 and self.threads_gone is not None:
            try:  # a thread finishes its current item; then it sees the abort
                await asyncio.wait_for(self.threads_gone.wait(), 1.0)
            except asyncio.TimeoutError:
                abandoned = self.threads_live
        for run in self.stages:
            if run.runner is not None:
                run.runner.close()
        return abandoned

    def _feed_sync(self, first: Channel) -> None:
        ctx = self.ctx
        index = 0
        try:
            with job_context(ctx) if ctx is not None else contextlib.nullcontext():
                for item in self.pipe.source:
                    if ctx is not None and (ctx.stop or ctx.cancel_reason is not None):
                        self.stopped = True
                        break
                    self.tickets.put_sync(None)
                    if self.sources is not None:
                        self.sources[index] = item
                    first.put_sync((index, item))
                    index += 1
                    self.fed = index
        except Closed:
            pass
        except BaseException as exc:  # noqa: BLE001 - the source itself failed: the whole run does
            self.error = exc
            self.abort()
        finally:
            first.close()
            self.lt.call_soon(self._thread_gone)

    async def _feed(self, first: Channel) -> None:
        ctx = self.ctx
        source = self.pipe.source
        index = 0
        try:
            async for item in source:
                if ctx is not None and (ctx.stop or ctx.cancel_reason is not None):
                    self.stopped = True
                    break
                await self.tickets.put(None)
                if self.sources is not None:
                    self.sources[index] = item
                await first.put((index, item))
                index += 1
                self.fed = index
        except Closed:
            return
        finally:  # a source that raised fails the whole run: `fenced` records it
            first.close()

    async def fenced(self, work: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run one task of this run, ``work(*args)``. Whatever escapes it (a
        KeyboardInterrupt or SystemExit from user code would stop the loop
        itself) ends the run with that error instead. (The coroutine is made
        here: a task cancelled before its first step leaves none unawaited.)"""
        try:
            await work(*args)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - the run's error, never the loop's end
            if self.error is None:
                self.error = exc
            self.abort()

    def _retired(self, run: _StageRun, thread: bool = False) -> None:
        with run.lock:
            run.live -= 1
            last = run.live == 0
        if last:
            run.outbox.close()
        if thread:
            self.lt.call_soon(self._thread_gone)

    def _thread_gone(self) -> None:
        self.threads_live -= 1
        if self.threads_live <= 0 and self.threads_gone is not None:
            self.threads_gone.set()

    def _fail(self, run: _StageRun, index: int, item: Any, exc: BaseException) -> _Failure:
        if exc.__traceback__ is not None and exc.__traceback__.tb_next is not None:
            exc = exc.with_traceback(exc.__traceback__.tb_next)  # from the item's own frame on
        return self._failure(run, index, item, describe_error(exc), format_traceback(exc)[0])

    def _failure(self, run: _StageRun, index: int, item: Any, error: str, tb: str) -> _Failure:
        # named by what the user passed, not by what an earlier stage made of it
        names = self.names
        if names is not None and index < len(names) and names[index]:
            label = names[index]
        else:
            given = item if run.position == 0 or self.sources is None else self.sources.get(index, item)
            label = item_label(given)
        return _Failure(FailedItem(index, shorten(str(error), 300), label, tb, run.spec.name), item, run.position)

    def _cancelled(self) -> bool:
        ctx = self.ctx
        return ctx is not None and ctx.attention and ctx.cancel_reason is not None

    def _thread_worker(self, run: _StageRun, tally: _Tally) -> None:
        spec, inbox, outbox, lock = run.spec, run.inbox, run.outbox, run.lock
        func, retries = spec.func, spec.retries
        ctx = self.ctx  # None: a map the kernel's own cell runs (it never waits for the kernel)
        try:  # (RESPONSIVE: the kernel's thread gets the GIL back promptly while items run here)
            with RESPONSIVE.job(ctx), job_context(ctx) if ctx is not None else contextlib.nullcontext():
                while True:
                    index, item = inbox.get_sync()
                    if type(item) is not _Failure:
                        if ctx is not None and ctx.attention:  # a cancel asked for, or the kernel busy
                            if ctx.cancel_reason is not None:
                                return
                            RESPONSIVE.give_way(ctx)
                        tally.started += 1
                        with lock:
                            run.active += 1
                            if run.active > run.peak:
                                run.peak = run.active
                        for attempt in range(retries + 1):
                            try:
                                item = func(item)
                                break
                            except JobCancelled:
                                if self._cancelled():
                                    return
                                item = self._fail(run, index, item, JobCancelled("raised by the item"))
                            except BaseException as exc:  # noqa: BLE001 - an item's failure is recorded
                                if attempt < retries and not self._cancelled():
                                    run.clock.sleep(ITEM_BACKOFF.delay(attempt + 1))
                                    continue
                                item = self._fail(run, index, item, exc)
                        with lock:
                            run.active -= 1
                        if type(item) is _Failure:
                            tally.failed += 1
                        tally.finished += 1
                    outbox.put_sync((index, item))
        except Closed:
            pass
        finally:
            self._retired(run, thread=True)

    async def _async_worker(self, run: _StageRun, tally: _Tally) -> None:
        spec, inbox, outbox = run.spec, run.inbox, run.outbox
        func, retries = spec.func, spec.retries
        try:
            while True:
                index, item = await inbox.get()
                if type(item) is not _Failure:
                    tally.started += 1
                    run.active += 1  # on the loop's thread, as every async worker
                    if run.active > run.peak:
                        run.peak = run.active
                    for attempt in range(retries + 1):
                        try:
                            item = await func(item)
                            break
                        except asyncio.CancelledError as exc:
                            task = asyncio.current_task()
                            if task is not None and task.cancelling():
                                raise  # we are stopping this worker
                            item = self._fail(run, index, item, exc)  # raised inside the item: its failure
                            break
                        except BaseException as exc:  # noqa: BLE001 - an item's failure is recorded
                            if isinstance(exc, JobCancelled) and self._cancelled():
                                raise
                            if attempt < retries and not self._cancelled():
                                await pause(run.clock, ITEM_BACKOFF.delay(attempt + 1))
                                continue
                            item = self._fail(run, index, item, exc)
                    run.active -= 1
                    if type(item) is _Failure:
                        tally.failed += 1
                    tally.finished += 1
                await outbox.put((index, item))
        except (Closed, JobCancelled):
            pass
        finally:
            self._retired(run)

    async def _run_chunk(self, run: _StageRun, payload: Any, items: list[Any]) -> tuple[list[tuple[bool, Any]], str]:
        """(ok, value) per item, and what they printed. A worker's death breaks
        its whole pool, so every chunk in flight raises WorkerDied, the
        innocent ones too: those items run again one by one, one stage-wide
        suspect at a time, and only an item whose own worker dies fails."""
        def failed(exc: BaseException, n: int) -> list[tuple[bool, Any]]:
            return [(False, (f"{type(exc).__name__}: {exc}", ""))] * n

        try:
            return cast("tuple[list[tuple[bool, Any]], str]",
                        await run.runner.run_chunk(payload, items, run.spec.retries))
        except WorkerDied:
            pass
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - no worker could run them, or their results
            return failed(exc, len(items)), ""  # could not be read back: these items failed
        outcomes, printed = [], []
        for item in items:
            async with run.suspects:
                try:
                    one, text = await run.runner.run_chunk(payload, [item], run.spec.retries)
                except asyncio.CancelledError:
                    raise
                except BaseException as exc:  # noqa: BLE001 - its own worker died (or none could start)
                    one, text = failed(exc, 1), ""
            outcomes += one
            printed.append(text)
        return outcomes, "".join(printed)

    async def _chunk_worker(self, run: _StageRun, tally: _Tally) -> None:
        inbox, outbox = run.inbox, run.outbox
        try:
            assert run.payload is not None
            try:
                payload = await run.payload
            except Exception as exc:  # noqa: BLE001 - no worker can get the function: the run fails
                self.error = exc
                self.abort()
                return
            while True:
                batch = [await inbox.get()]
                while len(batch) < run.chunk:
                    more = inbox.get_nowait()
                    if more is _EMPTY:
                        break
                    batch.append(more)
                work = [(i, x) for i, x in batch if type(x) is not _Failure]
                for i, x in batch:
                    if type(x) is _Failure:
                        await outbox.put((i, x))
                if not work:
                    continue
                tally.started += len(work)
                run.active += len(work)  # on the loop's thread, as every chunk worker
                if run.active > run.peak:
                    run.peak = run.active
                began = run.clock.monotonic()
                try:
                    outcomes, printed = await self._run_chunk(run, payload, [x for _, x in work])
                finally:
                    run.active -= len(work)
                # A chunk's wall time includes its wait behind the chunk ahead of it at the
                # same worker (each worker holds `queued` chunks): per item, that is not work.
                queued = max(1.0, len(run.tallies) / max(1, run.runner.slots))
                per_item = (run.clock.monotonic() - began) / len(work) / queued
                run.chunk = max(1, min(256, int(run.runner.chunk_seconds / max(per_item, 1e-6))))
                if printed and self.ctx is not None:
                    self.ctx.output.write(printed)
                for (index, item), (ok, value) in zip(work, outcomes):
                    if not ok:
                        value = self._failure(run, index, item, value[0], value[1])
                        tally.failed += 1
                    tally.finished += 1
                    await outbox.put((index, value))
        except Closed:
            pass
        finally:
            self._retired(run)
