"""`LoopThread`: one asyncio loop in a daemon thread, and the only bridge to it.

Other threads hand work to the loop through `call_soon` (fire and forget,
batched: the loop is woken once per burst, since a wake-up costs a socket
write) or `call_and_wait` (returns the result, raises on timeout). Nobody
else touches the loop object from outside its thread.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import sys
import threading
import traceback
from typing import Any, Callable, Coroutine, TypeVar

from ._clock import SYSTEM_CLOCK, Clock, TimerHandle

T = TypeVar("T")


class LoopThread:
    """An event loop running forever in a daemon thread.

    Examples
    --------
    >>> lt = LoopThread("demo")                      # doctest: +SKIP
    >>> lt.call_and_wait(lambda: 6 * 7)
    42
    >>> lt.stop()
    """

    def __init__(self, name: str, clock: Clock = SYSTEM_CLOCK,
                 on_death: Callable[[BaseException], None] | None = None) -> None:
        self.name = name
        self.clock = clock
        self.death: BaseException | None = None  #: what ended the loop, if it did not stop cleanly
        self._on_death = on_death
        self._loop = asyncio.new_event_loop()
        self._inbox: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = collections.deque()
        self._inbox_lock = threading.Lock()
        self._drain_scheduled = False
        self._closed = False
        self.errors = 0  # callbacks that raised (each printed once, the loop goes on)
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    # -- any thread -----------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._closed

    def in_thread(self) -> bool:
        """True when called from the loop's own thread."""
        return threading.current_thread() is self._thread

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop soon; never blocks, never raises
        (after `stop` the call is dropped)."""
        self._inbox.append((fn, args))
        with self._inbox_lock:
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody will run it
            self._inbox.clear()

    def call_and_wait(self, fn: Callable[..., T], *args: Any, timeout: float | None = 5.0) -> T:
        """Run ``fn(*args)`` on the loop and return its result (or raise its
        exception). Raises `TimeoutError` if the loop does not answer within
        ``timeout`` seconds; runs directly when already on the loop."""
        if self.in_thread():
            return fn(*args)
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                fut.set_exception(exc)

        self.call_soon(call)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError(
                f"the {self.name} loop did not answer within {timeout} s "
                "(blocked by a coroutine that does not await?)"
            ) from None

    def call_soon_confirmed(self, fn: Callable[..., Any], *args: Any, timeout: float = 1.0) -> bool:
        """Run ``fn(*args)`` on the loop and wait up to ``timeout`` seconds
        for it to have run (it runs later anyway if the loop is slow);
        True if it ran in time. Runs directly when already on the loop."""
        if self.in_thread():
            fn(*args)
            return True
        ran = threading.Event()

        def call() -> None:
            try:
                fn(*args)
            finally:
                ran.set()

        self.call_soon(call)
        return ran.wait(timeout) if timeout > 0 else False

    def submit(self, coro: Coroutine[Any, Any, T]) -> "concurrent.futures.Future[T]":
        """Run a coroutine on the loop; a `concurrent.futures.Future` of its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    # -- loop thread only -------------------------------------------------------
    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``fn(*args)`` after ``delay`` seconds of the clock (loop thread only)."""
        return self.clock.call_later(self._loop, delay, self._guarded, fn, args)

    def create_task(self, coro: Any, name: str | None = None) -> asyncio.Task[Any]:
        """A task on this loop (loop thread only); its owner must await or cancel it."""
        return self._loop.create_task(coro, name=name)

    # -- inside ----------------------------------------------------------------
    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        except BaseException as exc:  # noqa: BLE001 - the watchdog: say so, never a silent hang
            # Only user code that reached the loop itself (a raw handle or a
            # task of its own raising KeyboardInterrupt / SystemExit) gets here.
            self.death = exc
            self._closed = True
            _report_error(f"{self.name}: the loop thread died")
            if self._on_death is not None:
                try:
                    self._on_death(exc)
                except BaseException:  # noqa: BLE001 - reporting must never raise
                    _report_error(f"{self.name}: handling the loop's death raised")
            self._unwind()
            self._loop.close()

    def _unwind(self) -> None:
        """Cancel what the dead loop still held and let it unwind in its own
        contexts (for a second at most), so no coroutine is torn down by
        the garbage collector in a foreign context."""
        loop = self._loop
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.wait(tasks, timeout=1.0))
            loop.run_until_complete(loop.shutdown_asyncgens())
        except BaseException:  # noqa: BLE001 - user code again: the loop is closed anyway
            _report_error(f"{self.name}: unwinding the dead loop raised")

    def _guarded(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            fn(*args)
        except BaseException:  # noqa: BLE001 - a server, not a script: report and keep serving
            self.errors += 1   # (a KeyboardInterrupt / SystemExit here would end the loop)
            _report_error(f"{self.name}: a callback raised")

    def _drain(self) -> None:
        with self._inbox_lock:
            self._drain_scheduled = False
        inbox = self._inbox
        while inbox:
            fn, args = inbox.popleft()
            self._guarded(fn, args)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop (after the calls already in the inbox) and join the thread."""
        if self._closed:
            return
        self._closed = True
        try:
            self._loop.call_soon_threadsafe(self._loop.stop)
        except RuntimeError:
            pass
        if not self.in_thread():
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._loop.close()

    def __repr__(self) -> str:
        return f"<LoopThread {self.name!r} {'running' if self.running else 'stopped'}>"


def _report_error(what: str) -> None:
    """Print a traceback on the real stderr, whatever happens to the text."""
    try:
        text = traceback.format_exc()
        stream = sys.__stderr__ or sys.stderr
        stream.write(f"notebook_ext: {what}\n{text}".encode("utf-8", "backslashreplace").decode("utf-8"))
    except Exception:  # noqa: BLE001 - reporting must never raise
        pass
