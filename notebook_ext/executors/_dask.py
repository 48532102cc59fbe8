"""The Dask executor: the same jobs on a `distributed` cluster.

Scheduling stays ours (priorities, timeouts, retries, dependencies); Dask
runs each job as one task. ``dask.distributed`` is imported only here, and
only when a Dask executor is created (`use_dask`): without it nothing opens a
network listener.

How progress gets home: job code on a worker reports into a local
`JobContext`; a sender thread there ships what changed, at most 10 times a
second, with ``Worker.log_event`` on a per-scheduler topic, and the client
subscribes to that topic (``Client.subscribe_topic``). Events ride the
worker's existing batched stream to the scheduler and are pushed on to
subscribed clients: no polling, no round trip per update, unlike a
``Queue`` or ``Variable``.

Cancel: Dask cannot stop a task that is running in a worker thread
(dask/distributed #4694). We cancel the future (a queued task never runs)
and set a ``distributed.Event`` the worker's sender thread watches; the job
code then stops at its next `progress` / `report` / `checkpoint`. The job is
marked cancelled at once and its card says so.

A worker that dies fails the job with `WorkerDied` (owned clusters set
``allowed-failures`` to 0, so Dask does not silently re-run it); our
``retries`` then decide.

What travels by msgpack (events, task keys) is made plain first: a lone
surrogate or an integer past 64 bits there would break the worker's (or the
client's) stream to the scheduler. An event the client cannot use is counted
in `DaskExecutor.event_errors` (and told once), never raised.
"""

from __future__ import annotations

import asyncio
import numbers
import threading
import uuid
import warnings
from typing import TYPE_CHECKING, Any, Callable, Protocol, cast

from ..core import JobCancelled, WorkerDied
from ..core.lowlevel import ItemPlace, JobContext, clean, describe_error, require
from ._base import ExecutorBase
from ._shipping import (ProgressRouter, pack_call, pack_function, run_chunk, run_shipped, unpack_chunk,
                        unpack_outcome)

if TYPE_CHECKING:  # pragma: no cover
    from ..core import Job


class _Flag(Protocol):
    """What this module uses of a ``distributed.Event`` (a flag the whole
    cluster shares), whose own methods carry no annotations."""

    def set(self) -> None: ...

    def is_set(self) -> bool: ...


# -- worker side --------------------------------------------------------------


