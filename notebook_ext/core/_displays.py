"""A job's rich outputs (``display()``, figures): mime bundles, bounded like
its text output. The ui layer routes IPython's display messages here
(`notebook_ext.ui._display`); cards draw them."""

from __future__ import annotations

import threading
from typing import Any

DISPLAY_LIMIT = 30  # rich outputs (display(), figures) kept per job: the latest
DISPLAY_BYTES = 4_000_000  # and at most this much of them


class Displays:
    """A job's rich outputs (``display()``, figures): mime bundles, the
    latest kept within `DISPLAY_LIMIT` and `DISPLAY_BYTES`. Readers take
    `items`, an immutable tuple replaced on every change."""

    __slots__ = ("items", "dropped", "version", "_lock", "_clear_on_next")

    def __init__(self) -> None:
        self.items: tuple[dict[str, Any], ...] = ()
        self.dropped = 0
        self.version = 0
        self._lock = threading.Lock()
        self._clear_on_next = False

    def add(self, data: dict[str, Any], metadata: dict[str, Any] | None = None, display_id: str | None = None,
            update: bool = False) -> None:
        entry: dict[str, Any] = {"data": data, "metadata": metadata or {}, "id": display_id}
        size = _bundle_size(entry)
        if size > DISPLAY_BYTES:  # the bound holds for one item too: a note stands in for it
            entry = {"data": {"text/plain": _too_big_note(data, size)}, "metadata": {}, "id": display_id}
        with self._lock:
            items = list(self.items)
            if self._clear_on_next:
                self._clear_on_next, items = False, []
            if update:  # update_display(): replace the output of that id (none: nothing to update)
                items = [entry if e["id"] == display_id else e for e in items]
            else:
                items.append(entry)
            size = sum(_bundle_size(e) for e in items)
            while len(items) > 1 and (len(items) > DISPLAY_LIMIT or size > DISPLAY_BYTES):
                size -= _bundle_size(items.pop(0))
                self.dropped += 1
            self.items = tuple(items)
            self.version += 1

    def clear(self, wait: bool = False) -> None:
        """``clear_output()``; with ``wait``, at the next display."""
        with self._lock:
            if wait:
                self._clear_on_next = True
                return
            self.items = ()
            self.version += 1


def _bundle_size(entry: dict[str, Any]) -> int:
    return sum(len(v) if isinstance(v, (str, bytes)) else 64 for v in entry["data"].values())


PLAIN_HEAD = 2_000  # characters of an oversized display's text/plain kept in its note


def _too_big_note(data: dict[str, Any], size: int) -> str:
    plain = data.get("text/plain")
    head = plain[:PLAIN_HEAD] + ("…" if len(plain) > PLAIN_HEAD else "") if isinstance(plain, str) else ""
    kinds = ", ".join(sorted(str(k) for k in data)) or "no data"
    note = (f"[notebook_ext: a display of {size / 1e6:.1f} MB ({kinds}) is over the card's "
            f"{DISPLAY_BYTES / 1e6:.0f} MB bound and is not shown; save it to a file, or display it from a cell]")
    return f"{head}\n{note}" if head else note
