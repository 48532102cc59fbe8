"""Machinery for people extending notebook_ext (new executors, renderers,
tests): the core's `notebook_ext.core.lowlevel` and the executors, in one
namespace. Users of jobs never need it."""

from .core.lowlevel import *  # noqa: F401,F403
from .core.lowlevel import __all__ as _core_all
from .executors import ExecutorBase, LoopExecutor, ProcessExecutor, ThreadExecutor

__all__ = [*_core_all, "ExecutorBase", "LoopExecutor", "ProcessExecutor", "ThreadExecutor"]
