"""The notifier: turns job changes into throttled, immutable snapshots for
observers (cards, dashboards, loggers), from a thread of its own.

It never waits on the caller's main thread, so observers keep receiving
updates while a notebook cell blocks. Per job, at most one snapshot every
`interval` seconds; a job's final snapshot is always delivered, at once.
"""

from __future__ import annotations

import threading
import traceback
from typing import TYPE_CHECKING, Any, Callable

from ._clock import SYSTEM_CLOCK, Clock
from ._pace import Throttle
from ._states import JobSnapshot

if TYPE_CHECKING:  # pragma: no cover
    from ._job import Job

Observer = Callable[[JobSnapshot], None]


class Notifier:
    def __init__(
        self,
        running: Callable[[], list["Job"]],
        interval: float = 0.1,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._running = running  # the jobs whose progress may move
        self.interval = interval
        self._clock = clock.monotonic
        self._time = clock
        self._observers: list[Observer] = []
        self.observed = False  #: someone subscribed: changes are worth telling
        self._wake = threading.Condition()
        self._dirty: dict[int, "Job"] = {}
        self._final: list["Job"] = []
        # each running job's deliveries: at most one per interval (a hair
        # less, so a tick that lands a microsecond early still sends)
        self._paces: dict[int, Throttle] = {}
        self._last_sig: dict[int, tuple[Any, ...]] = {}
        self._closed = False
        self._idle = False  # the thread sleeps until a change: nothing runs, nothing is due
        self.wakeups = 0  #: times the thread woke (an idle notifier does not)
        self.delivered = 0
        self.errors = 0  # faults survived (a snapshot or a tick that raised)
        self._thread = threading.Thread(target=self._run, name="notebook_ext-notifier", daemon=True)
        self._thread.start()

    # -- observers ----------------------------------------------------------
    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Call ``observer(snapshot)`` for every delivered snapshot; returns
        a function that unsubscribes."""
        with self._wake:
            self._observers = self._observers + [observer]
            self.observed = True
            self._wake.notify()

        def unsubscribe() -> None:
            with self._wake:
                self._observers = [o for o in self._observers if o is not observer]
                self.observed = bool(self._observers)

        return unsubscribe

    # -- producers (any thread) --------------------------------------------
    def changed(self, job: "Job") -> None:
        """A job's state changed; final states go out at once."""
        if not self.observed:
            return  # nobody draws snapshots: make none
        with self._wake:
            if job.done():
                self._final.append(job)
                self._dirty.pop(job.id, None)
                self._wake.notify()
            else:
                self._dirty[job.id] = job
                if self._idle:
                    self._wake.notify()

    def close(self, timeout: float = 2.0) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # -- the thread ----------------------------------------------------------
    @staticmethod
    def _signature(job: "Job") -> tuple[Any, ...]:
        ctx = job.ctx
        return (
            job.state, ctx.done, ctx.total, ctx.message, ctx.output_version(), ctx.display_version(),
            sum(len(s) for s in list(ctx.metrics.values())), ctx.cancel_reason, ctx.stop,
            job.version,
        )

    def _deliver(self, job: "Job", now: float) -> None:
        try:
            snap = job.snapshot()
            self._last_sig[job.id] = self._signature(job)
        except Exception:  # noqa: BLE001 - a job whose facts cannot be read is skipped, not fatal
            self._fault()
            return
        pace = self._paces.get(job.id)
        if pace is None:
            pace = self._paces[job.id] = Throttle(self.interval * 0.999, self._time)
        pace.mark(now)
        self.delivered += 1
        for observer in self._observers:
            try:
                observer(snap)
            except Exception:  # one broken observer must not silence the others
                traceback.print_exc()

    def _fault(self) -> None:
        self.errors += 1
        if self.errors == 1:  # said once; the thread goes on
            traceback.print_exc()

    def _run(self) -> None:
        while True:
            try:
                self._loop()
                return
            except Exception:  # noqa: BLE001 - nothing may end this thread but close()
                self._fault()

    def _loop(self) -> None:
        next_tick = self._clock()
        while True:
            with self._wake:
                if not self._final and not self._closed:
                    if not self._observers or (not self._dirty and not self._running()):
                        # Idle: no wake-ups at all until a change (a quiet kernel costs no CPU).
                        self._idle = True
                        self._wake.wait()
                        self._idle = False
                    else:
                        self._wake.wait(max(0.0, next_tick - self._clock()))
                self.wakeups += 1
                final, self._final = self._final, []
                closed = self._closed
            now = self._clock()
            for job in final:
                self._deliver(job, now)
                self._paces.pop(job.id, None)
                self._last_sig.pop(job.id, None)
            if now >= next_tick or closed:
                self.tick(now)
                next_tick = now + self.interval
            if closed:
                return

    def tick(self, now: float | None = None) -> None:
        """Deliver what is due at ``now`` (default: the clock's); the
        notifier's thread calls this every `interval`."""
        now = self._clock() if now is None else now
        if not self._observers:
            return
        with self._wake:
            candidates = dict(self._dirty)
        for job in self._running():
            candidates.setdefault(job.id, job)
        for job_id, job in candidates.items():
            if job.done():
                with self._wake:
                    self._dirty.pop(job_id, None)
                continue
            pace = self._paces.get(job_id)
            if pace is not None and pace.due_in(now) > 0:
                continue
            if job_id not in self._dirty and self._last_sig.get(job_id) == self._signature(job):
                continue
            with self._wake:
                self._dirty.pop(job_id, None)
            self._deliver(job, now)
