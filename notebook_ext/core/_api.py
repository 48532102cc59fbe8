"""The default scheduler and the module-level API built on it."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Mapping
from typing import Any, Callable, Iterator

from ._hooks import HOOKS
from ._job import Job, WaitResult
from ._records import HistoryRecords
from ._scheduler import Scheduler

_default: Scheduler | None = None
_lock = threading.Lock()


def get_scheduler() -> Scheduler:
    """The process-wide scheduler the magics and `submit` use (made on first use)."""
    global _default
    with _lock:
        if _default is None or _default.closed:
            _default = Scheduler()
        return _default


def set_scheduler(scheduler: Scheduler | None) -> Scheduler | None:
    """Replace the default scheduler (e.g. one with other slots); returns the old one."""
    global _default
    with _lock:
        old, _default = _default, scheduler
        return old


@atexit.register
def _shutdown_default() -> None:
    if _default is not None:
        _default.shutdown(timeout=3)


def shutdown(wait: bool = True) -> None:
    """Stop every job of the default scheduler, release every thread and
    process it started, and put back everything notebook_ext patched in the
    interpreter (``sys.stdout``, ``Thread.start``, tqdm … : see
    `notebook_ext.core.lowlevel.HOOKS`). The next job starts afresh.

    Examples
    --------
    >>> nx.shutdown()                                   # doctest: +SKIP
    """
    global _default
    with _lock:
        sched, _default = _default, None
    if sched is not None:
        sched.shutdown(wait=wait)
    HOOKS.undo()


def submit(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Job:
    """Run ``fn(*args, **kwargs)`` in the background on the default scheduler.

    See `Scheduler.submit` for the options (``name``, ``priority``,
    ``timeout``, ``retries``, ``executor``, ``after``).

    Examples
    --------
    >>> import notebook_ext as nx                     # doctest: +SKIP
    >>> job = nx.submit(sum, [1, 2, 3], name="total")
    >>> job.result(timeout=5)
    6
    """
    return get_scheduler().submit(fn, *args, **kwargs)


def wait(*jobs: "Job | str", timeout: float | None = None) -> WaitResult:
    """Block until the jobs (default: every active job) end; ``(done, pending)``."""
    return get_scheduler().wait(*jobs, timeout=timeout)


def submit_many(fn: Callable[..., Any], arguments: Any, **options: Any) -> list[Job]:
    """`Scheduler.submit_many` on the default scheduler: one job per argument
    tuple, admitted in one batch.

    Examples
    --------
    >>> jobs = nx.submit_many(load, [("a.csv",), ("b.csv",)])   # doctest: +SKIP
    """
    return get_scheduler().submit_many(fn, arguments, **options)


def history(sessions: str = "all", limit: int = 1000) -> HistoryRecords:
    """The job history, newest first: a list of `JobRecord` (``name``,
    ``state``, ``params``, ``metrics``, ``artifacts``, ``resumable`` …) with
    ``to_frame()`` for a pandas DataFrame. ``sessions``: ``"all"``,
    ``"current"`` (this kernel) or ``"earlier"``.

    Examples
    --------
    >>> nx.history(sessions="earlier").to_frame()      # doctest: +SKIP
    """
    if sessions not in ("all", "current", "earlier"):
        raise ValueError(f"`sessions` must be 'all', 'current' or 'earlier', got {sessions!r}")
    return get_scheduler().store.load(sessions=sessions, limit=limit)


class _Jobs(Mapping[str, Job]):
    """``notebook_ext.jobs``: a live read-only mapping name -> `Job`."""

    def __getitem__(self, name: str) -> Job:
        return get_scheduler().get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(get_scheduler().jobs)

    def __len__(self) -> int:
        return len(get_scheduler().jobs)

    def __repr__(self) -> str:
        return f"jobs({', '.join(repr(j) for j in get_scheduler().jobs.values())})"


jobs = _Jobs()
