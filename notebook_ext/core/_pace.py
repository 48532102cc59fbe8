"""How often things happen: one back-off policy for everything that tries
again (jobs, work items in threads, on the loop and in worker processes,
the history's writer) and one throttle for what must not go more often than
so many times a second (the notifier's snapshots of each job, the items'
card updates, the card pump and its dashboards, serving's numbers,
scikit-learn's fit callback). Both read time from a `Clock`, so tests move
it by hand. (A worker process's progress sender ticks on an `Event.wait`
every `SHIP_INTERVAL`: a period, not a throttle.)"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ._clock import SYSTEM_CLOCK, Clock


@dataclass(frozen=True)
class Backoff:
    """Waits between tries that grow by ``factor`` from ``first`` up to
    ``cap`` seconds: ``delay(1)`` is the wait after the first failure."""

    first: float = 0.05
    factor: float = 2.0
    cap: float = 1.0

    def __post_init__(self) -> None:
        if self.first < 0 or self.factor < 1 or self.cap < self.first:
            raise ValueError(f"a back-off needs 0 <= first <= cap and factor >= 1, got {self}")

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failed tries (1 for the first)."""
        if failures < 1:
            return 0.0
        # the exponent is bounded so that a long run of failures cannot overflow
        return min(self.cap, self.first * self.factor ** min(failures - 1, 64))

    def delays(self, tries: int) -> tuple[float, ...]:
        """The waits after each of ``tries`` failures, in order."""
        return tuple(self.delay(i) for i in range(1, tries + 1))


#: work items that raise and have retries left (threads, the loop, worker processes)
ITEM_BACKOFF = Backoff(0.05, 2.0, 1.0)


async def pause(clock: Clock, seconds: float) -> None:
    """``asyncio.sleep(seconds)`` on ``clock``'s time (a timer of the clock
    on the running loop; cancelling the waiter cancels the timer)."""
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not woken.done():
            woken.set_result(None)

    timer = clock.call_later(loop, seconds, wake)
    try:
        await woken
    finally:
        timer.cancel()


class Throttle:
    """At most one go every ``interval`` seconds of ``clock``.

    ``ready()`` is true (and counts as the go) when the last go was at least
    ``interval`` ago, or there was none; ``due_in()`` says how long until the
    next may go. Not locked: each user calls it from one thread (or holds
    its own lock around it).
    """

    __slots__ = ("interval", "clock", "last")

    def __init__(self, interval: float, clock: Clock = SYSTEM_CLOCK) -> None:
        if interval < 0:
            raise ValueError(f"`interval` must be >= 0, got {interval!r}")
        self.interval = interval
        self.clock = clock
        self.last: float | None = None

    def ready(self, now: float | None = None) -> bool:
        now = self.clock.monotonic() if now is None else now
        if self.last is not None and now - self.last < self.interval:
            return False
        self.last = now
        return True

    def due_in(self, now: float | None = None) -> float:
        """Seconds until ``ready()`` is true again (0 when it is now)."""
        if self.last is None:
            return 0.0
        now = self.clock.monotonic() if now is None else now
        return max(0.0, self.last + self.interval - now)

    def next_at(self, interval: float | None = None) -> float:
        """When (on the clock's ``monotonic`` scale) the next go may be,
        after ``interval`` (default: the throttle's own) from the last one."""
        if self.last is None:
            return self.clock.monotonic()
        return self.last + (self.interval if interval is None else interval)

    def mark(self, now: float | None = None) -> None:
        """Count a go now, ready or not (a forced one)."""
        self.last = self.clock.monotonic() if now is None else now

    def __getstate__(self) -> dict[str, object]:  # travels to worker processes with a job: on their clock
        return {"interval": self.interval, "clock": SYSTEM_CLOCK, "last": None}

    def __setstate__(self, state: dict[str, object]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)
