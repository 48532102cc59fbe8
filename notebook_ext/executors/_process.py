"""The process executor: job code in worker processes, killable on cancel.

Each slot has one worker process of its own (`_Worker`: a
``multiprocessing`` process and a duplex pipe), so killing the worker of one
cancelled job touches no other job. Workers run at a lower OS priority
(``nice``) so the notebook stays responsive. Calls travel as cloudpickle
bytes, so functions defined in a notebook work. A run of work items gets
workers of its own (`ProcessItemRunner`), so its cancel kills exactly those.

Everything a worker sends home goes over its one pipe, in order: the job's
start, its progress (the worker's sender thread ships at most ten updates a
second), then its result. One receiver thread reads all the pipes; nothing
a worker sends, and no pipe torn down under it, ends it. A worker that dies
shows as end-of-file on its pipe; its exit status is read then.

Only the standard library's public API is used. One thing it leaves to us:
a forkserver worker's exit status is one message on a socket, and when two
threads read it at once (``Process.start`` polls every child of the
process) the loser records 255. Every process this executor starts, and
every exit status it reads, goes through one lock (`_START_AND_REAP`), so
its own threads never meet there.

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
import atexit
import itertools
import multiprocessing
import os
import pickle
import signal
import threading
import weakref
from concurrent.futures import Future
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
    return run_shipped(job_id, payload, _send, _poll)  # its result follows on the same pipe


def _worker_main(conn: Any, stop_flag: Any, nice: int, threads: int) -> None:
    """A worker's life: take a call (a job, or a chunk of work items) from
    the pipe, run it, send its result back on the same pipe; until the pipe
    closes or says stop."""
    _worker_init(conn, stop_flag, nice, threads)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        if task[0] == "job":
            _, job_id, payload = task
            _send(("result", job_id, _run_payload(job_id, payload)))
        else:
            _, chunk_id, payload, items, retries = task
            _send(("chunk", chunk_id, run_chunk(payload, items, retries)))


# -- parent side --------------------------------------------------------------

_START_AND_REAP = threading.Lock()  # see the module's docstring
_UNKNOWN = " (killed or crashed)"  # how a worker ended, while its status is not known
_live: "weakref.WeakSet[_Worker]" = weakref.WeakSet()  # killed at exit if still there


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


def _kill_live_workers() -> None:
    # At exit, before multiprocessing joins its children: a scheduler nobody
    # shut down must not keep the interpreter waiting for its workers.
    for worker in list(_live):
        worker.kill()


_at_exit = threading.Lock()
_at_exit_set = False


def _kill_at_exit() -> None:
    """Register `_kill_live_workers` once, after a first start has imported
    ``multiprocessing.util``: atexit runs the later registration first, so
    ours runs before multiprocessing's own, which joins every child."""
    global _at_exit_set
    with _at_exit:
        if not _at_exit_set:
            atexit.register(_kill_live_workers)
            _at_exit_set = True


