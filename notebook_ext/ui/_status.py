"""Keep the kernel's status true while a cell runs.

A kernel reports ``busy`` / ``idle`` around every request it handles, on
every channel: a control request (JupyterLab's widget manager asks for a
subshell when a kernel's first widget appears; the debugger asks about its
state) or a message on a subshell (a card's button) ends with ``idle``
while the main shell still runs a cell. Front ends show the last status
they got (JupyterLab's status bar reads "Idle" beside a running cell, and
stays so until the cell ends). After such an ``idle``, while the main
shell runs a cell, the kernel says ``busy`` again for that cell.

The same wrapper tells the core when the main shell starts and ends a
request (`RESPONSIVE.foreground`), so thread jobs give way to it.

This wraps ipykernel's ``Kernel._publish_status`` (a private method), so it
lives here alone and fails quietly: if ipykernel changes, the status is as
before (and job threads do not give way).
"""

from __future__ import annotations

import threading
from typing import Any

from ..core.lowlevel import HOOKS, RESPONSIVE


def keep_status_true(kernel: Any) -> bool:
    """Wrap ``kernel``'s status publishing (idempotent); True when in place."""
    real = getattr(kernel, "_publish_status", None)
    if real is None or not callable(getattr(kernel, "get_parent", None)):
        return False
    if HOOKS.patched(kernel, "_publish_status"):
        return True
    lock = threading.Lock()
    running: list[Any] = [None]  # the main shell's request while it runs one

    def publish_status(status: str, channel: str, parent: Any = None) -> Any:
        try:
            msg = parent or kernel.get_parent(channel)
            header = (msg or {}).get("header") or {}
        except Exception:  # noqa: BLE001 - whatever ipykernel keeps there now
            return real(status, channel, parent)
        if channel == "shell" and not header.get("subshell_id"):  # the main shell
            if status in ("busy", "idle"):  # job threads give way while it handles a request
                RESPONSIVE.foreground(status == "busy")
            with lock:  # its idle and a re-said busy never cross
                running[0] = msg if status == "busy" else None
                return real(status, channel, parent)
        result = real(status, channel, parent)
        if status == "idle":
            with lock:
                if running[0] is not None:
                    real("busy", "shell", running[0])
        return result

    HOOKS.replace(kernel, "_publish_status", publish_status, "the kernel's status (busy while a cell runs)")
    return True
