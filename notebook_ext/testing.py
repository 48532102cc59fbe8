"""Tools for testing code that uses notebook_ext (and for our own tests):
a `FakeClock` to move time by hand, `wait_until` to wait for a state
instead of sleeping, and `stop_process_tree` to stop a server started for
a test with whatever it started.

Examples
--------
>>> clock = FakeClock()                                             # doctest: +SKIP
>>> sched = Scheduler(history=None, clock=clock)
>>> job = sched.submit(asyncio.sleep, 60, timeout=5)
>>> wait_until(lambda: job.state == "running")
>>> clock.advance(5)
>>> wait_until(lambda: job.state == "timed_out")
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from typing import Any, Callable

__all__ = ["FakeClock", "stop_process_tree", "wait_until"]


class _Timer:
    __slots__ = ("deadline", "callback", "args", "loop", "cancelled")

    def __init__(self, deadline: float, callback: Callable[..., Any], args: tuple,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.deadline, self.callback, self.args, self.loop = deadline, callback, args, loop
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that moves only when told (`advance`); follows
    `notebook_ext.core.lowlevel.Clock`.

    Timers set through it (`call_later`) fire when `advance` passes their
    deadline, each on its own event loop, in deadline order. Wall time
    (`time`) starts at ``start`` and moves with it.
    """

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = 0.0
        self._wall0 = start
        self._timers: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._moved = threading.Condition()

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._wall0 + self._now

    def sleep(self, seconds: float) -> None:
        """Block the calling thread until `advance` has moved time ``seconds`` on."""
        until = self._now + max(0.0, seconds)
        with self._moved:
            self._moved.wait_for(lambda: self._now >= until)

    def call_later(self, loop: asyncio.AbstractEventLoop, delay: float,
                   callback: Callable[..., Any], *args: Any) -> _Timer:
        timer = _Timer(self._now + max(0.0, delay), callback, args, loop)
        with self._lock:
            heapq.heappush(self._timers, (timer.deadline, next(self._seq), timer))
        return timer

    def pending(self) -> list[float]:
        """Deadlines of the timers not fired nor cancelled, soonest first."""
        with self._lock:
            return sorted(t.deadline for _, _, t in self._timers if not t.cancelled)

    def advance(self, seconds: float) -> int:
        """Move time forward; fire the timers now due (each on its loop,
        waiting until it ran). Returns how many fired."""
        if seconds < 0:
            raise ValueError(f"`seconds` must be >= 0, got {seconds}")
        target = self._now + seconds
        fired = 0
        while True:
            with self._lock:
                if not self._timers or self._timers[0][0] > target:
                    break
                _, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, timer.deadline)
            _run_on(timer.loop, timer.callback, timer.args)
            fired += 1
        with self._moved:
            self._now = target
            self._moved.notify_all()
        return fired


def _run_on(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], args: tuple) -> None:
    done = threading.Event()

    def call() -> None:
        try:
            callback(*args)
        finally:
            done.set()

    try:
        loop.call_soon_threadsafe(call)
    except RuntimeError:  # that loop is closed
        return
    if not done.wait(10):
        raise TimeoutError("a timer's loop did not run it within 10 s")


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.005,
               message: str | None = None) -> Any:
    """Poll ``predicate`` until it returns something true; return that.

    Raises `AssertionError` (with ``message``) after ``timeout`` real
    seconds: a test waits for a state, it never sleeps and hopes.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


def stop_process_tree(proc: Any, timeout: float = 20.0) -> None:
    """Stop ``proc`` (a `subprocess.Popen`, e.g. a Jupyter server) and every
    process it started: SIGTERM, then SIGKILL for what is left after
    ``timeout`` seconds (its children after 5 more)."""
    import subprocess

    import psutil

    try:
        leftovers = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        leftovers = []
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    alive = [p for p in leftovers if p.is_running()]
    for p in alive:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(alive, timeout=5)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
