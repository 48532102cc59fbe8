"""The process executor: job code in worker processes, killable on cancel.

Each slot is a one-worker `concurrent.futures.ProcessPoolExecutor`, so killing
the worker of one cancelled job breaks only that slot's pool (which is then
replaced), never the jobs running in the other slots. Workers run at a lower
OS priority (``nice``) so the notebook stays responsive. Calls travel as
cloudpickle bytes, so functions defined in a notebook work.

Progress, metrics and output travel back over one pipe per slot (only that
slot's worker writes to it, so a worker killed mid-write can corrupt nothing
but its own pipe, which is replaced with its pool): the worker's sender
thread ships at most ten updates a second. One receiver thread reads all the
pipes; nothing a worker sends, and no pipe torn down under it, ends it.

Workers ignore SIGINT: a kernel "Interrupt" signals the kernel's whole
process group, workers included (the forkserver ignores it already). A
worker exits as soon as the process that started it is gone, even SIGKILLed:
a thread waits on multiprocessing's parent sentinel, a pipe only that parent
holds. (Not ``PR_SET_PDEATHSIG``: a worker's parent is the forkserver, not
the kernel, and the forkserver's death signal would fire when the *thread*
that started it, a scheduler's loop thread, ends.) Without workers the
forkserver sees end-of-file on its "alive" pipe and exits, and then so does
multiprocessing's resource tracker. A worker stuck in C code that holds the
GIL exits when it lets go of it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import signal
import threading
import weakref
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, cast

from ..core import JobCancelled, WorkerDied
from ..core.lowlevel import ItemPlace, JobContext
from ._base import ExecutorBase
from ._shipping import (ProgressRouter, pack_call, pack_function, run_chunk, run_shipped, unpack_chunk,
                        unpack_outcome)

if TYPE_CHECKING:  # pragma: no cover
    from multiprocessing.connection import Connection

    from ..core import Job

# -- worker side --------------------------------------------------------------

_conn: Any = None
_conn_lock = threading.Lock()
_stop_flag: Any = None


def _send(msg: tuple[Any, ...]) -> None:
    with _conn_lock:  # the job's thread and the sender thread both send
        _conn.send(msg)


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def _exit_with_parent() -> None:
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    assert parent is not None
    wait([parent.sentinel])  # end-of-file: the parent is gone
    os._exit(1)


def _worker_init(conn: Any, stop_flag: Any, nice: int, threads: int = 0) -> None:
    global _conn, _stop_flag
    _conn, _stop_flag = conn, stop_flag
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, name="notebook_ext-parent-watch", daemon=True).start()
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


def _run_payload(job_id: int, payload: bytes) -> tuple[Any, ...]:
    _send(("start", job_id, os.getpid()))
    outcome = run_shipped(job_id, payload, _send, _poll)
    _send(("end", job_id))  # after the last update on this pipe (see `ProgressRouter`)
    return outcome


# -- parent side --------------------------------------------------------------


def _start_method() -> str:
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


def _main_problem() -> str | None:
    """Why a new worker cannot re-run the main module, as spawn and forkserver
    workers do (``python - < script.py``: it is ``<stdin>``), if it cannot."""
    from multiprocessing import spawn

    path = spawn.get_preparation_data("check").get("init_main_from_path")
    if path is None or os.path.exists(path):
        return None
    return (f"multiprocessing re-runs the main module in each worker and {path!r} is not a "
            "file; run this code from a file, or use executor='thread'")


def _one_reader(proc: Any) -> None:
    """Let one thread at a time read a forkserver worker's exit status.

    The status comes over a socket that only one reader can drain: when two
    threads poll at once (a pool joining its dead worker while another pool
    starts a process, which polls every child), the loser reads end-of-file
    and CPython records exit code 255 instead of the real one.
    """
    popen = getattr(proc, "_popen", None)
    if popen is None or getattr(popen, "_nbx_one_reader", False) or not hasattr(popen, "sentinel"):
        return
    from multiprocessing.connection import wait

    lock = threading.Lock()
    poll = type(popen).poll
    # A weak reference: a strong one (or the bound method) would make the
    # Popen a reference cycle, so its two fds would wait for the cyclic GC.
    ref = weakref.ref(popen)

    def poll_one_at_a_time(flag: int = os.WNOHANG) -> Any:
        this = ref()
        if this is None:
            return None
        if flag != os.WNOHANG and this.returncode is None:
            wait([this.sentinel])  # block outside the lock: others may still poll
        with lock:
            return poll(this, os.WNOHANG)

    popen.poll = poll_one_at_a_time
    popen._nbx_one_reader = True


def _guard_workers(pool: ProcessPoolExecutor) -> None:
    """`_one_reader` for each worker of ``pool``. A function of its own so
    that no worker's `Process` stays in the caller's frame: a job's error
    keeps that frame in its traceback, and the `Process` of a dead worker
    holds two fds until it is freed."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        _one_reader(proc)