class _Worker:
    """One worker process and the pipe to it (tasks in; start, progress and
    results out, in order)."""

    def __init__(self, ctx: Any, nice: int, threads: int, stop_flag: Any = None) -> None:
        here, there = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(there, stop_flag, nice, threads),
                                name="notebook_ext-worker")
        try:
            with _START_AND_REAP:
                self.proc.start()
        finally:
            there.close()  # the worker holds it now: its death shows here as end-of-file
        self.conn: "Connection[Any, Any]" = here
        self.pid: int = cast(int, self.proc.pid)
        self.waiting: Future[tuple[Any, ...]] | None = None  # the result of the call it runs
        self.started_job = False  # it said "start" for the job it runs
        self.dead = False
        _live.add(self)
        _kill_at_exit()

    def call(self, task: tuple[Any, ...]) -> "Future[tuple[Any, ...]]":
        """Send ``task``; the future gets its result, or ``("died",)``."""
        waiting: Future[tuple[Any, ...]] = Future()
        self.waiting = waiting
        self.started_job = False
        try:
            self.conn.send(task)
        except (OSError, ValueError):  # dead already (the receiver may not have seen it yet)
            self.died()
        return waiting

    def died(self) -> None:
        """Its pipe reached end-of-file (the receiver's thread)."""
        self.dead = True
        waiting, self.waiting = self.waiting, None
        if waiting is not None and not waiting.done():
            waiting.set_result(("died",))

    def exit_status(self, timeout: float = 1.0) -> str:
        """How the (dead) worker ended, in words, once it is reaped."""
        with _START_AND_REAP:
            self.proc.join(timeout)
            code = self.proc.exitcode
        if code is None:
            return _UNKNOWN
        if code < 0:
            try:
                return f" (killed by {signal.Signals(-code).name})"
            except ValueError:
                return f" (signal {-code})"
        return f" (exit code {code})"

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def alive(self) -> bool:
        if self.dead:
            return False
        with _START_AND_REAP:  # is_alive reads the exit status of a dead worker
            return bool(self.proc.is_alive())

    def close(self) -> None:
        """Stop it (at once) and let go of its process."""
        self.kill()
        with _START_AND_REAP:
            self.proc.join(5)
            if self.proc.exitcode is not None:
                self.proc.close()  # its sentinel's fd goes now, not at the next garbage collection
        _live.discard(self)