def _wire(value: Any) -> Any:
    """``value`` as msgpack carries it: strings clean, numbers plain (an
    integer past 64 bits, or no number at all, becomes a float or None)."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, (tuple, list)):
        return [_wire(v) for v in value]
    if isinstance(value, dict):
        return {clean(str(k)): _wire(v) for k, v in value.items()}
    if value is None or isinstance(value, float):
        return value
    try:
        if isinstance(value, numbers.Integral) and -2**63 <= int(value) < 2**64:
            return int(value)
        return float(value)
    except Exception:  # noqa: BLE001 - a user's object in a number's place
        return None


def _dask_run(job_id: int, topic: str, cancel_event: str, stop_event: str, payload: bytes) -> tuple[Any, ...]:
    from distributed import Event, get_worker

    worker = get_worker()
    worker.log_event(topic, ("start", job_id, worker.address))
    # Bound to the worker's client: usable from the sender thread.
    cancel = cast("Callable[..., _Flag]", Event)(cancel_event, client=worker.client)
    stop = cast("Callable[..., _Flag]", Event)(stop_event, client=worker.client)
    ticks = [0]

    def poll(ctx: JobContext) -> None:
        ticks[0] += 1
        if ticks[0] % 3:  # control flags cost a scheduler round trip: every third update
            return
        if cancel.is_set():
            ctx.cancel_reason = ctx.cancel_reason or "cancelled"
        if stop.is_set():
            ctx.stop = True

    def send(msg: tuple[Any, ...]) -> None:
        worker.log_event(topic, _wire(msg))

    outcome = run_shipped(job_id, payload, send, poll)
    if outcome[-1] is not None:  # the last update also travels as an event, for live observers
        send(("progress",) + outcome[-1])
    send(("end", job_id))  # after the last update (see `ProgressRouter`)
    return outcome


# -- client side --------------------------------------------------------------


class DaskExecutor(ExecutorBase):
    """Runs jobs on a Dask cluster (see the module docstring for cancel).

    Parameters
    ----------
    address_or_client : str, Client or None
        None starts a ``LocalCluster`` (worker processes on 127.0.0.1,
        owned and closed with the scheduler; Dask's worker profiler off, as
        it costs a few per cent of every task); a string connects to that
        scheduler address; a ``Client`` is used as it is.
    **cluster_kwargs
        Passed to ``LocalCluster`` (e.g. ``n_workers=2``).
    """

    name = "dask"
    item_place: ItemPlace = "workers"
    compute = False  # the cluster's own size is this executor's slots

    def __init__(self, address_or_client: Any = None, **cluster_kwargs: Any) -> None:
        super().__init__(None)
        dask = require("dask", "'notebook_ext[dask]'", "the dask executor")
        distributed = require("distributed", "'notebook_ext[dask]'", "the dask executor")
        Client, LocalCluster = distributed.Client, distributed.LocalCluster

        self.cluster = None
        if address_or_client is None:
            cluster_kwargs.setdefault("n_workers", 2)
            cluster_kwargs.setdefault("threads_per_worker", 1)
            cluster_kwargs.setdefault("processes", True)
            cluster_kwargs.setdefault("host", "127.0.0.1")
            cluster_kwargs.setdefault("dashboard_address", "127.0.0.1:0")
            # Dask's statistical profiler samples every worker's stack every 10 ms for the
            # dashboard's Profile page: 4% of a search's time on 2 cores. Off in the cluster
            # we start; a cluster of the user's own (an address, a Client) is left as it is.
            with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                                  "distributed.worker.profile.enabled": False}):
                self.cluster = LocalCluster(**cluster_kwargs)
            self.client = Client(self.cluster, set_as_default=False)
        elif isinstance(address_or_client, str):
            self.client = Client(address_or_client, set_as_default=False)
        else:
            self.client = address_or_client
        self.topic = f"notebook_ext-{uuid.uuid4().hex[:8]}"
        self._progress = ProgressRouter()
        self._starts: dict[int, list[str]] = {}
        self._running: dict[int, tuple[Any, str, str]] = {}  # job id -> (future, cancel, stop)
        self.event_errors = 0  #: events from the topic the client could not use (and survived)
        self.client.subscribe_topic(self.topic, self._on_event)
        self.slots = max(1, sum(self.client.nthreads().values()))

    def bind(self, host: Any) -> None:
        self.host = host  # keep the cluster's slot count

    def describe(self) -> dict[str, Any]:
        try:
            return {"dashboard_link": self.client.dashboard_link, "workers": len(self.client.nthreads())}
        except Exception:  # a cluster gone or unreachable has no link or workers to show
            return {}

    def prepare(self, job: "Job") -> None:
        job.shipment = pack_call(job, "the Dask cluster")

    def _on_event(self, event: Any) -> None:
        """An event on our topic (on the client's loop): whatever it holds,
        this returns; what it cannot use is counted, and told once."""
        try:
            _, msg = event
            kind, job_id = msg[0], msg[1]
            if kind == "start":
                self._starts.setdefault(job_id, []).append(msg[2])
            elif kind in ("progress", "end"):
                self._progress.deliver(msg)
            else:
                raise ValueError(f"unknown kind {kind!r}")
        except Exception as exc:  # noqa: BLE001 - nothing may end this callback
            self.event_errors += 1
            if self.event_errors == 1:
                warnings.warn(f"notebook_ext: an event on {self.topic} could not be used "
                              f"({describe_error(exc)}); later ones are only counted in event_errors",
                              RuntimeWarning, stacklevel=1)

    async def run(self, job: "Job") -> Any:
        loop = asyncio.get_running_loop()
        key = f"nbx-{job.name}-{uuid.uuid4().hex[:8]}"  # names are clean text (the registry sees to it)
        cancel_name, stop_name = f"{key}-cancel", f"{key}-stop"
        self._progress.track(job, end=True)
        link = self.describe().get("dashboard_link")
        if link:
            job.set_facts(dashboard_link=link)
        fut = self.client.submit(_dask_run, job.id, self.topic, cancel_name, stop_name, job.shipment,
                                 key=key, pure=False)
        self._running[job.id] = (fut, cancel_name, stop_name)
        try:
            await _finished(fut)
            status = fut.status
            if status == "cancelled":
                raise JobCancelled(job.ctx.cancel_reason or "cancelled on the cluster")
            if status == "error":  # our wrapper catches the job's own errors: this is the cluster's
                exc = await loop.run_in_executor(None, fut.exception)
                if type(exc).__name__ == "KilledWorker":
                    where = ", ".join(self._starts.get(job.id, [])) or "its worker"
                    raise WorkerDied(f"the Dask worker ({where}) died while running {job.name!r}") from None
                raise exc
            outcome = await loop.run_in_executor(None, fut.result)
            if await self._progress.drained(job):  # the last update came as an event too
                outcome = tuple(outcome[:-1]) + (None,)
            return unpack_outcome(job.ctx, outcome)
        finally:
            self._progress.forget(job)
            self._running.pop(job.id, None)
            self._starts.pop(job.id, None)
            if job.ctx.cancel_reason is not None:
                loop.run_in_executor(None, self._signal, cancel_name)

    def prepare_items(self, stage: Any) -> None:
        """Pack a work-item stage's function once, at submit time."""
        stage.shipment = pack_function(stage.func, "a Dask worker")

    def item_runner(self, cpu: int | None = None) -> "DaskItemRunner":
        """Work items in chunks on this cluster (see `notebook_ext.core.Stage`);
        as many chunks at once as the cluster has threads (or ``cpu``)."""
        return DaskItemRunner(self.client, min(cpu or self.slots or 1, self.slots or 1))

    def worker_of(self, job: "Job") -> str | None:
        """Address of the Dask worker that started ``job`` (None before it started)."""
        starts = self._starts.get(job.id)
        return starts[-1] if starts else None

    def _signal(self, name: str) -> None:
        from distributed import Event

        try:
            cast("Callable[..., _Flag]", Event)(name, client=self.client).set()
        except Exception:  # a cluster shutting down: the job is cancelled on our side all the same
            pass

    def interrupt(self, job: "Job") -> None:
        running = self._running.get(job.id)
        if running is None:
            return  # not submitted yet: the dispatcher checks the flag before run()
        fut, cancel_name, _ = running
        job.set_facts(cancel_note="Dask cannot stop a running task: it stops at its next "
                                  "progress/report/checkpoint; the job is cancelled now")

        def cancel() -> None:
            self._signal(cancel_name)
            try:
                self.client.cancel(fut, force=True)
            except Exception:  # a cluster shutting down: the job is cancelled on our side all the same
                pass

        threading.Thread(target=cancel, name="notebook_ext-dask-cancel", daemon=True).start()

    def request_stop(self, job: "Job") -> None:
        running = self._running.get(job.id)
        if running is not None:
            threading.Thread(target=self._signal, args=(running[2],), name="notebook_ext-dask-stop",
                             daemon=True).start()

    def shutdown(self) -> None:
        try:
            self.client.unsubscribe_topic(self.topic)
        except Exception:  # a client already closed has no subscription left
            pass
        if self.cluster is not None:
            try:
                self.client.close(timeout=5)
            finally:
                self.cluster.close(timeout=10)


async def _finished(fut: Any) -> None:
    """Await a distributed future's end on this loop without blocking it
    (its callback runs on the client's thread)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not done.done():
            done.set_result(None)

    fut.add_done_callback(lambda _f: loop.call_soon_threadsafe(settle))
    await done


class DaskItemRunner:
    """Chunks of work items as Dask tasks; a cancel cancels them on the
    cluster (a chunk already running finishes there, its results dropped)."""

    #: a task's round trip through the Dask scheduler costs 2-10 ms of CPU here (shared with
    #: the workers on a small machine): chunks of 0.2 s keep that a few per cent
    chunk_seconds = 0.2

    def __init__(self, client: Any, slots: int) -> None:
        self.client = client
        self.slots = slots
        self._futures: set[Any] = set()
        self._killed = False
        self._payload: Any = None

    def store(self, shipment: bytes) -> tuple[str, Any]:
        """Scatter the packed function once: every chunk refers to the same
        data on the cluster (a blocking call: run it off the loop)."""
        self._payload = self.client.scatter(shipment, broadcast=True, hash=False)
        return (uuid.uuid4().hex, self._payload)

    async def run_chunk(self, payload: tuple[str, Any], items: list[Any],
                        retries: int) -> tuple[list[tuple[bool, Any]], str]:
        import cloudpickle

        if self._killed:
            raise JobCancelled("the items were cancelled")
        loop = asyncio.get_running_loop()
        fut = self.client.submit(run_chunk, payload, cloudpickle.dumps(items), retries, pure=False,
                                 key=f"nbx-items-{uuid.uuid4().hex[:12]}")
        self._futures.add(fut)
        try:
            await _finished(fut)
            if fut.status == "cancelled":
                raise JobCancelled("the items were cancelled on the cluster")
            if fut.status == "error":
                exc = await loop.run_in_executor(None, fut.exception)
                if type(exc).__name__ == "KilledWorker":
                    raise WorkerDied("the Dask worker running this chunk of items died")
                raise exc
            blob = await loop.run_in_executor(None, fut.result)
        finally:
            self._futures.discard(fut)
        return unpack_chunk(blob)

    def kill(self) -> None:
        self._killed = True
        futures, self._futures = list(self._futures), set()
        if futures:
            def cancel() -> None:
                try:
                    self.client.cancel(futures, force=True)
                except Exception:  # a cluster shutting down: the items are cancelled on our side all the same
                    pass

            threading.Thread(target=cancel, name="notebook_ext-dask-cancel", daemon=True).start()

    def close(self) -> None:
        self._futures.clear()
        self._payload = None  # the cluster forgets the scattered function
