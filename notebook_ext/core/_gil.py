"""The one interpreter setting notebook_ext changes: the GIL's switch
interval, shortened only while job code runs on threads of ours.

A thread that gives up the GIL (the kernel's, for every socket read and
write) waits up to the switch interval to get it back from a thread that
computes in pure Python. CPython's default is 5 ms, and a kernel reply
needs dozens of such waits: with two pure-Python thread jobs a trivial cell
took 250-450 ms. At 0.2 ms it takes 15-30 ms, and the jobs keep 0.95x their
speed (README, Measured). So while at least one thread job (or a thread
stage's worker) runs, the interval is `switch_interval()`'s; when the last
ends, the user's own value comes back. It is never touched while none runs,
and a value the user set meanwhile is kept.

Set ``NOTEBOOK_EXT_SWITCH_INTERVAL=off`` (or call ``switch_interval(None)``)
to leave the interpreter alone.

A short interval still shares the GIL fairly: two computing job threads and
the kernel's thread each get a third of it, so a 5 ms reply took about 15
ms more. So job threads also *give way*: while the kernel's main shell
handles a request (from its ``busy`` to its ``idle``, told by `ui`'s status
hook through `ResponsiveGIL.foreground`), a job thread that reaches
`progress`, `report` or `checkpoint` (or a thread stage's worker between
items) waits until the kernel is idle, at most `give_way()` seconds (0.1 s)
from the request's start. A trivial cell then takes what it takes beside
plain processes (README, Measured), and a long cell stalls the jobs for no
more than that grace. ``NOTEBOOK_EXT_GIVE_WAY=off`` or ``give_way(None)``
turns it off. The jobs learn of it through their context's one
``attention`` flag, the same one a cancel raises, which those hot paths test
anyway: while the kernel is idle, giving way costs them nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from types import TracebackType
from typing import Iterator, Protocol

from ._clock import SYSTEM_CLOCK, Clock

#: the interval while thread jobs run, in seconds (0.2 ms: measured, see above)
DEFAULT_SWITCH_INTERVAL = 0.0002
#: how long job threads give way to a request the kernel handles, at most, in seconds
DEFAULT_GIVE_WAY = 0.1
#: how often a job thread that gives way looks whether its job was asked to cancel, in seconds
CANCEL_CHECK = 0.05

class _Attending(Protocol):
    """A job's context as giving way sees it (`JobContext`)."""

    attention: bool
    cancel_reason: str | None


class _Unset:
    """No argument given."""


_UNSET = _Unset()


def _from_environment(variable: str, default: float, what: str, most: float) -> float | None:
    raw = os.environ.get(variable, "").strip().lower()
    if not raw:
        return default
    if raw in ("off", "none", "0", "no"):
        return None
    try:
        return _checked(float(raw), what, most)
    except ValueError:
        raise ValueError(f"{variable} must be a number of seconds or 'off', got {raw!r}") from None


def _checked(seconds: float, what: str = "the switch interval", most: float = 1.0) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= most:
        raise ValueError(f"{what} must be a number of seconds in (0, {most:g}], got {seconds!r}")
    return float(seconds)


