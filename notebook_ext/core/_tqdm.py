"""tqdm bars inside jobs drive the job's progress.

A bar made while a job runs (``tqdm``, ``tqdm.auto``, ``tqdm.notebook``,
``tqdm.asyncio``, ``tqdm.contrib.concurrent``'s maps; in any executor) is
made as a subclass of its own class whose ``display`` writes to the job
instead of a terminal or a widget: the outermost open bar is the job's
progress (n, total, desc; the rate follows from n), inner bars are the
message line. Nothing is shown anywhere else. Outside jobs tqdm is untouched.

tqdm is patched only once it is imported (a finder on ``sys.meta_path``
waits for ``tqdm.std``), so jobs cost nothing when it is not used or not
installed. The hook is tqdm's own: ``tqdm.__new__`` picks the class, and
``display`` is the method tqdm documents for overloading.
"""

from __future__ import annotations

import sys
import threading
import weakref
from typing import Any, Callable, Protocol, cast

from ._hooks import HOOKS
from ._states import JobCancelled
from ._text import clean, format_number

_current: Callable[[], Any] = lambda: None  # noqa: E731 - set by install()
_lock = threading.Lock()
_classes: dict[type, type] = {}
# Front ends of their own that must not open (a widget, a window, a rich live view):
# such bars become plain bars of the job (asyncio-capable when their class was).
_FRONT_ENDS = (("tqdm.notebook", "tqdm_notebook"), ("tqdm.rich", "tqdm_rich"), ("tqdm.gui", "tqdm_gui"),
               ("tqdm.tk", "tqdm_tk"))


class _Nowhere:
    """The file a job's bar writes to: nothing is written."""

    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


_NOWHERE = _Nowhere()


class _TqdmMethods(Protocol):
    """What `JobBar` calls on the tqdm class it is mixed in before (its ``super()``)."""

    def update(self, n: float = 1) -> bool | None: ...

    def close(self) -> None: ...


class JobBar:
    """Mixed in before a tqdm class: the bar reports to its job."""

    _nbx_ctx: Any = None
    _nbx_closed = False
    disable: bool  # set by tqdm's __init__

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._nbx_ctx = _current()
        kwargs["file"] = _NOWHERE
        if kwargs.get("disable") is None:  # tqdm disables itself for a file that is no tty
            kwargs["disable"] = False
        kwargs.pop("display", None)  # tqdm.notebook's own argument
        super().__init__(*args, **kwargs)
        if not self.disable and self._nbx_ctx is not None:
            bars = self._nbx_ctx.bars
            if bars is None:
                bars = self._nbx_ctx.bars = []
            bars.append(self)
            self._nbx_push()

    def display(self, msg: Any = None, pos: Any = None) -> bool:
        # Called with tqdm's global write lock held (and no finally to free
        # it): never raise here.
        if self._nbx_ctx is not None:
            self._nbx_push()
        return True

    def update(self, n: float = 1) -> Any:
        shown = cast(_TqdmMethods, super()).update(n)
        ctx = self._nbx_ctx
        if ctx is not None and ctx.attention and ctx.cancel_reason is not None and not self._nbx_closed:
            raise JobCancelled(ctx.cancel_reason)  # a tqdm loop is a cancellation point, as progress() is
        return shown

    def close(self) -> None:
        try:
            cast(_TqdmMethods, super()).close()
        finally:
            if not self._nbx_closed and self._nbx_ctx is not None:
                self._nbx_closed = True
                self._nbx_push()
                bars = self._nbx_ctx.bars or []
                if self in bars:
                    bars.remove(self)
                    if bars:
                        bars[0]._nbx_push()

    def _nbx_push(self) -> None:
        ctx = self._nbx_ctx
        bars = [b for b in (ctx.bars or ()) if not b._nbx_closed or b is self]
        if not bars:
            return
        outer = bars[0]
        if outer is self:
            ctx.total = self.total
            ctx.done = self.n
        parts = [_label(outer)] if outer.desc else []
        for bar in bars[1:]:
            count = format_number(bar.n)
            if bar.total:
                count += f"/{format_number(bar.total)}"
            parts.append(f"{_label(bar) or 'inner'} {count}")
        ctx.message = clean(" · ".join(p for p in parts if p))


def _label(bar: Any) -> str:
    return str(bar.desc or "").strip().rstrip(":").strip()


def _job_class(cls: type) -> type:
    made = _classes.get(cls)
    if made is not None:
        return made
    with _lock:
        made = _classes.get(cls)
        if made is None:
            base = cls
            front = tuple(getattr(sys.modules[m], n) for m, n in _FRONT_ENDS if m in sys.modules
                          and hasattr(sys.modules[m], n))
            if front and issubclass(cls, front):
                asyncio_mod = sys.modules.get("tqdm.asyncio")
                tqdm_asyncio = getattr(asyncio_mod, "tqdm_asyncio", None)
                base = tqdm_asyncio if tqdm_asyncio and issubclass(cls, tqdm_asyncio) else sys.modules["tqdm.std"].tqdm
            # Bars of jobs count among themselves: a set of instances of their own (tqdm
            # gives a new bar the first position no bar in `_instances` holds), so a
            # foreground bar made meanwhile still starts on its own line; no monitor thread.
            made = _classes[cls] = type(cls.__name__, (JobBar, base), {
                "__module__": __name__, "_instances": weakref.WeakSet(), "monitor_interval": 0})
        return made


def _patch(std: Any) -> None:
    if HOOKS.patched(std.tqdm, "__new__"):
        return
    original = std.tqdm.__new__

    def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:
        if _current() is None or issubclass(cls, JobBar):
            return original(cls, *args, **kwargs)
        made = _job_class(cls)
        bar = original(made, *args, **kwargs)
        if not isinstance(bar, cls):  # a front-end class was replaced: Python will not call __init__
            bar.__init__(*args, **kwargs)
        return bar

    HOOKS.replace(std.tqdm, "__new__", staticmethod(__new__), "tqdm.std.tqdm.__new__")


def install(current: Callable[[], Any]) -> None:
    """Make tqdm bars made inside jobs report to them (idempotent; `HOOKS`
    owns the patch and the finder that waits for tqdm's import, and undoes them)."""
    global _current
    _current = current
    HOOKS.when_imported("tqdm.std", _patch, "an import finder that patches tqdm when it is imported")
