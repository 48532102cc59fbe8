"""Preprocessing: a function over many items, concurrently, with bounded
memory; failed items are kept aside and can be retried alone.

The items are consumed lazily (an iterator, a generator, an async
iterator): an item is taken only when fewer than ``max_pending`` are in
flight, so a huge or endless source never sits in memory at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..core import Job, current_job, get_scheduler, report
from ._details import FailedItem, PreprocessDetail


@dataclass
class PreprocessResult:
    """Results in input order (None where an item failed), and the failures."""

    results: list[Any]
    failed: dict[int, str] = field(default_factory=dict)  # index -> "Type: message"
    failed_items: dict[int, Any] = field(default_factory=dict)  # index -> the item itself

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def good(self) -> list[Any]:
        """The results of the items that succeeded, in input order."""
        return [r for i, r in enumerate(self.results) if i not in self.failed]

    def __len__(self) -> int:
        return len(self.results)

    def __repr__(self) -> str:
        return f"PreprocessResult({len(self.results) - len(self.failed)} ok, {len(self.failed)} failed)"


def _apply(func: Callable[[Any], Any], item: Any) -> Any:
    return func(item)


async def _aiter(items: Any):
    if hasattr(items, "__aiter__"):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


def preprocess(func: Callable[[Any], Any], items: Iterable[Any] | Any, *, workers: int | None = None,
               executor: str | None = None, max_pending: int | None = None, name: str | None = None,
               retries: int = 0, priority: int = 0, scheduler: Any = None,
               _indices: list[int] | None = None, _base: PreprocessResult | None = None) -> Job:
    """Apply ``func`` to every item in the background, a few at a time.

    Parameters
    ----------
    func : callable
        Called as ``func(item)``; runs in a thread (default), a worker
        process (``executor="process"``) or on Dask.
    items : iterable or async iterable
        Files, chunks, arrays … consumed lazily.
    workers : int, optional
        Items processed at once (default: the scheduler's slots).
    max_pending : int, optional
        Items taken from ``items`` and not finished yet, at most (default
        ``2 * workers``): the back-pressure bound.
    retries : int
        Re-runs of an item that raised, before it counts as failed.

    Returns
    -------
    Job
        Its result is a `PreprocessResult`. The job is ``done`` even when
        some items failed (they are listed; nothing good is lost);
        `retry_failed` (or ``%retry NAME``) re-runs only those.

    Examples
    --------
    >>> job = preprocess(load_and_clean, paths, workers=4)   # doctest: +SKIP
    >>> job.result().failed                                  # doctest: +SKIP
    {17: "UnicodeDecodeError: ..."}
    """
    if not callable(func):
        raise TypeError(f"`func` must be callable, got {type(func).__name__}")
    if not (hasattr(items, "__iter__") or hasattr(items, "__aiter__")):
        raise TypeError(f"`items` must be iterable, got {type(items).__name__}")
    sched = scheduler or get_scheduler()
    workers = workers or sched.slots
    for arg, value in (("workers", workers), ("max_pending", max_pending)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"`{arg}` must be a positive integer, got {value!r}")
    max_pending = max_pending or 2 * workers
    workers = min(workers, max_pending)
    executor = executor or "thread"
    sched.executor(executor)
    try:
        total = len(items)  # type: ignore[arg-type]
    except TypeError:
        total = None

    async def run() -> PreprocessResult:
        me = current_job()
        results: dict[int, Any] = {}
        failed: dict[int, str] = {}
        failed_items: dict[int, Any] = {}
        running: set[asyncio.Future] = set()
        gate = asyncio.Semaphore(workers)
        stats = {"in_flight": 0, "max_in_flight": 0, "done": 0}
        position = 0

        async def one(index: int, item: Any) -> None:
            async with gate:
                child = sched.submit(_apply, func, item, parent=me, kind="item", executor=executor,
                                     retries=retries, backoff=0.1, priority=priority, name=f"{me.name}/{index}")
                try:
                    results[index] = await child
                except asyncio.CancelledError:
                    child.cancel("the preprocessing job was cancelled")
                    raise
                except Exception as exc:  # noqa: BLE001 - an item's failure is recorded, not fatal
                    failed[index] = f"{type(exc).__name__}: {exc}"
                    failed_items[index] = item

        def finished(fut: asyncio.Future) -> None:
            running.discard(fut)
            stats["in_flight"] -= 1
            stats["done"] += 1

        try:
            async for item in _aiter(items):
                while len(running) >= max_pending:  # back-pressure: take no more items
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    _publish(me, stats, failed, total)
                index = _indices[position] if _indices is not None else position
                position += 1
                task = asyncio.ensure_future(one(index, item))
                running.add(task)
                stats["in_flight"] += 1
                stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
                task.add_done_callback(finished)
                _publish(me, stats, failed, total)
            while running:
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                _publish(me, stats, failed, total)
        except asyncio.CancelledError:
            for task in list(running):
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        _publish(me, stats, failed, total, final=True)
        return _merge(_base, results, failed, failed_items, position if _indices is None else None)

    def again(old: Job) -> Job:  # %retry: only the failed items, merged into the earlier result
        return _retry_failed(old, func, workers, executor, max_pending, retries, sched)

    return sched.submit(run, name=name, kind="preprocess", priority=priority, retry_with=again,
                        detail=PreprocessDetail(),
                        params={"func": getattr(func, "__name__", repr(func)), "items": total,
                                "workers": workers, "max_pending": max_pending, "executor": executor})


def _publish(me: Job, stats: dict, failed: dict, total: int | None, final: bool = False) -> None:
    n_failed = len(failed)
    msg = f"{stats['done'] - n_failed} ok, {n_failed} failed, {stats['in_flight']} in flight"
    if final and n_failed:
        msg = f"{stats['done'] - n_failed} ok, {n_failed} failed: %retry {me.name} re-runs the failed items"
    report(stats["done"], total, msg)
    old = me.detail
    if (isinstance(old, PreprocessDetail) and old.in_flight == stats["in_flight"]
            and old.max_in_flight == stats["max_in_flight"] and len(old.failed_items) == len(failed)):
        return  # nothing new to draw
    me.set_detail(PreprocessDetail(in_flight=stats["in_flight"], max_in_flight=stats["max_in_flight"],
                                   failed_items=tuple(FailedItem(i, e) for i, e in sorted(failed.items()))))


def _merge(base: PreprocessResult | None, results: dict[int, Any], failed: dict[int, str],
           failed_items: dict[int, Any], count: int | None) -> PreprocessResult:
    if base is None:
        n = count if count is not None else (max(results.keys() | failed.keys()) + 1 if results or failed else 0)
        return PreprocessResult([results.get(i) for i in range(n)], dict(sorted(failed.items())),
                                dict(sorted(failed_items.items())))
    merged = list(base.results)
    for i, value in results.items():
        merged[i] = value
    return PreprocessResult(merged, dict(sorted(failed.items())), dict(sorted(failed_items.items())))


def retry_failed(job: Job) -> Job:
    """Re-run only the failed items of a finished `preprocess` job.

    Returns a new job under the same name whose result is the complete,
    merged `PreprocessResult` (earlier good results kept).

    Examples
    --------
    >>> again = retry_failed(job)            # doctest: +SKIP   (or: %retry NAME)
    """
    if not job.done():
        raise ValueError(f"job {job.name!r} is still {job.state}; wait for it first")
    if job.kind != "preprocess" or job.retry_with is None:
        raise ValueError(f"job {job.name!r} is not a preprocessing job")
    return job.retry_with(job)


def _retry_failed(job: Job, func: Callable[[Any], Any], workers: int, executor: str, max_pending: int,
                  retries: int, sched: Any) -> Job:
    if job.state != "done":
        raise ValueError(f"job {job.name!r} is {job.state}, not done: run it again with preprocess()")
    previous: PreprocessResult = job.result()
    if not previous.failed:
        raise ValueError(f"job {job.name!r} has no failed items to retry")
    indices = list(previous.failed_items)
    return preprocess(func, [previous.failed_items[i] for i in indices], workers=workers, executor=executor,
                      max_pending=max_pending, retries=retries, name=job.name, scheduler=sched,
                      _indices=indices, _base=previous)
