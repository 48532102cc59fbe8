"""Make a widget's buttons work while a cell blocks the kernel.

JupyterLab >= 4.4 sends widget messages over kernel subshells, which
ipykernel 7 runs on threads of their own. But ipykernel 7.4 routes a comm's
incoming messages to the subshell that last *published* on that comm
(``BaseComm._reply_subshell_for``, consulted in
``Kernel.shell_channel_thread_main``). Our cards publish from a background
thread, whose parent is the main shell, so clicks would queue behind the
running cell. For one comm at a time we route incoming messages by the
subshell the frontend chose (the message header's own ``subshell_id``).

This leans on a private hook, so it lives here alone and fails quietly: if
ipykernel changes, clicks act when the running cell ends, as before.
"""

from __future__ import annotations

from typing import Any


def _own_subshell(data: Any, default: Any) -> Any:
    # ``default`` is the subshell id from the incoming message's header.
    return default


def route_by_message_subshell(widget_or_comm: Any) -> bool:
    """Route this comm's incoming messages to the subshell named in each
    message's header. Returns True when the hook is in place."""
    comm = getattr(widget_or_comm, "comm", widget_or_comm)
    if comm is None or not callable(getattr(type(comm), "_reply_subshell_for", None)):
        return False
    try:
        comm._reply_subshell_for = _own_subshell
    except (AttributeError, TypeError):  # pragma: no cover - a frozen comm class
        return False
    return True


def restore_default_routing(widget_or_comm: Any) -> None:
    """Undo `route_by_message_subshell` (for tests and comparisons)."""
    comm = getattr(widget_or_comm, "comm", widget_or_comm)
    if comm is not None and "_reply_subshell_for" in vars(comm):
        del comm._reply_subshell_for
