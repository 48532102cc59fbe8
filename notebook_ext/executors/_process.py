"""The process executor: job code in worker processes, killable on cancel.

Each slot is a one-worker `concurrent.futures.ProcessPoolExecutor`, so killing
the worker of one cancelled job breaks only that slot's pool (which is then
replaced), never the jobs running in the other slots. Workers run at a lower
OS priority (``nice``) so the notebook stays responsive. Calls travel as
cloudpickle bytes, so functions defined in a notebook work.

Progress, metrics and output travel back over one pipe per slot (only that
slot's worker writes to it, so a worker killed mid-write can corrupt nothing
but its own pipe, which is replaced with its pool): the worker's sender
thread ships at most ten updates a second.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from ..core import JobCancelled, WorkerDied
from ..core.lowlevel import JobContext
from ._base import ExecutorBase
from ._shipping import ProgressRouter, pack_call, run_shipped, unpack_outcome

if TYPE_CHECKING:  # pragma: no cover
    from ..core import Job

# -- worker side --------------------------------------------------------------

_conn: Any = None
_conn_lock = threading.Lock()
_stop_flag: Any = None


def _send(msg: tuple) -> None:
    with _conn_lock:  # the job's thread and the sender thread both send
        _conn.send(msg)


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def _worker_init(conn: Any, stop_flag: Any, nice: int, threads: int = 0) -> None:
    global _conn, _stop_flag
    _conn, _stop_flag = conn, stop_flag
    if threads:
        # N workers each running a BLAS with one thread per core would
        # oversubscribe the machine (as joblib's loky workers avoid too).
        for var in _THREAD_VARS:
            os.environ.setdefault(var, str(threads))
    if nice and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:
            pass


def _poll(ctx: JobContext) -> None:
    if _stop_flag is not None and _stop_flag.value:
        ctx.stop = True


def _run_payload(job_id: int, payload: bytes) -> tuple:
    _send(("start", job_id, os.getpid()))
    return run_shipped(job_id, payload, _send, _poll)


# -- parent side --------------------------------------------------------------


def _start_method() -> str:
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


class ProcessExecutor(ExecutorBase):
    """Runs plain functions in worker processes (one per slot), killable.

    Parameters
    ----------
    slots : int, optional
        Worker processes at most (default: the scheduler's slots).
    nice : int
        How much to lower the workers' OS priority (default 10).
    """

    name = "process"
    compute = True

    def __init__(self, slots: int | None = None, nice: int = 10) -> None:
        super().__init__(slots)
        self.nice = nice
        self._ctx = multiprocessing.get_context(_start_method())
        self._pools: list[ProcessPoolExecutor | None] = []
        self._stop_flags: list[Any] = []
        self._free: list[int] = []
        self._conns: dict[int, Any] = {}  # slot -> read end of its pipe
        self._writers: dict[int, Any] = {}  # slot -> write end, until its worker has it
        self._wake_r: Any = None
        self._wake_w: Any = None
        self._started = False
        self._closing = False
        self._receiver: threading.Thread | None = None
        self._progress = ProgressRouter()
        self._pids: dict[int, int] = {}
        self._kill_pending: set[int] = set()
        self._slot_of: dict[int, int] = {}
        self._lock = threading.Lock()

    def prepare(self, job: "Job") -> None:
        job.shipment = pack_call(job, "a worker process")

    def _ensure_started(self) -> None:
        if self._started:
            return
        assert self.slots is not None
        self._started = True
        self._wake_r, self._wake_w = self._ctx.Pipe(duplex=False)
        self._pools = [None] * self.slots
        self._stop_flags = [self._ctx.Value("b", 0, lock=False) for _ in range(self.slots)]
        self._free = list(range(self.slots))
        self._receiver = threading.Thread(
            target=self._receive, name="notebook_ext-process-receiver", daemon=True
        )
        self._receiver.start()

    def _pool(self, slot: int) -> ProcessPoolExecutor:
        pool = self._pools[slot]
        if pool is None:
            reader, writer = self._ctx.Pipe(duplex=False)
            pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=self._ctx,
                initializer=_worker_init,
                initargs=(writer, self._stop_flags[slot], self.nice,
                          max(1, (os.cpu_count() or 1) // (self.slots or 1))),
            )
            self._pools[slot] = pool
            with self._lock:
                self._conns[slot] = reader
                self._writers[slot] = writer
            self._wake_w.send(b"")
        return pool

    def _release_writer(self, slot: int) -> None:
        # Once the worker holds the write end, the parent closes its own copy,
        # so a dead worker shows as end-of-file instead of a silent pipe.
        with self._lock:
            writer = self._writers.pop(slot, None)
        if writer is not None:
            writer.close()

    def _receive(self) -> None:
        from multiprocessing.connection import wait

        while not self._closing:
            with self._lock:
                conns = dict(self._conns)
            by_conn = {c: slot for slot, c in conns.items()}
            try:
                ready = wait(list(by_conn) + [self._wake_r], timeout=1.0)
            except (OSError, ValueError):
                continue  # a pipe was closed under us; rebuild the list
            for conn in ready:
                try:
                    msg = conn.recv()  # type: ignore[union-attr, call-arg]
                except (EOFError, OSError, ValueError):
                    if conn is not self._wake_r:
                        self._drop_conn(by_conn.get(conn), conn)
                    continue
                if conn is not self._wake_r:
                    self._handle(msg)  # type: ignore[arg-type]

    def _drop_conn(self, slot: int | None, conn: Any) -> None:
        with self._lock:
            if slot is not None and self._conns.get(slot) is conn:
                del self._conns[slot]
        conn.close()

    def _handle(self, msg: tuple) -> None:
        kind, job_id = msg[0], msg[1]
        if kind == "start":
            with self._lock:
                self._pids[job_id] = msg[2]
                kill = job_id in self._kill_pending
            if kill:
                self._kill(job_id)
        elif kind == "progress":
            self._progress.deliver(msg)

    async def run(self, job: "Job") -> Any:
        self._ensure_started()
        slot = self._free.pop()
        self._slot_of[job.id] = slot
        self._progress.track(job)
        self._stop_flags[slot].value = 1 if job.ctx.stop else 0
        payload = job.shipment
        try:
            fut = self._pool(slot).submit(_run_payload, job.id, payload)
            self._release_writer(slot)  # the worker process exists now
            outcome = await asyncio.wrap_future(fut)
        except BrokenProcessPool:
            pid = self._pids.get(job.id)
            code = await self._exitcode(slot, pid)
            self._replace(slot)
            if job.ctx.cancel_reason is not None:
                raise JobCancelled(job.ctx.cancel_reason) from None
            raise WorkerDied(
                f"the worker process{f' (pid {pid})' if pid else ''} died while running "
                f"{job.name!r}{code}"
            ) from None
        except asyncio.CancelledError:
            self._kill(job.id)
            self._replace(slot)
            raise
        finally:
            self._progress.forget(job)
            self._slot_of.pop(job.id, None)
            with self._lock:
                self._pids.pop(job.id, None)
                self._kill_pending.discard(job.id)
            self._free.append(slot)
        return unpack_outcome(job.ctx, outcome)

    async def _exitcode(self, slot: int, pid: int | None) -> str:
        pool = self._pools[slot]
        procs = getattr(pool, "_processes", None) or {}
        proc = procs.get(pid) if pid else None
        for _ in range(100):  # up to 1 s for the exit to be reaped, without blocking the loop
            if proc is None or proc.exitcode is not None:
                break
            await asyncio.sleep(0.01)
        code = getattr(proc, "exitcode", None)
        if code is None:
            return " (killed or crashed)"
        if code < 0:
            try:
                return f" (killed by {signal.Signals(-code).name})"
            except ValueError:
                return f" (signal {-code})"
        return f" (exit code {code})"

    def _replace(self, slot: int) -> None:
        pool = self._pools[slot]
        self._pools[slot] = None
        with self._lock:
            conn = self._conns.pop(slot, None)
        if conn is not None:
            conn.close()
        self._release_writer(slot)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _kill(self, job_id: int) -> None:
        with self._lock:
            pid = self._pids.get(job_id)
            if pid is None:
                self._kill_pending.add(job_id)
                return
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def interrupt(self, job: "Job") -> None:
        if job.id in self._slot_of:
            self._kill(job.id)

    def request_stop(self, job: "Job") -> None:
        slot = self._slot_of.get(job.id)
        if slot is not None:
            self._stop_flags[slot].value = 1

    def worker_pid(self, job: "Job") -> int | None:
        """Process id of the worker running ``job`` (None when it runs nowhere)."""
        with self._lock:
            return self._pids.get(job.id)

    def worker_pids(self) -> list[int]:
        """Process ids of the live worker processes (for tests and tools)."""
        pids: list[int] = []
        for pool in self._pools:
            procs = getattr(pool, "_processes", None) or {}
            pids.extend(p for p, proc in procs.items() if proc.is_alive())
        return pids

    def shutdown(self) -> None:
        for job_id in list(self._slot_of):
            self._kill(job_id)
        for slot, pool in enumerate(self._pools):
            if pool is None:
                continue
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                if proc.is_alive():
                    proc.kill()
            pool.shutdown(wait=True, cancel_futures=True)
            self._pools[slot] = None
        if self._started:
            self._closing = True
            try:
                self._wake_w.send(b"")
            except (OSError, ValueError):
                pass
            if self._receiver is not None:
                self._receiver.join(timeout=2)
            with self._lock:
                conns, self._conns = list(self._conns.values()), {}
            for conn in conns + [self._wake_r, self._wake_w]:
                conn.close()
            for slot in list(self._writers):
                self._release_writer(slot)

