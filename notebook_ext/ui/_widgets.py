"""The widgets: `JobCard` (one job, or a group) and `Dashboard` (all jobs).

They only render: a card draws the snapshots it is given; a dashboard draws
rows made from snapshots. Button clicks become actions handed to an
``on_action`` callback (the `UpdatePump`, which keeps all bookkeeping).
With kernel subshells those clicks arrive on a subshell thread while a cell
blocks the main one, so the callback must be thread-safe.

One anywidget model each: an update is one comm message carrying one JSON
state; the browser draws it (``card.js``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import anywidget
import traitlets

from ..core import ACTIVE_STATES, JobSnapshot
from ..core.lowlevel import SYSTEM_CLOCK, Clock
from . import _render
from ._display import best_mime

_HERE = Path(__file__).parent
_ESM = (_HERE / "card.js").read_text(encoding="utf-8")
_CSS = _render.THEME_CSS + (_HERE / "card.css").read_text(encoding="utf-8")

Action = Callable[[Any, dict], None]  # (widget, message content)

#: The card's own MIME type, saved beside the widget view: what the job's
#: card last showed (and its id in the job ledger). The JupyterLab /
#: Notebook 7 extension draws it when the widget cannot be (a reopened
#: notebook, a restarted kernel) and mounts the live widget over it otherwise.
CARD_MIME = "application/vnd.notebook-ext.card+json"
CARD_MIME_VERSION = 1


def _route_clicks(widget: Any) -> None:
    # Clicks must reach us while a cell blocks the main thread (see _subshell).
    try:
        from ._subshell import route_by_message_subshell
    except ImportError:  # pragma: no cover
        return
    route_by_message_subshell(widget)


_layout: Any = None


def _shared_layout() -> Any:
    # Every DOM widget gets a Layout widget of its own by default: a second
    # comm to open per card. Ours never change theirs, so all share one.
    global _layout
    if _layout is None or getattr(_layout, "comm", None) is None:
        import ipywidgets

        _layout = ipywidgets.Layout()
    return _layout


class _Base(anywidget.AnyWidget):
    _esm = _ESM
    _css = _CSS
    kind = traitlets.Unicode("card").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("layout", _shared_layout())
        super().__init__(**kwargs)

    def _init_actions(self, on_action: Action | None) -> None:
        self._on_action = on_action
        self.on_msg(self._received)
        _route_clicks(self)

    def _received(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and self._on_action is not None:
            self._on_action(self, content)

    @property
    def closed(self) -> bool:
        """True once the widget was closed (by the kernel or its front end)."""
        return getattr(self, "comm", None) is None

    #: told ``(widget, handle)`` each time the widget is displayed (the
    #: `UpdatePump`: what the notebook saves is refreshed through the handle)
    on_displayed: Callable[[Any, Any], None] | None = None

    def bundle(self) -> tuple[dict, dict]:
        """``(data, metadata)``: the widget view, its static fallback and the
        card's own MIME type, as the notebook saves them."""
        b = self._repr_mimebundle_()
        return (b[0], b[1] or {}) if isinstance(b, tuple) else (b, {})

    def _ipython_display_(self) -> None:
        # However it is shown (a cell's value, display()), it is shown with a
        # display id the pump keeps: the saved copy then follows the job to its
        # end. A cell's value had none, and was saved as it was when shown.
        from IPython.display import display

        data, metadata = self.bundle()
        handle = display(data, metadata=metadata, raw=True, display_id=True)
        if self.on_displayed is not None:
            self.on_displayed(self, handle)


