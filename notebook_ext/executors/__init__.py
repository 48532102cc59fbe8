"""Executors: where job code runs (see `notebook_ext.core.lowlevel.Executor`).

``loop`` (coroutines on the scheduler's loop), ``thread``, ``process``
(killable worker processes) and ``dask`` (a cluster, with `use_dask`).
"""

from __future__ import annotations

from typing import Any, cast

from ..core import Scheduler, get_scheduler
from ._base import ExecutorBase
from ._loop import LoopExecutor
from ._process import ProcessExecutor
from ._thread import ThreadExecutor

__all__ = ["ExecutorBase", "LoopExecutor", "ProcessExecutor", "ThreadExecutor", "use_dask"]


def use_dask(address_or_client: Any = None, *, scheduler: Scheduler | None = None,
             **cluster_kwargs: Any) -> Any:
    """Add the ``dask`` executor: jobs with ``executor="dask"`` run on a cluster.

    With no address, starts a ``distributed.LocalCluster`` (worker processes
    on 127.0.0.1, closed with the scheduler); with an address, connects to
    that Dask scheduler. Returns the ``distributed.Client``.

    Examples
    --------
    >>> client = use_dask(n_workers=2)                      # doctest: +SKIP
    >>> submit(fit, X, y, executor="dask").result()         # doctest: +SKIP
    """
    from ._dask import DaskExecutor  # dask itself is imported (or its absence said in one line) there
    sched = scheduler or get_scheduler()
    old = sched.executors.get("dask")
    if old is not None:
        if address_or_client is None and not cluster_kwargs:
            return cast(DaskExecutor, old).client
        old.shutdown()
    executor = DaskExecutor(address_or_client, **cluster_kwargs)
    sched.add_executor(executor)
    return executor.client
