"""The thread executor: plain functions, one daemon thread each."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

from ..core import JobCancelled
from ..core.lowlevel import RESPONSIVE, job_context
from ._base import ExecutorBase

if TYPE_CHECKING:  # pragma: no cover
    from ..core import Job


class ThreadExecutor(ExecutorBase):
    """Runs plain functions, each in a daemon thread of its own.

    Good for numpy / scikit-learn work (it releases the GIL). Pure-Python
    CPU loops share the kernel's GIL: while they run, the interpreter's
    switch interval is shortened so the kernel stays responsive (see
    `notebook_ext.switch_interval`); the process executor frees it entirely.
    Threads cannot be killed: cancel takes effect at the job's next
    `progress` / `report` / `checkpoint`; an abandoned thread (timeout,
    ``abandon=True``) runs on and its result is discarded. Daemon threads
    never hold up kernel shutdown.
    """

    name = "thread"
    compute = True

    def __init__(self, slots: int | None = None) -> None:
        super().__init__(slots)
        self.abandoned = 0  # threads left running after a timeout / forced cancel

    async def run(self, job: "Job") -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        ctx = job.ctx

        def deliver(ok: bool, value: Any) -> None:
            if fut.done():
                return
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

        def body() -> None:
            try:  # (RESPONSIVE: the kernel's thread gets the GIL back promptly while this runs)
                with RESPONSIVE.job(ctx), job_context(ctx):
                    if ctx.cancel_reason is not None:
                        raise JobCancelled(ctx.cancel_reason)
                    value = job.fn(*job.args, **job.kwargs)
                ok = True
            except StopIteration as exc:  # a Future refuses it (as generators do: PEP 479)
                value, ok = RuntimeError(f"the job raised StopIteration({exc.value!r})"), False
            except BaseException as exc:  # noqa: BLE001 - reported as the job's error
                value, ok = exc, False
            try:
                loop.call_soon_threadsafe(deliver, ok, value)
            except RuntimeError:
                pass  # the scheduler's loop is closed: nobody waits any more

        thread = threading.Thread(target=body, name=f"notebook_ext-{job.name}", daemon=True)
        thread.start()
        try:
            return await fut
        except asyncio.CancelledError:
            if thread.is_alive():
                self.abandoned += 1
            raise
