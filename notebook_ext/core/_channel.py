"""A bounded queue that threads and coroutines share: the pipe between
work-item stages.

``queue.Queue`` blocks the loop and ``asyncio.Queue`` is not thread-safe;
a stage of thread workers feeding a stage of coroutines needs both ends.
Waiting threads sleep on a condition, waiting coroutines on a future woken
from any thread; nobody is woken unless someone waits, so a busy channel
costs a lock and a deque operation per item.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any


class Closed(Exception):
    """The channel is closed and empty, or aborted."""


_EMPTY = object()


class Channel:
    """A bounded FIFO with blocking ends for threads (``put_sync`` /
    ``get_sync``) and awaitable ends for coroutines on ``loop`` (``put`` /
    ``get``).

    `close` lets readers drain what is left, then raises `Closed`; `abort`
    drops what is left and raises `Closed` everywhere at once.
    """

    __slots__ = ("maxsize", "peak", "_items", "_lock", "_can_get", "_can_put", "_thread_getters",
                 "_thread_putters", "_async_getters", "_async_putters", "_closed", "_aborted", "_loop",
                 "_loop_thread")

    def __init__(self, maxsize: int, loop: asyncio.AbstractEventLoop, loop_thread: int) -> None:
        if maxsize < 1:
            raise ValueError(f"`maxsize` must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self.peak = 0  #: the most items it ever held (for tests and the card)
        self._items: deque[Any] = deque()
        self._lock = threading.Lock()
        self._can_get = threading.Condition(self._lock)
        self._can_put = threading.Condition(self._lock)
        self._thread_getters = 0
        self._thread_putters = 0
        self._async_getters: deque[asyncio.Future[None]] = deque()
        self._async_putters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._aborted = False
        self._loop = loop
        self._loop_thread = loop_thread

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed or self._aborted

    # -- waking (lock held) ---------------------------------------------------
    def _wake(self, futures: deque[asyncio.Future[None]], every: bool = False) -> None:
        while futures:
            fut = futures.popleft()
            if threading.get_ident() == self._loop_thread:
                _settle(fut)
            else:
                try:
                    self._loop.call_soon_threadsafe(_settle, fut)
                except RuntimeError:  # the loop is closed: nobody awaits any more
                    pass
            if not every:
                return

    def _wake_getter(self) -> None:
        if self._thread_getters:
            self._can_get.notify()
        if self._async_getters:
            self._wake(self._async_getters)

    def _wake_putter(self) -> None:
        if self._thread_putters:
            self._can_put.notify()
        if self._async_putters:
            self._wake(self._async_putters)

    def _add(self, item: Any) -> None:
        self._items.append(item)
        if len(self._items) > self.peak:
            self.peak = len(self._items)
        self._wake_getter()

    # -- threads --------------------------------------------------------------
    def put_sync(self, item: Any) -> None:
        """Add ``item``, waiting while the channel is full (any thread but the loop's)."""
        with self._lock:
            while len(self._items) >= self.maxsize and not self._aborted:
                self._thread_putters += 1
                try:
                    self._can_put.wait()
                finally:
                    self._thread_putters -= 1
            if self._aborted:
                raise Closed
            self._add(item)

    def get_sync(self, timeout: float | None = None) -> Any:
        """The next item, waiting for one; `Closed` when there will be none.
        With ``timeout``, returns the module's ``_EMPTY`` marker after waiting that long."""
        with self._lock:
            while not self._items or self._aborted:
                if self._closed or self._aborted:
                    raise Closed
                self._thread_getters += 1
                try:
                    if not self._can_get.wait(timeout) and not self._items:
                        return _EMPTY
                finally:
                    self._thread_getters -= 1
            item = self._items.popleft()
            self._wake_putter()
            return item

    def get_nowait(self) -> Any:
        """The next item, or the ``_EMPTY`` marker at once (any thread)."""
        with self._lock:
            if not self._items or self._aborted:
                return _EMPTY
            item = self._items.popleft()
            self._wake_putter()
            return item

    # -- the loop -------------------------------------------------------------
    async def put(self, item: Any) -> None:
        """Add ``item``, awaiting room (coroutines on the channel's loop)."""
        while True:
            with self._lock:
                if self._aborted:
                    raise Closed
                if len(self._items) < self.maxsize:
                    self._add(item)
                    return
                fut = self._loop.create_future()
                self._async_putters.append(fut)
            await fut

    async def get(self) -> Any:
        """The next item, awaiting one; `Closed` when there will be none."""
        while True:
            with self._lock:
                if self._items and not self._aborted:
                    item = self._items.popleft()
                    self._wake_putter()
                    return item
                if self._closed or self._aborted:
                    raise Closed
                fut = self._loop.create_future()
                self._async_getters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                with self._lock:  # a wake meant for us goes to someone else
                    if self._items:
                        self._wake_getter()
                raise

    # -- either ---------------------------------------------------------------
    def close(self) -> None:
        """No more items will come: readers drain the rest, then get `Closed`."""
        with self._lock:
            self._closed = True
            self._can_get.notify_all()
            self._wake(self._async_getters, every=True)

    def abort(self) -> None:
        """Drop every item and wake everyone with `Closed`."""
        with self._lock:
            self._aborted = True
            self._items.clear()
            self._can_get.notify_all()
            self._can_put.notify_all()
            self._wake(self._async_getters, every=True)
            self._wake(self._async_putters, every=True)


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
