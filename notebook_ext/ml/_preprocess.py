"""Preprocessing: a function (or a `pipeline` of stages) over many items,
as work items of one job, with bounded memory; failed items are kept aside
and can be retried alone.

The items are consumed lazily (an iterator, a generator, an async
iterator): an item is taken only when fewer than ``max_pending`` are in
flight, so a huge or endless source never sits in memory at once; with a
sink (``into=``) the results do not either.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..core import ItemMap, Job, Pipeline, Stage, get_scheduler
from ..core.lowlevel import Channel, Clock, Closed, current_context, hold, job_context
from ._checkpoints import ItemLog, checkpoint_path, finished, fingerprint, parse_every, part_paths, write_part
from ._details import PreprocessDetail
from ._specs import PreprocessSpec, spec_json


@dataclass
class PreprocessResult:
    """Results in input order (None where an item failed, nothing kept when
    they went ``into`` a sink), and the failures."""

    results: list[Any]
    failed: dict[int, str] = field(default_factory=dict)  # index -> "Type: message"
    failed_items: dict[int, Any] = field(default_factory=dict)  # index -> the item itself (at its stage)
    count: int = -1  # items finished (ok or failed); -1: len(results)
    into: bool = False  # results went to a sink, not kept here
    stopped: bool = False  # "stop and keep" ended it before the source did
    failed_stage: dict[int, int] = field(default_factory=dict, repr=False)  # index -> stage that failed it
    #: index -> how the card named the item (what the user passed: a retry names it so too)
    failed_names: dict[int, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.count < 0:
            self.count = len(self.results)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def good(self) -> list[Any]:
        """The results of the items that succeeded, in input order."""
        return [r for i, r in enumerate(self.results) if i not in self.failed]

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        where = ", into the sink" if self.into else ""
        stopped = ", stopped early" if self.stopped else ""
        return f"PreprocessResult({self.count - len(self.failed)} ok, {len(self.failed)} failed{where}{stopped})"


def _validate(arg: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"`{arg}` must be a positive integer, got {value!r}")


def preprocess(func: "Callable[[Any], Any] | Pipeline", items: "Iterable[Any] | Any" = None, *,
               workers: int | None = None, executor: str | None = None, max_pending: int | None = None,
               name: str | None = None, retries: int = 0, priority: int = 0, ordered: bool = True,
               into: Callable[[Any], Any] | None = None, cpu: int | None = None, scheduler: Any = None,
               checkpoint_every: Any = None, variables: Mapping[str, Any] | None = None) -> Job:
    """Apply ``func`` to every item in the background: one job, the items
    as its work items.

    Parameters
    ----------
    func : callable or Pipeline
        ``func(item)``: an ``async def`` function runs on the scheduler's
        loop, a plain one in threads (default), worker processes
        (``executor="process"``) or on Dask. Or a `notebook_ext.pipeline`
        (then ``items`` is left out): its card shows every stage.
    items : iterable or async iterable
        Files, chunks, arrays … consumed lazily.
    workers : int, optional
        Items processed at once: I/O concurrency, not capped by the cores
        (default: ``min(32, cores + 4)`` threads, 64 coroutines, or the
        cores for processes).
    cpu : int, optional
        Worker processes for ``executor="process"`` (default: the cores).
    max_pending : int, optional
        Items taken from ``items`` and not finished yet, at most: the
        back-pressure bound.
    retries : int
        Re-runs of an item that raised, before it counts as failed.
    ordered : bool
        Results in input order (default) or as they finish.
    into : callable, optional
        A sink: each result is passed to ``into(result)`` (in order, from
        one thread; or awaited on the loop when it is ``async def``)
        instead of being kept, so memory stays flat for any number of items.
        The indices of the items the sink took are logged (in the history's
        ``checkpoints/`` folder), so `notebook_ext.resume` after a crash
        runs only the others.
    checkpoint_every : int or str, optional
        Without a sink: keep the results produced so far in checkpoint
        files every so many items (``500``) or seconds (``"30s"``), for
        `notebook_ext.resume`. With a sink every item is logged anyway.
    variables : mapping, optional
        The names of the notebook variables ``func``, ``items`` and ``into``
        came from (``{"func": "clean", "items": "paths"}``), kept with the
        job's checkpoints so that ``%resume NAME`` finds them again.

    Returns
    -------
    Job
        Its result is a `PreprocessResult`. The job is ``done`` even when
        some items failed (they are listed; nothing good is lost);
        `retry_failed` (or ``%retry NAME``) re-runs only those.

    Examples
    --------
    >>> job = preprocess(load_and_clean, paths, workers=16)   # doctest: +SKIP
    >>> job.result().failed                                   # doctest: +SKIP
    {17: "UnicodeDecodeError: ..."}
    """
    pipe = _pipeline(func, items, workers=workers, executor=executor, max_pending=max_pending, retries=retries,
                     ordered=ordered, cpu=cpu)
    options = {"workers": workers, "executor": executor, "cpu": cpu, "retries": retries, "ordered": ordered,
               "max_pending": max_pending}
    return _submit(scheduler or get_scheduler(), func, pipe, RunStart(), into=into, name=name, priority=priority,
                   checkpoint_every=checkpoint_every, variables=variables, options=options)


def _pipeline(func: Any, items: Any, *, workers: int | None = None, executor: str | None = None,
              max_pending: int | None = None, retries: int = 0, ordered: bool = True,
              cpu: int | None = None) -> Pipeline:
    """The pipeline `preprocess` runs: ``func`` when it is one, else one
    stage of ``func`` over ``items`` (the defaults are `preprocess`'s)."""
    if isinstance(func, Pipeline):
        if items is not None:
            raise TypeError("a pipeline brings its own items: preprocess(pipe), not preprocess(pipe, items)")
        if max_pending is None:
            return func
        _validate("max_pending", max_pending)
        return Pipeline(func.source, func.stages, ordered=func.ordered, max_pending=max_pending)
    if not callable(func):
        raise TypeError(f"`func` must be callable, got {type(func).__name__}")
    if items is None or not (hasattr(items, "__iter__") or hasattr(items, "__aiter__")):
        raise TypeError(f"`items` must be iterable, got {type(items).__name__}")
    for arg, value in (("workers", workers), ("max_pending", max_pending)):
        _validate(arg, value)
    if max_pending is not None and workers is not None:
        workers = min(workers, max_pending)
    return Pipeline(items, (Stage(func, workers=workers, executor=executor, cpu=cpu, retries=retries),),
                    ordered=ordered, max_pending=max_pending)


@dataclass(frozen=True)
class RunStart:
    """Where a preprocessing run starts, when not at its first item: a
    retry of an earlier run's failed items (``retry``: groups of (first
    stage, indices, items), counted against ``base``, that run's result), or
    a resume after a crash (``resumption``)."""

    retry: "list[tuple[int, list[int], list[Any]]] | None" = None
    base: "PreprocessResult | None" = None
    resumption: "Resumption | None" = None


def _submit(sched: Any, func: Any, pipe: Pipeline, start: RunStart, *, into: Any, name: str | None,
            priority: int, checkpoint_every: Any, variables: Mapping[str, Any] | None,
            options: Mapping[str, Any]) -> Job:
    """Submit a preprocessing job of ``pipe``: a new run, a retry or a resume (``start``)."""
    if into is not None and not callable(into):
        raise TypeError(f"`into` must be a callable (or an `async def` function), got {type(into).__name__}")
    retry, earlier, resumed = start.retry, start.base, start.resumption
    for st in pipe.stages:
        if st.shipment is None:  # checked and packed once, now: one that cannot travel is refused here, not in the job
            sched.executor(st.executor).prepare_items(st)
    total = pipe.total if retry is None else sum(len(group[1]) for group in retry)
    keep = _keeper(sched, pipe, name, into, checkpoint_every, retry, resumed)

    async def run() -> PreprocessResult:
        log = ItemLog(keep.path) if keep is not None else None
        sink = _Sink(into, log) if into is not None else None
        parts = _Parts(keep, log, sched.clock) if keep is not None and into is None else None
        results: dict[int, Any] = {}
        failed: dict[int, str] = {}
        failed_items: dict[int, Any] = {}
        failed_stage: dict[int, int] = {}
        failed_names: dict[int, str] = {}
        groups = retry if retry is not None else [(0, None, pipe.source)]
        count, stopped = 0, False
        shown_total = total
        retried = [0, 0]  # a retry's (ok, failed) so far, over its parts
        if retry is not None and earlier is not None:
            # counted against the original run: its good items are done already
            shown_total, count = earlier.count, earlier.count - len(earlier.failed)
        if resumed is not None:
            groups = [(0, *_remaining(pipe.source, resumed.done))]
            count = len(resumed.done)
        try:
            for first, indices, source in groups:
                part = Pipeline(source, pipe.stages[first:], ordered=pipe.ordered, max_pending=pipe.max_pending)
                names = ([earlier.failed_names.get(i, "") for i in indices]
                         if retry is not None and earlier is not None and indices is not None else None)
                run_ = ItemMap(part, sched, report=True, detail=PreprocessDetail, names=names)
                if retry is not None or resumed is not None:
                    run_.total = shown_total
                    run_.done_before = count
                if retry is not None:
                    run_.retry_of, run_.retried_before = total, (retried[0], retried[1])
                async for position, ok, value in run_.results():
                    index = indices[position] if indices is not None else position
                    if ok:
                        if sink is not None:
                            await sink.put(value, index)
                        else:
                            results[index] = value
                            if parts is not None:
                                await parts.add(index, value)
                    else:
                        failed[index] = value.error
                        failed_items[index] = run_.failed_values[position]
                        failed_stage[index] = first + run_.failed_stage[position]
                        failed_names[index] = value.item
                count = run_.done_before + run_.consumed
                retried[1] += len(run_.failed)
                retried[0] += run_.consumed - len(run_.failed)
                stopped = stopped or run_.stopped
        except BaseException:
            if parts is not None:  # what was produced is kept for a resume
                await parts.flush()
            raise
        finally:
            if sink is not None:
                await sink.close()
            if log is not None:
                log.close()
        base = earlier if resumed is None else resumed.base(count, into is not None)
        return _merge(base, results, failed, failed_items, failed_stage, count, into is not None, stopped,
                      failed_names)

    def again(old: Job) -> Job:  # %retry: only the failed items, merged into the earlier result
        return _retry_failed(old, pipe, into, priority, sched)

    stage_names = [st.name for st in pipe.stages]
    params = {"func": stage_names[0] if len(stage_names) == 1 else " → ".join(stage_names), "items": total,
              "workers": pipe.stages[0].workers if len(stage_names) == 1 else [st.workers for st in pipe.stages],
              "max_pending": pipe.max_pending,
              "executor": pipe.stages[0].executor if len(stage_names) == 1 else [st.executor for st in pipe.stages]}
    if into is not None:
        params["into"] = getattr(into, "__name__", type(into).__name__)
    resume = None
    if keep is not None:
        params["checkpoints"] = keep.path
        resume = spec_json(PreprocessSpec(
            keep.path, {"items": fingerprint(pipe.source)}, (keep.steps, keep.seconds), total=pipe.total,
            func=None if isinstance(func, Pipeline) else _name_of(func), into=_name_of(into),
            sink=into is not None, pipeline=isinstance(func, Pipeline), options=options,
            variables=variables or {}))
        hold(keep.path)
    # the job's own code only feeds the items: they run on the stages' executors
    runs_on = " → ".join(dict.fromkeys(st.executor for st in pipe.stages))
    detail = PreprocessDetail(can_stop=True, resumed_from=len(resumed.done) if resumed is not None else None,
                              runs_on=runs_on, unit="items")
    job = sched.submit(run, name=name, kind="preprocess", priority=priority, retry_with=again,
                       detail=detail, params=params, resume=resume)
    if keep is not None:
        job.add_done_callback(lambda j: finished(sched, keep.path, j))
    return job


def _name_of(fn: Any) -> str | None:
    """A plain function's name, for looking it up again after a restart."""
    return fn.__name__ if inspect.isfunction(fn) and fn.__name__ != "<lambda>" else None


@dataclass
class Resumption:
    """What an interrupted run left: the indices done and the results kept."""

    path: str
    done: set[int]
    earlier: dict[int, Any]

    def base(self, count: int, into: bool) -> PreprocessResult:
        kept = [] if into else [self.earlier.get(i) for i in range(count)]
        return PreprocessResult(kept, count=count, into=into)


class _Keep:
    """Where a run keeps what it finished, and how often it writes parts."""

    def __init__(self, path: str, every: Any) -> None:
        self.path = path
        self.steps, self.seconds = parse_every(every) if every is not None else (None, None)


def _keeper(sched: Any, pipe: Pipeline, name: str | None, into: Any, every: Any, retry: Any,
            resumed: "Resumption | None") -> _Keep | None:
    """A sink's run logs its items when there is a history to log them
    beside; a run without a sink keeps results only when asked."""
    if resumed is not None:
        return _Keep(resumed.path, every)
    if retry is not None or (into is None and every is None):
        return None
    try:
        path = checkpoint_path(sched, None, name or pipe.stages[0].name)
    except ValueError:
        if every is None:
            return None  # no history: a sink's run simply is not resumable
        raise
    return _Keep(path, every)


def _remaining(source: Any, done: set[int]) -> tuple[list[int], Any]:
    """The items of ``source`` not in ``done`` (lazily), and their indices
    in ``source`` (filled as they are taken)."""
    indices: list[int] = []
    if hasattr(source, "__aiter__"):
        async def agen() -> Any:
            i = 0
            async for item in source:
                if i not in done:
                    indices.append(i)
                    yield item
                i += 1
        return indices, agen()

    def gen() -> Any:
        for i, item in enumerate(source):
            if i not in done:
                indices.append(i)
                yield item
    return indices, gen()


class _Parts:
    """Results kept for a resume (no sink): every ``steps`` items or
    ``seconds`` the new ones go to a part file, written off the loop."""

    def __init__(self, keep: _Keep, log: ItemLog, clock: Clock) -> None:
        self.keep, self.log = keep, log
        self.new: dict[int, Any] = {}
        self.number = len(part_paths(keep.path))
        self.clock = clock
        self.last = clock.monotonic()

    async def add(self, index: int, value: Any) -> None:
        self.new[index] = value
        if (self.keep.steps is not None and len(self.new) >= self.keep.steps) or (
                self.keep.seconds is not None and self.clock.monotonic() - self.last >= self.keep.seconds):
            await self.flush()

    async def flush(self) -> None:
        if not self.new:
            return
        new, self.new = self.new, {}
        self.last = self.clock.monotonic()
        number, self.number = self.number, self.number + 1
        await asyncio.get_running_loop().run_in_executor(None, self._write, number, new)

    def _write(self, number: int, new: dict[int, Any]) -> None:
        try:
            write_part(self.keep.path, number, new)
        except OSError as exc:  # the disk, not the run: the results stay in memory, unlogged
            self.log.pause.failed(exc, f"{self.keep.path}.part-{number}", "the items go on; a resume runs these again")
            return
        for index in new:  # after the part: a logged index always has its result on disk
            self.log.add(index)


class _Sink:
    """Where results go instead of a list: an ``async def`` sink is awaited
    on the loop; a plain one runs in a thread of its own (it may write
    files), fed through a bounded channel, in order. A sink that raises
    fails the job (it is not one item's fault)."""

    def __init__(self, into: Callable[[Any], Any], log: ItemLog | None = None) -> None:
        self.into = into
        self.log = log  # the indices it took, for a resume
        self.is_async = inspect.iscoroutinefunction(into)
        self.error: BaseException | None = None
        self._chan: Channel | None = None
        self._thread: threading.Thread | None = None
        self._gone: asyncio.Event | None = None

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._chan = Channel(256, loop, threading.get_ident())
        self._gone = asyncio.Event()
        ctx = current_context()

        def drain() -> None:
            try:
                with job_context(ctx) if ctx is not None else contextlib.nullcontext():
                    while True:
                        index, value = self._chan.get_sync()  # type: ignore[union-attr]
                        self.into(value)
                        if self.log is not None:
                            self.log.add(index)
            except Closed:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the job
                self.error = exc
                self._chan.abort()  # type: ignore[union-attr]
            finally:
                loop.call_soon_threadsafe(self._gone.set)  # type: ignore[union-attr]

        self._thread = threading.Thread(target=drain, name="notebook_ext-items-sink", daemon=True)
        self._thread.start()

    async def put(self, value: Any, index: int) -> None:
        if self.is_async:
            await self.into(value)
            if self.log is not None:
                self.log.add(index)
            return
        if self._chan is None:
            self._start()
        try:
            await self._chan.put((index, value))  # type: ignore[union-attr]
        except Closed:
            raise self.error or RuntimeError("the sink stopped") from None

    async def close(self) -> None:
        if self._chan is None:
            return
        self._chan.close()
        await self._gone.wait()  # type: ignore[union-attr]
        if self.error is not None:
            raise self.error


def _merge(base: PreprocessResult | None, results: dict[int, Any], failed: dict[int, str],
           failed_items: dict[int, Any], failed_stage: dict[int, int], count: int, into: bool,
           stopped: bool, failed_names: dict[int, str]) -> PreprocessResult:
    if base is None:
        kept = [] if into else [results.get(i) for i in range(count)]
        return PreprocessResult(kept, dict(sorted(failed.items())), dict(sorted(failed_items.items())),
                                count=count, into=into, stopped=stopped, failed_stage=failed_stage,
                                failed_names=failed_names)
    merged = list(base.results)
    for i, value in results.items():
        merged[i] = value
    return PreprocessResult(merged, dict(sorted(failed.items())), dict(sorted(failed_items.items())),
                            count=base.count, into=base.into, stopped=base.stopped or stopped,
                            failed_stage=failed_stage, failed_names=failed_names)


def retry_failed(job: Job) -> Job:
    """Re-run only the failed items of a finished `preprocess` job.

    Returns a new job under the same name whose result is the complete,
    merged `PreprocessResult` (earlier good results kept; with a sink, the
    retried results go to the same sink). A pipeline's item is retried
    from the stage where it failed.

    Examples
    --------
    >>> again = retry_failed(job)            # doctest: +SKIP   (or: %retry NAME)
    """
    if not job.done():
        raise ValueError(f"job {job.name!r} is still {job.state}; wait for it first")
    if job.kind != "preprocess" or job.retry_with is None:
        raise ValueError(f"job {job.name!r} is not a preprocessing job")
    return job.scheduler.retry(job)


def _retry_failed(job: Job, pipe: Pipeline, into: Any, priority: int, sched: Any) -> Job:
    if job.state != "done":
        raise ValueError(f"job {job.name!r} is {job.state}, not done: run it again with preprocess()")
    previous: PreprocessResult = job.result()
    if not previous.failed:
        raise ValueError(f"job {job.name!r} has no failed items to retry")
    by_stage: dict[int, list[int]] = {}
    for index in previous.failed_items:
        by_stage.setdefault(previous.failed_stage.get(index, 0), []).append(index)
    groups = [(first, indices, [previous.failed_items[i] for i in indices])
              for first, indices in sorted(by_stage.items())]
    return _submit(sched, pipe, pipe, RunStart(retry=groups, base=previous), into=into, name=job.name,
                   priority=priority, checkpoint_every=None, variables=None, options={})
