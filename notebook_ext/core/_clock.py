"""One injectable clock for the whole engine.

The scheduler (timeouts, back-off, thread grace), the notifier (throttling)
and job timestamps read time only through a `Clock`, so tests can run on
`notebook_ext.testing.FakeClock` and move time by hand instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What the engine needs of time.

    ``monotonic()`` measures intervals, ``time()`` stamps records (wall
    clock), ``sleep()`` blocks a thread for so many seconds of this clock's
    time, ``call_later`` runs ``callback`` on ``loop`` after ``delay``
    seconds of it.
    """

    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def call_later(self, loop: asyncio.AbstractEventLoop, delay: float,
                   callback: Callable[..., Any], *args: Any) -> TimerHandle: ...


class SystemClock:
    """The real clock: `time.monotonic`, `time.time`, `time.sleep` and the
    loop's timers. The one place core, executors, ml and ui read time from
    `time` (tests/core/test_one_clock.py checks it)."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def call_later(self, loop: asyncio.AbstractEventLoop, delay: float,
                   callback: Callable[..., Any], *args: Any) -> TimerHandle:
        return loop.call_later(delay, callback, *args)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()
