"""The `Executor` protocol: where a job's code runs.

The scheduler only awaits `Executor.run` on its loop and calls
`Executor.interrupt` / `Executor.request_stop`; an executor never decides
scheduling, and it cancels its own work (nobody else reaches into it).
Implementations live in `notebook_ext.executors`; the scheduler loads its
default table from there by name, so the core imports none of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Awaitable, Iterable, Literal, Protocol, cast, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from ._clock import Clock
    from ._job import Job
    from ._loopthread import LoopThread
    from ._pipeline import Stage


#: where an executor runs a stage's work items: on threads of this process, as
#: coroutines on the scheduler's loop, or in chunks on workers of its own (an
#: `ItemExecutor`'s `ItemRunner`)
ItemPlace = Literal["threads", "loop", "workers"]


class ExecutorHost(Protocol):
    """What an executor may know of the scheduler it serves."""

    slots: int
    clock: "Clock"
    loop_thread: "LoopThread"


@runtime_checkable
class Executor(Protocol):
    """An engine that runs job code.

    ``compute`` is True when a running job holds one of the scheduler's
    global CPU slots; ``slots`` bounds this executor's own running jobs
    (None: the scheduler's slots, filled in by `bind`).
    """

    name: str
    compute: bool
    slots: int | None
    item_place: ItemPlace

    def bind(self, host: ExecutorHost) -> None:
        """Called once when added to a scheduler."""

    def prepare(self, job: "Job") -> None:
        """Check (and pack) a job at submit time; raise `TypeError` /
        `ValueError` to refuse it."""

    def prepare_items(self, stage: "Stage") -> None:
        """Check (and pack) a stage of work items at submit time, as
        `prepare` a job: `TypeError` naming what cannot go."""

    def run(self, job: "Job") -> Awaitable[Any]:
        """Run one attempt of ``job`` with its context current; return its
        value (an ``async def``, or a method returning an awaitable)."""

    def interrupt(self, job: "Job") -> None:
        """Stop a running job as hard as this engine can (its cancel is flagged)."""

    def request_stop(self, job: "Job") -> None:
        """Pass "stop and keep" on to a running job."""

    def shutdown(self) -> None:
        """Release everything this executor started."""

    def describe(self) -> dict[str, Any]:
        """Facts for cards and dashboards (e.g. a cluster's dashboard link)."""


class ItemRunner(Protocol):
    """One run of work items in chunks, in an engine's own workers (what
    `ItemExecutor.item_runner` gives; see `notebook_ext.core.Stage`)."""

    slots: int
    #: seconds of work a chunk of items should hold (chunks grow to it as items are timed):
    #: long enough that a chunk's round trip is a small part of it
    chunk_seconds: float

    def store(self, shipment: bytes) -> tuple[str, Any]:
        """Put the packed function where the workers read it once; the
        payload every chunk carries."""

    async def run_chunk(self, payload: tuple[str, Any], items: list[Any],
                        retries: int) -> tuple[list[tuple[bool, Any]], str]:
        """``(ok, value or (error line, traceback))`` per item, and what the chunk printed."""

    def kill(self) -> None:
        """Cancel: stop every chunk still running."""

    def close(self) -> None:
        """The run ended: release what it holds."""


@runtime_checkable
class ItemExecutor(Executor, Protocol):
    """An executor whose ``item_place`` is ``"workers"`` (``process`` and
    ``dask``): it gives each run of work items workers of its own."""

    def item_runner(self, cpu: int | None = None) -> ItemRunner:
        """Workers for one run of work items."""


#: executors every scheduler starts with, as ``module:Class`` (loaded when a scheduler is made;
#: ``dask`` is added by `notebook_ext.use_dask`)
DEFAULT_EXECUTORS = (
    "notebook_ext.executors:LoopExecutor",
    "notebook_ext.executors:ThreadExecutor",
    "notebook_ext.executors:ProcessExecutor",
)


def load_executor(path: str) -> Executor:
    """An instance of the executor class named ``module:Class``."""
    module, _, cls = path.partition(":")
    return cast(Executor, getattr(importlib.import_module(module), cls)())


def with_defaults(given: Iterable[Executor]) -> list[Executor]:
    """The default executors not replaced by one of ``given`` (same name), then ``given``."""
    given = list(given)
    names = {ex.name for ex in given}
    defaults = [load_executor(path) for path in DEFAULT_EXECUTORS]
    return [ex for ex in defaults if ex.name not in names] + given