class JobCard(_Base):
    """The live card of one job (a group card when the job has children).

    Made by `notebook_ext.ui.card`; drawn from snapshots by the `UpdatePump`.
    """

    snap = traitlets.Dict().tag(sync=True)
    #: the job's rich outputs (display(), figures); sent only when they change
    displays = traitlets.List().tag(sync=True)

    def __init__(self, snapshot: JobSnapshot, on_action: Action | None = None, *, uid: str = "",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: the job's id in the ledger (``session:N``)
        self.uid = uid
        self._shown_displays: tuple = ()
        self.add_class("nbx-job-card")
        self._init_actions(on_action)
        self.show(snapshot)

    def show(self, snap: JobSnapshot, children: Mapping[str, int] | None = None) -> None:
        """Draw ``snap`` (one comm message). A job's card never goes back
        from its final state: a snapshot taken before the job ended, arriving
        late (a slow notifier), is not drawn over it."""
        last = getattr(self, "_last_snap", None)
        if last is not None and last.id == snap.id and last.finished and not snap.finished:
            return
        self._last_snap = snap
        if snap.displays is not self._shown_displays:
            self._shown_displays = snap.displays
            self.displays = [best_mime(e) for e in snap.displays]
        self.snap = {**_render.snapshot_state(snap, children), "uid": self.uid}

    @property
    def last_snapshot(self) -> JobSnapshot:
        return self._last_snap

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle  # (data, metadata)
        data.update(_render.static_bundle(self._last_snap))
        data[CARD_MIME] = {"version": CARD_MIME_VERSION, "kind": "card", "uid": self.uid,
                           "name": self._last_snap.name, "snap": dict(self.snap)}
        return bundle


@dataclass(frozen=True)
class DashboardRow:
    """What the dashboard keeps of a job: a few fields of its latest snapshot."""

    id: int
    name: str
    state: str
    done: float
    total: float | None
    started: float | None
    ended: float | None
    priority: int
    executor: str

    @classmethod
    def of(cls, snap: JobSnapshot) -> "DashboardRow":
        p = snap.progress
        return cls(snap.id, snap.name, snap.state, p.done, p.total, snap.started, snap.ended,
                   snap.priority, snap.executor)


_ORDER = {"running": 0, "queued": 1, "pending": 2, "failed": 3, "timed_out": 4, "cancelled": 5, "done": 6}
SORTS = ("state", "priority", "name", "elapsed", "created")


class Dashboard(_Base):
    """Every job: counts, a sorted, filtered page of rows, cancel / retry per
    job and cancel-all. One widget model however many jobs there are; only
    the visible page is sent. Sort, filter and page are its own view state;
    job actions go to ``on_action``."""

    view = traitlets.Dict().tag(sync=True)

    def __init__(self, on_action: Action | None = None, page_size: int = 25, *, title: str = "notebook_ext jobs",
                 only: set[int] | None = None, clock: Clock = SYSTEM_CLOCK, **kwargs: Any) -> None:
        super().__init__(kind="dashboard", **kwargs)
        self.clock = clock  # the jobs' clock: a running job's elapsed time is counted to its now
        self.page_size = page_size
        self.title = title
        #: ids of the jobs shown (None: every job); a group card's jobs
        self.only = only
        self.sort, self.filter, self.page = "state", "all", 0
        self._rows: list[DashboardRow] = []
        self._link: str | None = None
        self.add_class("nbx-dashboard-widget")
        self._init_actions(on_action)

    def show(self, rows: list[DashboardRow], dashboard_link: str | None = None) -> None:
        """Draw ``rows`` (one comm message)."""
        if self.only is not None:
            rows = [r for r in rows if r.id in self.only]
        self._rows, self._link = rows, dashboard_link
        self._draw()

    def visible(self) -> tuple[list[DashboardRow], dict[str, int]]:
        """The rows matching the filter, sorted; and the count per state."""
        rows = list(self._rows)
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.state] = counts.get(r.state, 0) + 1
        if self.filter == "active":
            rows = [r for r in rows if r.state in ACTIVE_STATES]
        elif self.filter != "all":
            rows = [r for r in rows if r.state == self.filter]
        now = self.clock.time()
        key = {
            "state": lambda r: (_ORDER.get(r.state, 9), -r.priority, r.id),
            "priority": lambda r: (-r.priority, _ORDER.get(r.state, 9), r.id),
            "name": lambda r: r.name,
            "elapsed": lambda r: -(((r.ended or now) - r.started) if r.started else 0),
            "created": lambda r: -r.id,
        }[self.sort]
        rows.sort(key=key)
        return rows, counts

    def _draw(self) -> None:
        rows, counts = self.visible()
        pages = max(1, -(-len(rows) // self.page_size))
        self.page = min(max(0, self.page), pages - 1)
        start = self.page * self.page_size
        now = self.clock.time()
        page = [{
            "name": r.name, "state": r.state, "done": _render._num(r.done), "total": _render._num(r.total),
            "elapsed": ((r.ended or now) - r.started) if r.started else None,
            "priority": r.priority, "executor": r.executor,
        } for r in rows[start:start + self.page_size]]
        self.view = {
            "rows": page, "counts": counts, "total": sum(counts.values()), "matching": len(rows),
            "first": start + 1 if page else 0, "last": start + len(page), "page": self.page,
            "sort": self.sort, "filter": self.filter, "dashboard_link": self._link, "title": self.title,
        }

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle  # (data, metadata)
        data.update(_render.dashboard_bundle(self.view))
        data[CARD_MIME] = {"version": CARD_MIME_VERSION, "kind": "dashboard", "view": dict(self.view)}
        return bundle

    def _received(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        action = content.get("action")
        if action == "sort" and content.get("by") in SORTS:
            self.sort = content["by"]
        elif action == "filter":
            self.filter = str(content.get("state", "all"))
        elif action == "page":
            try:
                self.page = int(content.get("page", 0))
            except (TypeError, ValueError):
                return
        else:
            super()._received(_widget, content, _buffers)
            return
        self._draw()
