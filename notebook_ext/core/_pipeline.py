"""What a run of work items is made of: stages (a function, where it
runs, how widely), pipelines of stages, and the facts a card shows about
them. The engine that runs them is `notebook_ext.core._items`."""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any, Callable

from ._states import JobDetail
from ._text import format_number, json_number, printable

CARD_FAILURES = 20  # failed items a card lists (the count says how many in all)


@dataclass(frozen=True)
class FailedItem:
    """An item that raised (after its retries): where, what, why."""

    index: int
    error: str  # "Type: message"
    item: str = ""  # a short repr of the item
    traceback: str = ""
    stage: str = ""


@dataclass(frozen=True)
class StageStats:
    """One stage at one moment: what a card's per-stage row shows."""

    name: str
    executor: str
    workers: int
    done: int = 0
    failed: int = 0
    in_flight: int = 0
    queued: int = 0
    queue_size: int = 0
    rate: float = 0.0  # items per second since the stage started
    peak_in_flight: int = 0


@dataclass(frozen=True)
class ItemsDetail(JobDetail):
    """A job working through items: its stages and the items that failed."""

    stages: tuple[StageStats, ...] = ()
    failed_items: tuple[FailedItem, ...] = ()  # the first FAILURES_SHOWN
    n_failed: int = 0
    #: the progress, from the same reading as ``stages`` (None: not read yet)
    progress: "tuple[int, int | None, str] | None" = None

    def counts(self) -> "tuple[float, float | None, str] | None":
        return self.progress

    def card_fields(self, active: bool) -> dict[str, Any]:
        return {
            "failed_items": [{"index": f.index, "error": f.error, "item": f.item, "stage": f.stage}
                             for f in self.failed_items[:CARD_FAILURES]],
            "failed_count": self.n_failed,
            # one stage is the job itself: its bar and line say it all
            "stages": [_stage_json(s) for s in self.stages] if len(self.stages) > 1 else None,
        }

    def tables(self) -> tuple[str, ...]:
        return (stages_text(self.stages),) if len(self.stages) > 1 else ()

    @property
    def in_flight(self) -> int:
        return sum(s.in_flight for s in self.stages)

    @property
    def max_in_flight(self) -> int:
        return max((s.peak_in_flight for s in self.stages), default=0)


def _stage_json(s: StageStats) -> dict[str, Any]:
    return {"name": printable(s.name), "executor": s.executor, "workers": s.workers, "done": s.done,
            "failed": s.failed, "in_flight": s.in_flight, "queued": s.queued, "queue_size": s.queue_size,
            "rate": json_number(round(s.rate, 1))}


def stages_text(stages: "tuple[StageStats, ...]") -> str:
    """A per-stage table as plain text (the card's table, for text renderers)."""
    lines = [f"{'stage':<16} {'done':>8} {'rate/s':>8} {'in flight':>9} {'queued':>9} {'failed':>6}"]
    for s in stages:
        lines.append(f"{printable(s.name)[:16]:<16} {s.done:>8} {format_number(round(s.rate, 1)):>8} "
                     f"{s.in_flight:>4}/{s.workers:<4} {s.queued:>4}/{s.queue_size:<4} {s.failed:>6}")
    return "\n".join(lines)