async def _exit_status(worker: _Worker) -> str:
    """How the dead ``worker`` ended, once it is reaped (up to 1 s, without
    blocking the loop)."""
    for _ in range(100):
        status = worker.exit_status(timeout=0)
        if status != _UNKNOWN:
            return status
        await asyncio.sleep(0.01)
    return _UNKNOWN


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
        self._workers: list[_Worker | None] = []
        self._stop_flags: list[Any] = []
        self._free: list[int] = []
        self._conns: dict[Any, _Worker] = {}  # read end -> its worker (the receiver reads these)
        self._retired: list[_Worker] = []  # dead or dropped workers for the receiver to close
        self._wake_r: Any = None
        self._wake_w: Any = None
        self._started = False
        self._closing = False
        self._receiver: threading.Thread | None = None
        self.receiver_errors = 0  #: unexpected errors the receiver thread caught and survived
        self._progress = ProgressRouter()
        self._slot_of: dict[int, int] = {}
        self._lock = threading.Lock()
        self._idle_item_workers: dict[int, list[_Worker]] = {}  # warm workers for the next run of items
        self._items_closed = False
        self._chunk_ids = itertools.count()

    def prepare(self, job: "Job") -> None:
        job.shipment = pack_call(job, "a worker process")

    def _ensure_started(self) -> None:
        if self._started:
            return
        assert self.slots is not None
        self._started = True
        self._wake_r, self._wake_w = self._ctx.Pipe(duplex=False)
        self._workers = [None] * self.slots
        self._stop_flags = [self._ctx.Value("b", 0, lock=False) for _ in range(self.slots)]
        self._free = list(range(self.slots))
        self._receiver = threading.Thread(
            target=self._receive, name="notebook_ext-process-receiver", daemon=True
        )
        self._receiver.start()

    def new_worker(self, threads: int, stop_flag: Any = None) -> _Worker:
        """A worker process the receiver reads from (for a slot, or a run of items)."""
        self._ensure_started()
        worker = _Worker(self._ctx, self.nice, threads, stop_flag)
        with self._lock:
            self._conns[worker.conn] = worker
        self._wake_w.send(b"")
        return worker

    def _slot_worker(self, slot: int) -> _Worker:
        worker = self._workers[slot]
        if worker is not None and worker.dead:  # died between jobs
            self.retire(worker)
            worker = None
        if worker is None:
            threads = max(1, (os.cpu_count() or 1) // (self.slots or 1))
            worker = self._workers[slot] = self.new_worker(threads, self._stop_flags[slot])
        return worker

    def retire(self, worker: _Worker) -> None:
        """Kill ``worker`` (if it lives) and have the receiver close its pipe."""
        worker.kill()
        with self._lock:
            self._retired.append(worker)
        try:
            self._wake_w.send(b"")
        except (OSError, ValueError):
            pass  # shut down meanwhile: `shutdown` closes it

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
            for worker in retired:
                self._conns.pop(worker.conn, None)
            by_conn = dict(self._conns)
        for worker in retired:
            worker.died()
            worker.conn.close()
            worker.close()
        for conn in wait(list(by_conn) + [self._wake_r], timeout=1.0):
            if conn is self._wake_r:
                cast("Connection[Any, Any]", conn).recv_bytes()
                continue
            worker = by_conn[conn]
            try:
                data = cast("Connection[Any, Any]", conn).recv_bytes()
            except EOFError:  # its worker is gone
                self._drop(worker)
                continue
            except Exception:  # noqa: BLE001 - e.g. a pipe that broke mid-message
                self.receiver_errors += 1
                self._drop(worker)
                continue
            try:  # a whole message was read, so a bad one leaves the pipe in step
                self._handle(worker, pickle.loads(data))
            except Exception:  # noqa: BLE001
                self.receiver_errors += 1

    def _drop(self, worker: _Worker) -> None:
        with self._lock:
            self._conns.pop(worker.conn, None)
        worker.died()
        worker.conn.close()

    def _handle(self, worker: _Worker, msg: tuple[Any, ...]) -> None:
        kind, _ = msg[0], msg[1]  # every message names its job (or chunk): one that does not is garbage
        if kind == "start":
            worker.started_job = True
        elif kind == "progress":
            self._progress.deliver(msg)
        elif kind in ("result", "chunk"):
            waiting, worker.waiting = worker.waiting, None
            if waiting is not None and not waiting.done():
                waiting.set_result(msg)

    async def run(self, job: "Job") -> Any:
        self._ensure_started()
        slot = self._free.pop()
        self._slot_of[job.id] = slot
        self._progress.track(job)
        self._stop_flags[slot].value = 1 if job.ctx.stop else 0
        worker: _Worker | None = None
        try:
            worker = self._slot_worker(slot)
            if job.ctx.cancel_reason is not None:  # cancelled before it began: nothing to start
                raise JobCancelled(job.ctx.cancel_reason)
            reply = await asyncio.wrap_future(worker.call(("job", job.id, job.shipment)))
            if reply[0] == "died":
                self._workers[slot] = None
                status = await _exit_status(worker)
                self.retire(worker)
                if job.ctx.cancel_reason is not None:
                    raise JobCancelled(job.ctx.cancel_reason)
                if not worker.started_job:  # it never started the job
                    problem = _main_problem() or "its error went to this process's stderr"
                    raise WorkerDied(f"the worker process could not start{status}: {problem}")
                raise WorkerDied(f"the worker process (pid {worker.pid}) died while running {job.name!r}{status}")
            outcome = reply[2]
        except asyncio.CancelledError:
            if worker is not None:
                self._workers[slot] = None
                self.retire(worker)
            raise
        finally:
            self._progress.forget(job)
            self._slot_of.pop(job.id, None)
            self._free.append(slot)
        return unpack_outcome(job.ctx, outcome)

    def interrupt(self, job: "Job") -> None:
        slot = self._slot_of.get(job.id)
        if slot is not None:
            worker = self._workers[slot]
            if worker is not None:
                worker.kill()

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
            warm = self._idle_item_workers.pop(n, [])
        return ProcessItemRunner(self, n, warm)

    def _park_item_workers(self, n: int, workers: list[_Worker]) -> None:
        workers = [w for w in workers if w.alive()]
        with self._lock:
            if self._items_closed or n in self._idle_item_workers:
                extra = workers
            else:
                self._idle_item_workers[n], extra = workers, []
        for worker in extra:
            self.retire(worker)

    def worker_pid(self, job: "Job") -> int | None:
        """Process id of the worker running ``job`` (None when it runs nowhere)."""
        slot = self._slot_of.get(job.id)
        worker = self._workers[slot] if slot is not None else None
        return worker.pid if worker is not None and worker.started_job else None

    def worker_pids(self) -> list[int]:
        """Process ids of the live worker processes of the slots (for tests and tools)."""
        return [w.pid for w in self._workers if w is not None and w.alive()]

    def _all_workers(self) -> list[_Worker]:
        """Every worker this executor has: the slots', the items' (running or
        warm) and those retired but not closed yet."""
        with self._lock:
            found = list(self._conns.values()) + self._retired
            found += [w for ws in self._idle_item_workers.values() for w in ws]
        found += [w for w in self._workers if w is not None]
        return list({id(w): w for w in found}.values())

    def shutdown(self) -> None:
        with self._lock:
            self._items_closed = True
        for worker in self._all_workers():
            worker.kill()
        if not self._started:
            return
        self._closing = True
        try:
            self._wake_w.send(b"")
        except (OSError, ValueError):
            pass
        if self._receiver is not None:
            self._receiver.join(timeout=2)
        workers = self._all_workers()  # the receiver is stopped: none comes or goes now
        with self._lock:
            self._conns, self._retired, self._idle_item_workers = {}, [], {}
        for worker in workers:
            worker.died()
            worker.conn.close()
            worker.close()
        self._workers = [None] * len(self._workers)
        for conn in (self._wake_r, self._wake_w):
            conn.close()


class ProcessItemRunner:
    """Work items in chunks on ``slots`` worker processes of their own, so
    a cancel kills exactly these (and no job's worker). A worker that dies
    fails the items of its chunk alone; a fresh worker takes its place. The
    packed function goes into a temporary file that each worker reads once."""

    chunk_seconds = 0.05  # a chunk's round trip through a pipe is well under a millisecond

    def __init__(self, owner: ProcessExecutor, slots: int, warm: list[_Worker]) -> None:
        self.slots = slots
        self._owner = owner
        self._workers: list[_Worker] = list(warm)
        self._idle: list[_Worker] = list(warm)
        self._freed: asyncio.Event | None = None
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

    async def _take(self) -> _Worker:
        """An idle worker (a new one while there are fewer than ``slots``)."""
        while True:
            if self._killed:
                raise JobCancelled("the items were cancelled")
            if self._idle:
                return self._idle.pop()
            if len(self._workers) < self.slots:
                threads = max(1, (os.cpu_count() or 1) // self.slots)
                worker = self._owner.new_worker(threads)  # a few ms: forkserver forks a ready process
                self._workers.append(worker)
                return worker
            if self._freed is None:
                self._freed = asyncio.Event()
            self._freed.clear()
            await self._freed.wait()

    def _give_back(self, worker: _Worker) -> None:
        if worker.dead:
            self._workers.remove(worker)
            self._owner.retire(worker)
        else:
            self._idle.append(worker)
        if self._freed is not None:
            self._freed.set()

    async def run_chunk(self, payload: tuple[str, str], items: list[Any],
                        retries: int) -> tuple[list[tuple[bool, Any]], str]:
        import cloudpickle

        worker = await self._take()
        try:
            reply = await asyncio.wrap_future(
                worker.call(("chunk", next(self._owner._chunk_ids), payload, cloudpickle.dumps(items), retries)))
        except BaseException:
            worker.kill()  # cancelled mid-chunk: this worker's result would come to nobody
            worker.dead = True
            raise
        finally:
            self._give_back(worker)
        if reply[0] == "died":
            if self._killed:
                raise JobCancelled("the items were cancelled")
            raise WorkerDied("the worker process running this chunk of items died")
        return unpack_chunk(reply[2])

    def pids(self) -> list[int]:
        return [w.pid for w in self._workers if w.alive()]

    def _forget_files(self) -> None:
        for path in self._files:
            try:
                os.unlink(path)
            except OSError:
                pass
        self._files = []

    def kill(self) -> None:
        self._killed = self._done = True
        workers, self._workers, self._idle = self._workers, [], []
        for worker in workers:
            self._owner.retire(worker)
        if self._freed is not None:
            self._freed.set()
        self._forget_files()

    def close(self) -> None:
        self._done = True
        self._forget_files()
        if not self._killed:
            workers, self._workers, self._idle = self._workers, [], []
            self._owner._park_item_workers(self.slots, workers)
