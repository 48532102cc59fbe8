"""The engine's machinery, for executors, renderers and tests (trio's
``lowlevel`` is the model): what a user of jobs never needs, in one place,
so the rest of the package imports nothing private across packages."""

from ._asyncrun import install_asyncio_run, run
from ._channel import Channel, Closed
from ._clock import SYSTEM_CLOCK, Clock, SystemClock, TimerHandle
from ._displays import Displays
from ._context import (
    OUTPUT_LIMIT, JobContext, JobOutputRouter, Output, current_context, install_output_capture, job_context,
)
from ._dispatch import Dispatcher
from ._gil import RESPONSIVE, ResponsiveGIL
from ._hooks import HOOKS, InterpreterHooks
from ._executor import DEFAULT_EXECUTORS, Executor, ExecutorHost, ItemExecutor, ItemPlace, ItemRunner, load_executor
from ._job import JobControl, describe_error
from ._ledger import Ledger, Refused, lease_seconds, network_filesystem
from ._loopthread import LoopThread
from ._notify import Notifier, Observer
from ._pace import ITEM_BACKOFF, Backoff, Throttle
from ._files import checkpoint_folder, hold, new_checkpoint, private_folder, prune, release, write_atomic
from ._records import SCHEMA_VERSION, Owner, live_numbers
from ._store import HistoryStore, default_history_path
from ._states import CARD_FIELDS
from ._text import (TEXT_WIDTH, clean, format_number, format_value, json_number, printable, safe_repr, shorten,
                    wrap_text)
from ._tracebacks import format_traceback, is_machinery, raised_by_notebook_ext, require

__all__ = [
    "Channel", "Closed", "RESPONSIVE", "ResponsiveGIL", "DEFAULT_EXECUTORS", "HOOKS", "InterpreterHooks", "install_asyncio_run", "run", "OUTPUT_LIMIT", "SYSTEM_CLOCK", "Clock", "Dispatcher", "Displays", "Executor",
    "ExecutorHost", "ItemExecutor", "ItemPlace", "ItemRunner", "HistoryStore", "JobContext", "JobControl", "JobOutputRouter", "LoopThread",
    "Notifier", "Observer", "Backoff", "ITEM_BACKOFF", "Throttle", "Output", "SystemClock", "TimerHandle", "clean", "current_context",
    "default_history_path", "describe_error", "format_number", "format_traceback", "format_value", "is_machinery", "raised_by_notebook_ext", "require", "install_output_capture", "job_context", "load_executor",
    "json_number", "printable", "safe_repr", "CARD_FIELDS", "shorten", "TEXT_WIDTH", "wrap_text",
    "Ledger", "Owner", "Refused", "SCHEMA_VERSION", "live_numbers", "lease_seconds", "network_filesystem",
    "checkpoint_folder", "hold", "new_checkpoint", "private_folder", "prune", "release", "write_atomic",
]