def _exit_code(pool: ProcessPoolExecutor | None, pid: int | None) -> int | None:
    """The exit code the pool's own join stored for worker ``pid`` (any
    worker if None), or None while it has not reaped it. Read, not polled:
    polling from this thread too would race that join for the status."""
    procs = getattr(pool, "_processes", None) or {}
    proc = procs.get(pid) if pid else next(iter(procs.values()), None)
    return getattr(getattr(proc, "_popen", None), "returncode", None)


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
    item_place: ItemPlace = "workers"

    def __init__(self, slots: int | None = None, nice: int = 10) -> None:
        super().__init__(slots)
        self.nice = nice
        self._ctx = multiprocessing.get_context(_start_method())
        self._pools: list[ProcessPoolExecutor | None] = []
        self._stop_flags: list[Any] = []
        self._free: list[int] = []
        self._conns: dict[int, Any] = {}  # slot -> read end of its pipe
        self._retired: list[Any] = []  # read ends for the receiver to close
        self._writers: dict[int, Any] = {}  # slot -> write end, until its worker has it
        self._wake_r: Any = None
        self._wake_w: Any = None
        self._started = False
        self._closing = False
        self._receiver: threading.Thread | None = None
        self.receiver_errors = 0  #: unexpected errors the receiver thread caught and survived
        self._progress = ProgressRouter()
        self._pids: dict[int, int] = {}
        self._kill_pending: set[int] = set()
        self._slot_of: dict[int, int] = {}
        self._lock = threading.Lock()
        self._idle_item_pools: dict[int, ProcessPoolExecutor] = {}  # warm workers for the next run of items
        self._items_closed = False

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
        while not self._closing:
            try:
                self._receive_once()
            except Exception:  # noqa: BLE001 - nothing may end this thread
                self.receiver_errors += 1

    def _receive_once(self) -> None:
        from multiprocessing.connection import wait

        # Only this thread closes read ends, so none is closed under a wait or a recv.
        with self._lock:
            retired, self._retired = self._retired, []
            by_conn = {c: slot for slot, c in self._conns.items()}
        for conn in retired:
            conn.close()
        # every one a pipe end (`Pipe`): no sockets, no sentinels
        for conn in cast("list[Connection[Any, Any]]", wait(list(by_conn) + [self._wake_r], timeout=1.0)):
            if conn is self._wake_r:
                conn.recv_bytes()
                continue
            try:
                data = conn.recv_bytes()
            except EOFError:  # its worker is gone
                self._drop_conn(by_conn[conn], conn)
                continue
            except Exception:  # noqa: BLE001 - e.g. a pipe that broke mid-message
                self.receiver_errors += 1
                self._drop_conn(by_conn[conn], conn)
                continue
            try:  # a whole message was read, so a bad one leaves the pipe in step
                self._handle(pickle.loads(data))
            except Exception:  # noqa: BLE001
                self.receiver_errors += 1

    def _drop_conn(self, slot: int, conn: Any) -> None:
        with self._lock:
            if self._conns.get(slot) is conn:
                del self._conns[slot]
            jobs = [job_id for job_id, s in self._slot_of.items() if s == slot]
        conn.close()
        for job_id in jobs:  # nothing more comes from this pipe
            self._progress.ended(job_id)

    def _handle(self, msg: tuple[Any, ...]) -> None:
        kind, job_id = msg[0], msg[1]
        if kind == "start":
            with self._lock:
                self._pids[job_id] = msg[2]
                kill = job_id in self._kill_pending
            if kill:
                self._kill(job_id)
        elif kind in ("progress", "end"):
            self._progress.deliver(msg)

    async def run(self, job: "Job") -> Any:
        self._ensure_started()
        slot = self._free.pop()
        self._slot_of[job.id] = slot
        self._progress.track(job)
        self._stop_flags[slot].value = 1 if job.ctx.stop else 0
        payload = job.shipment
        try:
            pool = self._pool(slot)
            fut = pool.submit(_run_payload, job.id, payload)
            self._release_writer(slot)  # the worker process exists now
            _guard_workers(pool)
            outcome = await asyncio.wrap_future(fut)
            await self._progress.drained(job)
        except BrokenProcessPool:
            try:
                pid, code = await self._death(slot, job.id)
            finally:  # cancelled while waiting for the report: replaced all the same
                self._replace(slot)
            if job.ctx.cancel_reason is not None:
                raise JobCancelled(job.ctx.cancel_reason) from None
            if pid is None:  # it never started the job
                problem = _main_problem() or "its error went to this process's stderr"
                raise WorkerDied(f"the worker process could not start{code}: {problem}") from None
            raise WorkerDied(
                f"the worker process (pid {pid}) died while running {job.name!r}{code}"
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

    async def _death(self, slot: int, job_id: int) -> tuple[int | None, str]:
        """The dead worker's pid (None if it never started the job) and how it
        ended, once the receiver has read its pipe to the end and the pool has
        reaped it (up to 1 s, without blocking the loop)."""
        pid, code = None, None
        for _ in range(100):
            with self._lock:
                drained = slot not in self._conns
                pid = self._pids.get(job_id)
            code = _exit_code(self._pools[slot], pid)
            if drained and code is not None:
                break
            await asyncio.sleep(0.01)
        if code is None:
            return pid, " (killed or crashed)"
        if code < 0:
            try:
                return pid, f" (killed by {signal.Signals(-code).name})"
            except ValueError:
                return pid, f" (signal {-code})"
        return pid, f" (exit code {code})"

    def _replace(self, slot: int) -> None:
        pool = self._pools[slot]
        self._pools[slot] = None
        with self._lock:
            conn = self._conns.pop(slot, None)
            if conn is not None:
                self._retired.append(conn)
        if conn is not None:
            try:
                self._wake_w.send(b"")  # the receiver closes it
            except (OSError, ValueError):
                pass  # shut down meanwhile: `shutdown` closes it
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

    def prepare_items(self, stage: Any) -> None:
        """Pack a work-item stage's function once, at submit time (as
        `prepare` packs a job); `TypeError` naming what cannot go."""
        stage.shipment = pack_function(stage.func, "a worker process")

    def item_runner(self, cpu: int | None = None) -> "ProcessItemRunner":
        """Worker processes of their own for one run of work items (see
        `notebook_ext.core.Stage`): ``cpu`` of them (default: the cores).
        A run that ends normally hands its warm workers to the next run; a
        cancelled one kills them."""
        n = cpu or os.cpu_count() or 1
        with self._lock:
            pool = self._idle_item_pools.pop(n, None)
        return ProcessItemRunner(self, n, pool)

    def _item_pool(self, n: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=n, mp_context=self._ctx, initializer=_worker_init,
                                   initargs=(None, None, self.nice, max(1, (os.cpu_count() or 1) // n)))

    def _park_item_pool(self, n: int, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._items_closed or n in self._idle_item_pools:
                extra = pool
            else:
                self._idle_item_pools[n], extra = pool, None
        if extra is not None:
            extra.shutdown(wait=False, cancel_futures=True)

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
        with self._lock:
            self._items_closed = True
            idle, self._idle_item_pools = list(self._idle_item_pools.values()), {}
        for parked in idle:
            _kill_pool(parked)
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
                conns, self._conns = list(self._conns.values()) + self._retired, {}
                self._retired = []
            for conn in conns + [self._wake_r, self._wake_w]:
                conn.close()
            for slot in list(self._writers):
                self._release_writer(slot)



def _kill_pool(pool: ProcessPoolExecutor) -> None:
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        if proc.is_alive():
            proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)


class ProcessItemRunner:
    """Work items in chunks on ``slots`` worker processes of their own, so
    a cancel kills exactly these (and no job's worker). A worker that dies
    fails the items of its chunk; a fresh pool serves the rest. The packed
    function goes into a temporary file that each worker reads once."""

    def __init__(self, owner: ProcessExecutor, slots: int, pool: ProcessPoolExecutor | None) -> None:
        self.slots = slots
        self._owner = owner
        self._pool = pool
        self._killed = False
        self._done = False
        self._files: list[str] = []

    def store(self, shipment: bytes) -> tuple[str, str]:
        """Put the packed function where each worker reads it once (a file,
        in memory where ``/dev/shm`` exists); the reference chunks carry."""
        import tempfile
        import uuid

        folder = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        fd, path = tempfile.mkstemp(prefix="notebook_ext-items-", dir=folder)
        with os.fdopen(fd, "wb") as f:
            f.write(shipment)
        self._files.append(path)
        if self._done:  # ended while this was written: nobody will read it
            self._forget_files()
        return (uuid.uuid4().hex, path)

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = self._owner._item_pool(self.slots)
        return self._pool

    async def run_chunk(self, payload: tuple[str, str], items: list[Any],
                        retries: int) -> tuple[list[tuple[bool, Any]], str]:
        import cloudpickle

        if self._killed:
            raise JobCancelled("the items were cancelled")
        pool = self._get_pool()
        try:
            fut = pool.submit(run_chunk, payload, cloudpickle.dumps(items), retries)
        except BrokenProcessPool:
            fut = None
        if fut is not None:
            _guard_workers(pool)
        try:
            if fut is None:
                raise BrokenProcessPool
            blob = await asyncio.wrap_future(fut)
        except BrokenProcessPool:
            if self._pool is pool:
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise WorkerDied("the worker process running this chunk of items died") from None
        return unpack_chunk(blob)

    def pids(self) -> list[int]:
        procs = getattr(self._pool, "_processes", None) or {}
        return [pid for pid, proc in procs.items() if proc.is_alive()]

    def _forget_files(self) -> None:
        for path in self._files:
            try:
                os.unlink(path)
            except OSError:
                pass
        self._files = []

    def kill(self) -> None:
        self._killed = self._done = True
        pool, self._pool = self._pool, None
        if pool is not None:
            _kill_pool(pool)
        self._forget_files()

    def close(self) -> None:
        self._done = True
        pool, self._pool = self._pool, None
        self._forget_files()
        if pool is not None and not self._killed:
            self._owner._park_item_pool(self.slots, pool)
