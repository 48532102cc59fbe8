"""Tracebacks that show the user's code: frames of notebook_ext itself, of
asyncio and of thread pools (the machinery every job runs through) are
left out of the short form, which says how many it left out. The full form
is kept beside it (``job.full_traceback``, ``%result NAME --full``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import os
import threading
import traceback
from typing import Any

from ._text import clean

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # notebook_ext/
_HIDDEN_DIRS = tuple(
    os.path.join(os.path.dirname(os.path.abspath(path)), "")
    for path in (os.path.join(_PACKAGE, "__init__.py"), asyncio.__file__, concurrent.futures.__file__)
)
_HIDDEN_FILES = {os.path.abspath(threading.__file__)}


def is_machinery(filename: str) -> bool:
    """True for a frame of notebook_ext, asyncio, thread pools or threads."""
    if filename.startswith("<frozen "):
        return True
    path = os.path.abspath(filename) if not filename.startswith("<") else filename
    return path.startswith(_HIDDEN_DIRS) or path in _HIDDEN_FILES


def raised_by_notebook_ext(exc: BaseException) -> bool:
    """True when ``exc`` was raised by notebook_ext's own code (its innermost
    frame is ours): a refusal of an argument, not an error inside a user's
    estimator or function that our code happened to call."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    path = os.path.abspath(tb.tb_frame.f_code.co_filename)
    return path.startswith(os.path.join(_PACKAGE, ""))


def _prune(te: traceback.TracebackException, seen: set[int]) -> int:
    hidden = 0
    if id(te) in seen:
        return 0
    seen.add(id(te))
    kept = [f for f in te.stack if not is_machinery(f.filename)]
    hidden += len(te.stack) - len(kept)
    te.stack = traceback.StackSummary.from_list(kept)
    for other in (te.__cause__, te.__context__, *(getattr(te, "exceptions", None) or ())):
        if other is not None:
            hidden += _prune(other, seen)
    return hidden


NAME = "NAME"  # in the hint; the job puts its own name there


def format_traceback(exc: BaseException) -> tuple[str, str]:
    """(short, full) traceback text of ``exc``: the short one has the user's
    frames only, with one closing line counting the frames left out."""
    try:
        te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
        full = clean("".join(te.format()))
        hidden = _prune(te, set())  # the same frames, pruned: formatted once more, short
        short = "".join(te.format())
        if not te.stack and short.startswith("Traceback (most recent call last):\n"):
            short = short.split("\n", 1)[1]  # nothing of the user's ran: the error line alone
        if hidden:
            short += (f"[{hidden} frame{'s' if hidden != 1 else ''} of notebook_ext and asyncio hidden: "
                      f"job.full_traceback or `%result {NAME} --full` shows them]\n")
        return clean(short), full
    except Exception as err:  # noqa: BLE001 - a user's broken __str__
        text = f"{type(exc).__name__} (its traceback could not be formatted: {type(err).__name__})"
        return text, text


class RenderedTraceback:
    """IPython's ``_render_traceback_`` hook: set on a job's exception, so
    re-raising it in a cell (``job.result()``, ``%result``) shows this text
    instead of the machinery's frames (ipyparallel's remote errors do the same)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __call__(self) -> list[str]:
        return self.text.rstrip("\n").split("\n")

    def __reduce__(self) -> Any:
        return (RenderedTraceback, (self.text,))


def attach(exc: BaseException, short: str) -> None:
    """Show ``short`` when ``exc`` is re-raised in a notebook cell."""
    try:
        setattr(exc, "_render_traceback_", RenderedTraceback(short))
    except (AttributeError, TypeError):  # an exception type that takes no attributes
        pass


def require(module: str, install: str, what: str) -> Any:
    """``import module``; when it is not installed, a `ModuleNotFoundError`
    of one line naming what needs it and what to install (shown as that one
    line in a notebook, not as a traceback)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise  # the module is there but something it imports is broken: that error is the news
        error = ModuleNotFoundError(f"{what} needs {top}, which is not installed: pip install {install}",
                                    name=module)
        attach(error, f"ModuleNotFoundError: {error}")
        raise error from None
