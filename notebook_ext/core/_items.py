"""Work items: the cheap unit inside a job (a file, a fold, a request).

An item has no job record, no card and no history row: it is counted,
timed and, when it fails, kept aside with its index, a short repr and its
traceback, while the others go on. A *stage* runs one function over items
with its own concurrency and executor:

=========  ===========================  ====================================
executor   runs                         concurrency
=========  ===========================  ====================================
loop       ``async def`` functions, on  ``workers`` coroutines (any number)
           the scheduler's loop
thread     plain functions              ``workers`` threads (any number:
                                        I/O waits, not cores)
process    plain functions, in chunks   ``cpu`` worker processes (default:
           in worker processes          the cores)
dask       plain functions, in chunks   the cluster's threads
           on a Dask cluster
=========  ===========================  ====================================

Stages are joined by bounded `Channel` s; the source is read lazily, one
item per free ticket (``max_pending`` tickets), so memory stays flat however
many items pass. Thread workers pass items from channel to channel
themselves: no loop round trip per item.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterator, Sequence

from ._channel import _EMPTY, Channel, Closed
from ._context import JobContext, current_context
from ._itemworkers import StageWorkers, _Failure
from ._pace import Throttle, pause
from ._pipeline import FailedItem, ItemsDetail, Pipeline, Stage, StageStats
from ._states import JobCancelled

if TYPE_CHECKING:  # pragma: no cover
    from ._scheduler import Scheduler

PUBLISH_INTERVAL = 0.25  # seconds between per-stage updates of the job's card
FAILURES_SHOWN = 50  # failed items a card lists (all are counted and kept)


def map(func: Callable[[Any], Any], items: Any, *, workers: int | None = None, executor: str | None = None,
        cpu: int | None = None, ordered: bool = True, retries: int = 0, max_pending: int | None = None,
        scheduler: "Scheduler | None" = None) -> "ItemMap":
    """Run ``func`` over ``items`` as work items of the current job.

    Sync code iterates the result (``for y in map(...)``), coroutines use
    ``async for`` or ``await`` (a list). Items that fail are skipped, kept in
    `ItemMap.failed` and written to the job's output; cancelling the job
    stops the items promptly. Inside a job its progress counts the items.

    Parameters
    ----------
    func : callable
        ``async def`` runs on the loop, a plain function in threads (or
        ``executor="process"`` / ``"dask"`` for CPU-heavy work).
    workers : int, optional
        Items at once (I/O concurrency, not capped by the cores).
    cpu : int, optional
        Worker processes for ``executor="process"`` (default: the cores).
    ordered : bool
        Results in input order (default) or as they finish.

    Examples
    --------
    >>> import notebook_ext as nx                                         # doctest: +SKIP
    >>> sizes = list(nx.map(download, urls, workers=64))
    """
    pipe = Pipeline(items, (Stage(func, workers=workers, executor=executor, cpu=cpu, retries=retries),),
                    ordered=ordered, max_pending=max_pending)
    return ItemMap(pipe, scheduler, report=True)


class ItemMap:
    """A running set of work items: iterate it for the results.

    ``for`` from any thread but the scheduler's loop; ``async for`` or
    ``await`` (all good results, a list) on the loop. Breaking out early,
    `close`, or cancelling the job stops every item still running.
    """

    def __init__(self, pipe: Pipeline, scheduler: "Scheduler | None" = None, *, report: bool = False,
                 detail: type[ItemsDetail] | None = None, names: "Sequence[str] | None" = None) -> None:
        if scheduler is None:
            from ._api import get_scheduler

            scheduler = get_scheduler()
        self.pipe = pipe
        self.failed: dict[int, FailedItem] = {}  #: index -> why it failed
        self.failed_values: dict[int, Any] = {}  #: index -> the item itself, as its stage got it (for a retry)
        self.failed_stage: dict[int, int] = {}  #: index -> position of the stage it failed in
        self.total = pipe.total
        self.consumed = 0
        self.done_before = 0  #: items finished by earlier runs (a retry, a resume): counted on the card
        #: a retry's own count: items it re-runs in all, and (ok, failed) of its
        #: earlier parts (a pipeline's items are retried from their stage, in parts)
        self.retry_of: int | None = None
        self.retried_before = (0, 0)
        self._sched = scheduler
        self._ctx: JobContext | None = current_context()
        self._report = report and self._ctx is not None
        self._detail_type = detail or (ItemsDetail if report else None)
        self._lt = scheduler.loop_thread
        self._work = StageWorkers(pipe, scheduler, self._ctx, names)  # the feeder and the stages' workers
        self._started = False
        self._finished = False
        self._buffer: dict[int, Any] = {}
        self._next = 0
        self._pace = Throttle(PUBLISH_INTERVAL, scheduler.clock)  # the card's updates
        self.publish_errors = 0  #: card updates that raised (counted, survived)
        self.abandoned = 0  #: item threads still busy when a cancel gave up waiting for them
        for spec in pipe.stages:
            if spec.shipment is None:
                # checked (and packed) here, in the caller's thread: never on the scheduler's loop
                scheduler.executor(spec.executor).prepare_items(spec)

    # -- the loop side --------------------------------------------------------
    def _start(self) -> None:
        """Start the feeder and the workers (on the loop)."""
        if self._started:
            return
        self._started = True
        self._work.start(asyncio.get_running_loop(), self.total, self._publisher if self._report else None)

    @property
    def stopped(self) -> bool:
        """"Stop and keep" ended the run before the source did."""
        return self._work.stopped

    def _check_complete(self) -> None:
        """Every item fed came out (ok or failed), or say why not: never a
        silently shorter result."""
        if self._work.error is not None:
            raise self._work.error
        ctx = self._ctx
        if ctx is not None and ctx.cancel_reason is not None:
            raise JobCancelled(ctx.cancel_reason)
        fed = self._work.fed
        if self.consumed != fed:
            raise RuntimeError(f"{fed - self.consumed} of {fed} items were lost inside notebook_ext "
                               f"(a bug: please report it); {self.consumed} finished")

    async def aclose(self) -> None:
        """Stop everything still running and wait for it (on the loop)."""
        if self._finished or not self._started:
            self._finished = True
            return
        self._finished = True
        work = self._work
        finished = work.out.closed and not len(work.out) and all(r.live == 0 for r in work.stages)
        self.abandoned = await work.stop(finished)
        self._publish(final=True)

    # -- results ---------------------------------------------------------------
    def _take(self, entry: tuple[int, Any]) -> list[tuple[int, bool, Any]]:
        """Order one finished item; the entries now ready, with their tickets returned."""
        index, value = entry
        if not self.pipe.ordered:
            ready = [entry]
        else:
            self._buffer[index] = value
            ready = []
            while self._next in self._buffer:
                ready.append((self._next, self._buffer.pop(self._next)))
                self._next += 1
        out = []
        sources = self._work.sources
        for index, value in ready:
            self._work.tickets.get_nowait()
            self.consumed += 1
            if sources is not None:
                sources.pop(index, None)
            if type(value) is _Failure:
                self.failed[index] = value.record
                self.failed_values[index] = value.item
                self.failed_stage[index] = value.stage
                self._tell(value.record)
                out.append((index, False, value.record))
            else:
                out.append((index, True, value))
        return out

    def _tell(self, record: FailedItem) -> None:
        ctx = self._ctx
        n = len(self.failed)
        if ctx is None or n > 20:
            return
        line = (f"item {record.index} ({record.item}) failed in {record.stage}: {record.error}\n" if n < 20
                else "… more items failed: see the job's card or `.failed`\n")
        ctx.output.write(line)

    def _publish(self, final: bool = False) -> None:
        """Put the card's counts together from one reading of the stages:
        the bar (items out of the pipeline), the "ok, failed, in flight"
        line and the stage table agree at every instant."""
        ctx = self._ctx
        if not self._report or ctx is None:
            return
        if final:
            self._pace.mark()
        elif not self._pace.ready():
            return
        stages = tuple(run.stats() for run in self._work.stages)
        n_failed = sum(s.failed for s in stages)
        # out of the pipeline: through its last stage, or failed in one
        out = (stages[-1].done if stages else 0) + n_failed
        in_flight = sum(s.in_flight for s in stages)
        done = self.done_before + out
        job = ctx.job
        if self.retry_of is not None:
            ok = self.retried_before[0] + out - n_failed
            failed = self.retried_before[1] + n_failed
            s = "" if self.retry_of == 1 else "s"
            line = f"retry of {self.retry_of} failed item{s}: {ok} ok, {failed} failed"
        else:
            ok, failed = done - n_failed, n_failed
            line = f"{ok} ok, {failed} failed"
        if not final:
            line += f", {in_flight} in flight"
        else:
            line += " (stopped early)" if self.stopped else ""
            if failed and job is not None and job.kind == "preprocess":
                line += f": %retry {job.name} re-runs the failed items"
        total = self.total
        ctx.done, ctx.message = done, line
        if total is not None:
            ctx.total = total
        if job is not None and self._detail_type is not None and (
                job.detail is None or isinstance(job.detail, ItemsDetail)):
            shown = tuple(self.failed[i] for i in sorted(self.failed)[:FAILURES_SHOWN])
            facts: dict[str, Any] = {"stages": stages, "failed_items": shown, "n_failed": failed,
                                     "progress": (done, ctx.total, line)}
            job.set_detail(replace(job.detail, **facts) if isinstance(job.detail, self._detail_type)
                           else self._detail_type(**facts))

    async def _publisher(self) -> None:
        while True:
            await pause(self._sched.clock, PUBLISH_INTERVAL)
            try:
                self._publish()
            except Exception:  # noqa: BLE001 - the card misses one update; the items go on
                self.publish_errors += 1

    async def _results(self) -> AsyncIterator[tuple[int, bool, Any]]:
        """(index, ok, value or FailedItem) as items finish, in order when
        ``ordered`` (on the loop)."""
        self._start()
        try:
            while True:
                try:
                    entry = await self._work.out.get()
                except Closed:
                    break
                for ready in self._take(entry):
                    yield ready
            self._check_complete()
        finally:
            await self.aclose()

    def results(self) -> AsyncIterator[tuple[int, bool, Any]]:
        """Every item's outcome ``(index, ok, value or FailedItem)`` (async, on the loop)."""
        return self._results()

    async def __aiter__(self) -> AsyncIterator[Any]:
        async for _, ok, value in self._results():
            if ok:
                yield value

    def __await__(self) -> Any:
        async def collect() -> list[Any]:
            return [value async for value in self]

        return collect().__await__()

    def __iter__(self) -> Iterator[Any]:
        for _, ok, value in self.outcomes():
            if ok:
                yield value

    def outcomes(self) -> Iterator[tuple[int, bool, Any]]:
        """`results` for sync code (any thread but the loop's)."""
        if self._lt.in_thread():
            raise RuntimeError("on the scheduler's loop, use `async for` (or `await`) on notebook_ext.map")
        self._lt.call_and_wait(self._start)
        ctx = self._ctx
        try:
            while True:
                if ctx is not None and ctx.cancel_reason is not None:
                    raise JobCancelled(ctx.cancel_reason)
                try:
                    entry = self._work.out.get_sync(timeout=0.1)
                except Closed:
                    break
                if entry is _EMPTY:
                    continue
                yield from self._take(entry)
            self._check_complete()
        finally:
            self.close()

    def close(self) -> None:
        """Stop the items still running (any thread); waits up to ~1 s for item threads."""
        if self._finished:
            return
        if self._lt.in_thread():
            raise RuntimeError("on the scheduler's loop, `await items.aclose()`")
        try:
            self._lt.submit(self.aclose()).result(timeout=5)
        except Exception:  # noqa: BLE001 - the loop is gone: nothing runs there any more
            self._finished = True

    def stats(self) -> tuple[StageStats, ...]:
        """Per-stage counts now."""
        return tuple(run.stats() for run in self._work.stages)

    def __repr__(self) -> str:
        return f"<ItemMap {self.pipe!r} {self.consumed} finished, {len(self.failed)} failed>"
