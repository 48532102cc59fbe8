"""``asyncio.run(...)`` in a notebook cell, as stock asyncio runs it.

A kernel's main thread already runs an event loop, so stock ``asyncio.run``
refuses ("cannot be called from a running event loop"). Re-entering the
kernel's loop (nest_asyncio and its fork) changes asyncio for the whole
process and cannot be undone, and it leaves async generators to be
finalized after ``run`` returned. Instead, where a loop already runs in the
calling thread, `run` hands the coroutine to stock ``asyncio.run`` on a
fresh loop in a helper thread and waits: everything stock ``asyncio.run``
does (cancelling leftover tasks, finalizing async generators, shutting
down the default executor, closing the loop) happens before it returns.
Interrupt (Ctrl-C) cancels the coroutine, as stock ``asyncio.run`` does.
Everywhere else it *is* stock ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any, Coroutine

from ._hooks import HOOKS

_stock_run = asyncio.run


def run(main: Coroutine[Any, Any, Any], **options: Any) -> Any:
    """`asyncio.run` that also works where an event loop already runs in
    this thread (a notebook kernel's main thread): see the module's text.

    Examples
    --------
    >>> asyncio.run(main())                          # doctest: +SKIP
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _stock_run(main, **options)
    if not asyncio.iscoroutine(main):
        return _stock_run(main, **options)  # stock's own error: "a coroutine was expected"
    started = threading.Event()
    box: dict[str, Any] = {}

    async def first_step() -> Any:
        box["loop"], box["task"] = asyncio.get_running_loop(), asyncio.current_task()
        started.set()
        return await main  # the same task: main sees no wrapper

    def serve() -> None:
        try:
            box["value"] = _stock_run(first_step(), **options)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = exc
        finally:
            started.set()

    context = contextvars.copy_context()  # as stock run's task copies the caller's context
    thread = threading.Thread(target=context.run, args=(serve,), name="notebook_ext-asyncio-run", daemon=True)
    thread.start()
    try:
        thread.join()
    except KeyboardInterrupt:  # Interrupt: cancel main and let it unwind, as stock asyncio.run does
        started.wait()
        loop, task = box.get("loop"), box.get("task")
        if loop is not None and task is not None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:
                pass  # it ended meanwhile
        thread.join()
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]


def install_asyncio_run() -> None:
    """Make ``asyncio.run`` work in a cell (idempotent; `HOOKS` undoes it)."""
    if asyncio.run is run:
        return
    with HOOKS.lock:
        if asyncio.run is not run:
            HOOKS.replace(asyncio, "run", run, "asyncio.run")
