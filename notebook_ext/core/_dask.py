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
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import TYPE_CHECKING, Any

from ._context import _current, install_output_capture
from ._executors import Executor
from ._job import JobCancelled, JobContext, WorkerDied

if TYPE_CHECKING:  # pragma: no cover
    from ._job import Job


# -- worker side --------------------------------------------------------------


def _dask_run(job_id: int, topic: str, cancel_event: str, stop_event: str, payload: bytes) -> tuple:
    import cloudpickle
    from distributed import Event, get_worker

    from ._process import _ShippedOutput, _Shipper

    worker = get_worker()
    ctx = JobContext(job_id)
    ctx.output = _ShippedOutput()
    worker.log_event(topic, ("start", job_id, worker.address))
    shipper = _Shipper(ctx, job_id)
    # Bound to the worker's client: usable from the sender thread.
    cancel = Event(cancel_event, client=worker.client)
    stop = Event(stop_event, client=worker.client)

    def ship() -> None:
        n = 0
        while not shipper.finished.wait(0.1):
            n += 1
            if n % 3 == 0:  # control flags: a scheduler round trip, so less often
                try:
                    if cancel.is_set():
                        ctx.cancel_reason = ctx.cancel_reason or "cancelled"
                    if stop.is_set():
                        ctx.stop = True
                except Exception:
                    pass
            delta = shipper.delta()
            if delta is not None:
                worker.log_event(topic, ("progress",) + delta)

    sender = threading.Thread(target=ship, daemon=True)
    sender.start()
    install_output_capture()
    token = _current.set(ctx)
    try:
        fn, args, kwargs = cloudpickle.loads(payload)
        value = fn(*args, **kwargs)
    finally:
        _current.reset(token)
        shipper.finished.set()
        sender.join()
        last = shipper.delta()
        if last is not None:
            worker.log_event(topic, ("progress",) + last)
    return ("ok", value)


# -- client side --------------------------------------------------------------


class DaskExecutor(Executor):
    """Runs jobs on a Dask cluster (see the module docstring for cancel).

    Parameters
    ----------
    address_or_client : str, Client or None
        None starts a ``LocalCluster`` (worker processes on 127.0.0.1,
        owned and closed with the scheduler); a string connects to that
        scheduler address; a ``Client`` is used as it is.
    **cluster_kwargs
        Passed to ``LocalCluster`` (e.g. ``n_workers=2``).
    """

    name = "dask"
    compute = False  # the cluster's own size is this executor's slots

    def __init__(self, address_or_client: Any = None, **cluster_kwargs: Any) -> None:
        super().__init__(None)
        import dask
        from distributed import Client, LocalCluster

        self.cluster = None
        if address_or_client is None:
            cluster_kwargs.setdefault("n_workers", 2)
            cluster_kwargs.setdefault("threads_per_worker", 1)
            cluster_kwargs.setdefault("processes", True)
            cluster_kwargs.setdefault("host", "127.0.0.1")
            cluster_kwargs.setdefault("dashboard_address", "127.0.0.1:0")
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                self.cluster = LocalCluster(**cluster_kwargs)
            self.client = Client(self.cluster, set_as_default=False)
        elif isinstance(address_or_client, str):
            self.client = Client(address_or_client, set_as_default=False)
        else:
            self.client = address_or_client
        self.topic = f"notebook_ext-{uuid.uuid4().hex[:8]}"
        self._contexts: dict[int, JobContext] = {}
        self._starts: dict[int, list[str]] = {}
        self._futures: dict[int, Any] = {}
        self.client.subscribe_topic(self.topic, self._on_event)
        self.slots = max(1, sum(self.client.nthreads().values()))

    def bind(self, scheduler: Any) -> None:
        self.scheduler = scheduler  # keep the cluster's slot count

    def describe(self) -> dict[str, Any]:
        try:
            return {"dashboard_link": self.client.dashboard_link, "workers": len(self.client.nthreads())}
        except Exception:
            return {}

    def prepare(self, job: "Job") -> None:
        from ._process import pack_call

        pack_call(job, "the Dask cluster")

    def _on_event(self, event: Any) -> None:
        from ._process import _apply

        _, msg = event
        kind, job_id = msg[0], msg[1]
        if kind == "start":
            self._starts.setdefault(job_id, []).append(msg[2])
        elif kind == "progress":
            ctx = self._contexts.get(job_id)
            if ctx is not None:
                _apply(ctx, msg[2:])

    async def run(self, job: "Job") -> Any:
        from distributed import Event

        loop = asyncio.get_running_loop()
        key = f"nbx-{job.name}-{uuid.uuid4().hex[:8]}"
        cancel_name, stop_name = f"{key}-cancel", f"{key}-stop"
        self._contexts[job.id] = job.ctx
        link = self.describe().get("dashboard_link")
        if link:
            job.info["dashboard_link"] = link
        fut = self.client.submit(
            _dask_run, job.id, self.topic, cancel_name, stop_name, job.info["_payload"],
            key=key, pure=False,
        )
        job.info["_dask"] = (fut, cancel_name, stop_name)
        self._futures[job.id] = fut
        done: asyncio.Future = loop.create_future()
        def settle() -> None:
            if not done.done():
                done.set_result(None)

        fut.add_done_callback(lambda _f: loop.call_soon_threadsafe(settle))
        try:
            await done
            status = fut.status
            if status == "cancelled" or job.ctx.cancel_reason is not None:
                raise JobCancelled(job.ctx.cancel_reason or "cancelled on the cluster")
            if status == "error":
                exc = await loop.run_in_executor(None, fut.exception)
                if type(exc).__name__ == "KilledWorker":
                    where = ", ".join(self._starts.get(job.id, [])) or "its worker"
                    raise WorkerDied(f"the Dask worker ({where}) died while running {job.name!r}") from None
                if isinstance(exc, JobCancelled):
                    raise exc
                tb = await loop.run_in_executor(None, fut.traceback)
                if tb is not None:
                    import traceback as _tb

                    exc.__notebook_ext_traceback__ = "".join(  # type: ignore[union-attr]
                        _tb.format_exception(type(exc), exc, tb))
                raise exc  # type: ignore[misc]
            outcome = await loop.run_in_executor(None, fut.result)
            return outcome[1]
        finally:
            self._contexts.pop(job.id, None)
            self._futures.pop(job.id, None)
            self._starts.pop(job.id, None)
            job.info.pop("_dask", None)
            if job.ctx.cancel_reason is not None:
                loop.run_in_executor(None, self._signal, cancel_name)

    def _signal(self, name: str) -> None:
        from distributed import Event

        try:
            Event(name, client=self.client).set()
        except Exception:
            pass

    def interrupt(self, job: "Job") -> None:
        fut = self._futures.get(job.id)
        if fut is None:
            return
        job.info["cancel_note"] = ("Dask cannot stop a running task: it stops at its next "
                                   "progress/report/checkpoint; the job is cancelled now")
        name = job.info.get("_dask", (None, None, None))[1]

        def cancel() -> None:
            if name:
                self._signal(name)
            try:
                self.client.cancel(fut, force=True)
            except Exception:
                pass

        threading.Thread(target=cancel, daemon=True).start()

    def request_stop(self, job: "Job") -> None:
        stop_name = job.info.get("_dask", (None, None, None))[2]
        if stop_name:
            threading.Thread(target=self._signal, args=(stop_name,), daemon=True).start()

    def shutdown(self) -> None:
        try:
            self.client.unsubscribe_topic(self.topic)
        except Exception:
            pass
        if self.cluster is not None:
            try:
                self.client.close(timeout=5)
            finally:
                self.cluster.close(timeout=10)
