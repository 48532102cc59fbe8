"""``display()`` from a job lands on the job's card.

The kernel routes every display message to the cell that runs *now*, so
output shown by a background job used to appear in whatever cell the user
ran next. `route_displays` wraps the shell's display publisher: inside a job
(the current `JobContext` has a `Job`), ``display``, ``update_display`` and
``clear_output`` go to that job's `Displays`; everywhere else they go on
as before. matplotlib's inline ``plt.show()`` is a ``display()`` too.
"""

from __future__ import annotations

from typing import Any

from ..core.lowlevel import HOOKS, current_context
from ._figures import own_figures

#: what a card can draw, in order of preference
MIME_ORDER = ("text/html", "image/svg+xml", "image/png", "image/jpeg", "text/markdown", "text/latex", "text/plain")


def route_displays(shell: Any) -> None:
    """Send displays made by job code to its card (idempotent)."""
    own_figures()  # a job's figures are drawn by the job alone, and shown on its card
    pub = getattr(shell, "display_pub", None)
    if pub is None or HOOKS.patched(pub, "publish"):
        return
    publish, clear = pub.publish, pub.clear_output

    def routed_publish(data: dict, metadata: dict | None = None, *args: Any, transient: dict | None = None,
                       update: bool = False, **kwargs: Any) -> Any:
        ctx = current_context()
        if ctx is None or ctx.job is None:
            return publish(data, metadata, *args, transient=transient, update=update, **kwargs)
        display_id = (transient or {}).get("display_id")
        ctx.displays.add(dict(data), dict(metadata or {}), display_id, update)
        return None

    def routed_clear(wait: bool = False) -> Any:
        ctx = current_context()
        if ctx is None or ctx.job is None:
            return clear(wait)
        ctx.displays.clear(wait)
        return None

    with HOOKS.lock:  # the hook layer owns them: `%unload_ext` puts the publisher's own back
        HOOKS.replace(pub, "publish", routed_publish, "the shell's display_pub.publish")
        HOOKS.replace(pub, "clear_output", routed_clear, "the shell's display_pub.clear_output")


def best_mime(entry: dict) -> dict[str, Any]:
    """One display as the card draws it: its best mime type, data and metadata."""
    data = entry.get("data") or {}
    for mime in MIME_ORDER:
        value = data.get(mime)
        if isinstance(value, str):
            return {"mime": mime, "data": value, "metadata": (entry.get("metadata") or {}).get(mime, {})}
    return {"mime": "text/plain", "data": f"<{', '.join(sorted(data)) or 'empty'} output>", "metadata": {}}