class ResponsiveGIL:
    """Counts the threads running job code; the first one in shortens the
    switch interval, the last one out gives the user's value back.

    Used as a context manager around a thread's job code. One per process
    (the interval is the interpreter's): `RESPONSIVE`.
    """

    def __init__(self, interval: float | None, grace: float | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self._lock = threading.Lock()
        self.interval = interval  # None: never change the interpreter's setting
        self.running = 0  # threads inside
        self._saved: float | None = None  # the user's value, while ours is set
        self._ours: float | None = None  # what we set (as the interpreter reads it back)
        # giving way (see the module's docstring)
        self.grace = grace  # None: job threads never wait for the kernel
        self.clock = clock
        self.busy = False  # the kernel handles a request whose grace has not run out
        self._until = 0.0  # when that grace runs out (clock.monotonic)
        self._idle = threading.Event()
        self._idle.set()
        self._mine = threading.local()  # .depth: how deep this thread runs job code inside us
        self._jobs: dict[_Attending, int] = {}  # contexts of the jobs running inside us (threads each)
        self.waiting = 0  # job threads giving way now

    def __enter__(self) -> "ResponsiveGIL":
        self._mine.depth = getattr(self._mine, "depth", 0) + 1
        with self._lock:
            self.running += 1
            if self.running == 1:
                self._shorten()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._mine.depth -= 1
        with self._lock:
            self.running -= 1
            if self.running == 0:
                self._restore()

    @contextlib.contextmanager
    def job(self, ctx: "_Attending | None") -> Iterator[None]:
        """Around a thread's job code: the short interval (as ``with self``),
        and the job's context told to give way while the kernel is busy
        (`progress`, `report`, `checkpoint` test its one ``attention`` flag)."""
        with self:
            if ctx is None:
                yield
                return
            with self._lock:
                self._jobs[ctx] = self._jobs.get(ctx, 0) + 1
                if self.busy:
                    ctx.attention = True
            try:
                yield
            finally:
                with self._lock:
                    left = self._jobs.pop(ctx) - 1
                    if left:
                        self._jobs[ctx] = left

    # -- giving way to the kernel ----------------------------------------------------------

    def foreground(self, busy: bool) -> None:
        """The kernel's main shell starts (True) or ends (False) handling a
        request. Called from the kernel's thread; never waits for a job."""
        with self._lock:
            if busy:
                if self.grace is None:
                    return
                self._until = self.clock.monotonic() + self.grace
                self._idle.clear()
                self.busy = True  # (before the flags: a job that sees its flag then finds it busy)
                for ctx in self._jobs:
                    ctx.attention = True
            elif self.busy:
                self._end()

    def _end(self) -> None:
        # with the lock held: the period ends, waiting threads go on, flags back to what cancel says
        self.busy = False
        self._idle.set()
        for ctx in self._jobs:
            ctx.attention = False
            if ctx.cancel_reason is not None:  # (read after the write: a cancel meanwhile is kept)
                ctx.attention = True

    def give_way(self, ctx: "_Attending | None" = None) -> None:
        """On a thread running job code while the kernel handles a request:
        wait until it is idle, at most until the request's grace runs out
        (or until ``ctx``'s job is asked to cancel: checked every 50 ms).
        Anywhere else (the loop's thread, the kernel's own, a plain thread)
        it returns at once."""
        if not self.busy or not getattr(self._mine, "depth", 0):
            return
        until = self._until
        left = until - self.clock.monotonic()
        if left > 0:
            with self._lock:
                self.waiting += 1
            try:
                while not self._idle.wait(min(left, CANCEL_CHECK)):
                    left = until - self.clock.monotonic()
                    if left <= 0 or (ctx is not None and ctx.cancel_reason is not None):
                        break
            finally:
                with self._lock:
                    self.waiting -= 1
        else:
            # a request longer than its grace: stop waiting for it. Its idle may never
            # come if the status hook is undone meanwhile (%unload_ext), so this ends it too.
            with self._lock:
                if self.busy and self._until == until:
                    self._end()

    def _shorten(self) -> None:
        """Set our interval, keeping the user's to give back (never lengthen theirs)."""
        current = sys.getswitchinterval()
        if self.interval is not None and self.interval < current:
            sys.setswitchinterval(self.interval)
            self._saved, self._ours = current, sys.getswitchinterval()

    def _restore(self) -> None:
        if self._saved is not None and sys.getswitchinterval() == self._ours:
            sys.setswitchinterval(self._saved)  # (a value the user set meanwhile stays)
        self._saved = self._ours = None

    def configure(self, interval: float | None) -> None:
        """Change the interval used while thread jobs run (None: off);
        takes effect at once when some run."""
        interval = None if interval is None else _checked(interval)
        with self._lock:
            if self.running:
                self._restore()
            self.interval = interval
            if self.running:
                self._shorten()


RESPONSIVE = ResponsiveGIL(
    _from_environment("NOTEBOOK_EXT_SWITCH_INTERVAL", DEFAULT_SWITCH_INTERVAL, "the switch interval", 1.0),
    _from_environment("NOTEBOOK_EXT_GIVE_WAY", DEFAULT_GIVE_WAY, "give_way", 10.0))


def switch_interval(seconds: float | None | _Unset = _UNSET) -> float | None:
    """The GIL switch interval notebook_ext sets while thread jobs run.

    With no argument, returns it (None: notebook_ext leaves the interpreter
    alone). ``switch_interval(0.001)`` changes it; ``switch_interval(None)``
    turns it off. It is the one interpreter setting notebook_ext changes,
    only while job code runs on its threads, and the value you had comes
    back when the last one ends (default 0.0002 s; the environment variable
    ``NOTEBOOK_EXT_SWITCH_INTERVAL`` sets it at import, ``off`` to disable).

    Examples
    --------
    >>> import notebook_ext as nx
    >>> nx.switch_interval()
    0.0002
    """
    if not isinstance(seconds, _Unset):
        RESPONSIVE.configure(seconds)
    return RESPONSIVE.interval


def give_way(seconds: float | None | _Unset = _UNSET) -> float | None:
    """How long job threads give way to a request the kernel handles, at most.

    While the kernel's main shell handles a request (a cell, a widget's
    message, a completion), thread jobs that reach `progress`, `report` or
    `checkpoint`, and thread stages between items, wait until it is done, at
    most this long from the request's start (default 0.1 s), so a short cell
    answers as fast as beside no jobs and a long cell stalls them only that
    long. With no argument, returns it (None: off); ``give_way(0.5)`` changes
    it, ``give_way(None)`` turns it off (the environment variable
    ``NOTEBOOK_EXT_GIVE_WAY`` sets it at import, ``off`` to disable). Only in
    a kernel with ``%load_ext notebook_ext`` or a card shown: these hook the
    kernel's status, which tells when a request starts and ends.

    Examples
    --------
    >>> import notebook_ext as nx
    >>> nx.give_way()
    0.1
    """
    if not isinstance(seconds, _Unset):
        grace = None if seconds is None else _checked(seconds, "give_way", 10.0)
        RESPONSIVE.grace = grace
        if grace is None:
            RESPONSIVE.foreground(False)
    return RESPONSIVE.grace