class Stage:
    """One step of a `pipeline`: a function and where and how widely it runs.

    Parameters
    ----------
    func : callable
        Called as ``func(item)``; an ``async def`` function runs on the
        scheduler's loop, a plain one in threads (or ``executor="process"``
        / ``"dask"``).
    workers : int, optional
        Items this stage works on at once. Not capped by the cores: 64
        threads waiting on I/O are fine (default 64 for ``async def``,
        ``min(32, cores + 4)`` for threads, ``cpu`` for processes).
    executor : {"loop", "thread", "process", "dask"}, optional
        Default: ``"loop"`` for ``async def``, else ``"thread"``.
    cpu : int, optional
        Worker processes (``process``) at most; default: the cores.
    retries : int
        Re-runs of an item that raised before it counts as failed.
    queue : int, optional
        Items waiting for this stage, at most (default ``2 * workers``, at least 16).
    name : str, optional
        Shown on the card (default: the function's name).
    """

    def __init__(self, func: Callable[[Any], Any], *, workers: int | None = None, executor: str | None = None,
                 cpu: int | None = None, retries: int = 0, queue: int | None = None,
                 name: str | None = None) -> None:
        if not callable(func):
            raise TypeError(f"`func` must be callable, got {type(func).__name__}")
        for arg, value in (("workers", workers), ("cpu", cpu), ("queue", queue)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"`{arg}` must be a positive integer, got {value!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"`retries` must be a non-negative integer, got {retries!r}")
        is_async = _is_async(func)
        executor = executor or ("loop" if is_async else "thread")
        if executor not in ("loop", "thread", "process", "dask"):
            raise ValueError(f"`executor` must be one of loop, thread, process, dask, got {executor!r}")
        if is_async and executor != "loop":
            raise ValueError(f"{_name(func)!r} is an `async def` function: it runs on the loop "
                             f"(executor='loop'), not {executor!r}")
        if not is_async and executor == "loop":
            raise ValueError(f"{_name(func)!r} is a plain function and would block the loop: "
                             "use executor='thread' (or make it `async def`)")
        self.func = func
        self.executor = executor
        self.cpu = cpu
        self.workers = workers or {"loop": 64, "thread": min(32, _cores() + 4)}.get(executor, cpu or _cores())
        self.retries = retries
        self.queue = queue or max(2 * self.workers, 16)
        self.name = name or _name(func)
        #: the function packed for worker processes or Dask (as a job's
        #: ``shipment``): set once, by the executor, before the run starts
        self.shipment: bytes | None = None

    def __repr__(self) -> str:
        return f"stage({self.name}, executor={self.executor!r}, workers={self.workers})"


def stage(func: Callable[[Any], Any], **options: Any) -> Stage:
    """A `Stage` of a `pipeline` (see `Stage` for the options).

    Examples
    --------
    >>> pipe = pipeline(paths, stage(read, workers=64), stage(parse, executor="process"))  # doctest: +SKIP
    """
    return Stage(func, **options)


class Pipeline:
    """Items from ``source`` through ``stages`` in turn; run it with
    `notebook_ext.ml.preprocess` (one job, a per-stage card) or iterate
    ``ItemMap(pipe)`` inside a job of your own. Built by `pipeline`."""

    def __init__(self, source: Any, stages: "tuple[Stage | Callable[[Any], Any], ...]", *, ordered: bool = True,
                 max_pending: int | None = None) -> None:
        if not (hasattr(source, "__iter__") or hasattr(source, "__aiter__")):
            raise TypeError(f"`items` must be iterable, got {type(source).__name__}")
        if not stages:
            raise ValueError("a pipeline needs at least one stage")
        specs = tuple(s if isinstance(s, Stage) else Stage(s) for s in stages)
        if max_pending is not None and (isinstance(max_pending, bool) or not isinstance(max_pending, int)
                                        or max_pending < 1):
            raise ValueError(f"`max_pending` must be a positive integer, got {max_pending!r}")
        self.source = source
        self.stages = specs
        self.ordered = ordered
        self.max_pending = max_pending or max(256, 4 * sum(s.workers for s in specs))

    @property
    def total(self) -> int | None:
        try:
            return len(self.source)
        except TypeError:
            return None

    def with_source(self, source: Any) -> "Pipeline":
        return Pipeline(source, self.stages, ordered=self.ordered, max_pending=self.max_pending)

    def __repr__(self) -> str:
        return f"pipeline({', '.join(s.name for s in self.stages)})"


def pipeline(source: Any, *stages: "Stage | Callable[[Any], Any]", ordered: bool = True,
             max_pending: int | None = None) -> Pipeline:
    """Chain stages, each with its own concurrency and executor, joined by
    bounded queues.

    Parameters
    ----------
    source : iterable or async iterable
        Read lazily: an item is taken only when fewer than ``max_pending``
        are inside the pipeline.
    *stages : Stage or callable
        `stage` (a bare function is ``stage(func)``).
    ordered : bool
        Results in input order (default) or as they finish.

    Examples
    --------
    >>> pipe = pipeline(paths, stage(read_async, workers=64),              # doctest: +SKIP
    ...                 stage(parse, executor="process"), stage(featurize))
    >>> job = preprocess(pipe, name="features")        # a per-stage card
    """
    return Pipeline(source, stages, ordered=ordered, max_pending=max_pending)


def _is_async(func: Any) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, "__call__", None))


def _name(func: Any) -> str:
    return str(getattr(func, "__name__", None) or type(func).__name__)


def _cores() -> int:
    return os.cpu_count() or 1
