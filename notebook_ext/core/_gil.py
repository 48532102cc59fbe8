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
"""

from __future__ import annotations

import os
import sys
import threading
from types import TracebackType

#: the interval while thread jobs run, in seconds (0.2 ms: measured, see above)
DEFAULT_SWITCH_INTERVAL = 0.0002

class _Unset:
    """No argument given."""


_UNSET = _Unset()


def _from_environment() -> float | None:
    raw = os.environ.get("NOTEBOOK_EXT_SWITCH_INTERVAL", "").strip().lower()
    if not raw:
        return DEFAULT_SWITCH_INTERVAL
    if raw in ("off", "none", "0", "no"):
        return None
    try:
        return _checked(float(raw))
    except ValueError:
        raise ValueError(f"NOTEBOOK_EXT_SWITCH_INTERVAL must be a number of seconds or 'off', got {raw!r}") from None


def _checked(seconds: float) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= 1:
        raise ValueError(f"the switch interval must be a number of seconds in (0, 1], got {seconds!r}")
    return float(seconds)


class ResponsiveGIL:
    """Counts the threads running job code; the first one in shortens the
    switch interval, the last one out gives the user's value back.

    Used as a context manager around a thread's job code. One per process
    (the interval is the interpreter's): `RESPONSIVE`.
    """

    def __init__(self, interval: float | None) -> None:
        self._lock = threading.Lock()
        self.interval = interval  # None: never change the interpreter's setting
        self.running = 0  # threads inside
        self._saved: float | None = None  # the user's value, while ours is set
        self._ours: float | None = None  # what we set (as the interpreter reads it back)

    def __enter__(self) -> "ResponsiveGIL":
        with self._lock:
            self.running += 1
            if self.running == 1:
                self._shorten()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with self._lock:
            self.running -= 1
            if self.running == 0:
                self._restore()

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


RESPONSIVE = ResponsiveGIL(_from_environment())


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
