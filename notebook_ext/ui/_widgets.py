"""The widgets: `JobCard` (one job, or a group) and `Dashboard` (all jobs).

One anywidget model each: a card update is one comm message carrying one
JSON snapshot; the browser draws it (``card.js``). Buttons send actions
back; their handlers are thread-safe, since with kernel subshells they run
on a subshell thread while a cell blocks the main one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from ..core import ACTIVE_STATES, Job, Scheduler
from . import _render

if TYPE_CHECKING:  # pragma: no cover
    from ._pump import UpdatePump

_HERE = Path(__file__).parent
_ESM = (_HERE / "card.js").read_text(encoding="utf-8")
_CSS = (_HERE / "card.css").read_text(encoding="utf-8")


def _route_clicks(widget: Any) -> None:
    # Clicks must reach us while a cell blocks the main thread (see _subshell).
    try:
        from ._subshell import route_by_message_subshell
    except ImportError:  # pragma: no cover
        return
    route_by_message_subshell(widget)


class _Base(anywidget.AnyWidget):
    _esm = _ESM
    _css = _CSS
    kind = traitlets.Unicode("card").tag(sync=True)


class JobCard(_Base):
    """The live card of one job (a group card when the job has children).

    Made by the magics and `show`; updated from the `UpdatePump` thread.
    """

    snap = traitlets.Dict().tag(sync=True)

    def __init__(self, job: Job, pump: "UpdatePump", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job = job
        self.pump = pump
        self.last_sent = 0.0
        self.final_sent = False
        self.display_handle: Any = None
        self.add_class("nbx-job-card")
        self.on_msg(self._on_action)
        _route_clicks(self)
        self.show(job.snapshot())

    def show(self, snap: Any, children: dict[str, int] | None = None) -> None:
        """Draw ``snap`` (called by the pump; one comm message)."""
        self._last_snap = snap
        self.snap = _render.snapshot_state(snap, children)
        self.last_sent = time.monotonic()

    def _on_action(self, _widget: Any, content: dict, _buffers: Any) -> None:
        action = content.get("action") if isinstance(content, dict) else None
        job = self.job
        if action == "cancel":
            job.cancel("cancelled from its card")
        elif action == "stop":
            job.request_stop()
        elif action == "retry" and job.done():
            new = job._scheduler.retry(job)
            self.pump.rebind(self, new)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        snap = getattr(self, "_last_snap", None) or self.job.snapshot()
        if isinstance(bundle, tuple):  # (data, metadata)
            data = bundle[0]
        else:
            data = bundle
        data["text/plain"] = _render.status_line(snap)
        data["text/html"] = _render.summary_html(snap)
        return bundle


_ORDER = {"running": 0, "queued": 1, "pending": 2, "failed": 3, "timed_out": 4, "cancelled": 5, "done": 6}


class Dashboard(_Base):
    """Every job of a scheduler: counts, a sorted, filtered page of rows,
    cancel / retry per job and cancel-all. One widget model however many
    jobs there are; only the visible page is sent."""

    view = traitlets.Dict().tag(sync=True)

    def __init__(self, scheduler: Scheduler, page_size: int = 25, **kwargs: Any) -> None:
        super().__init__(kind="dashboard", **kwargs)
        self.scheduler = scheduler
        self.page_size = page_size
        self.sort, self.filter, self.page = "state", "all", 0
        self.add_class("nbx-dashboard-widget")
        self.on_msg(self._on_action)
        _route_clicks(self)
        self.refresh()

    def rows(self) -> tuple[list[Job], dict[str, int]]:
        jobs = self.scheduler.all_jobs()
        counts: dict[str, int] = {}
        for j in jobs:
            counts[j.state] = counts.get(j.state, 0) + 1
        if self.filter == "active":
            jobs = [j for j in jobs if j.state in ACTIVE_STATES]
        elif self.filter != "all":
            jobs = [j for j in jobs if j.state == self.filter]
        now = time.time()
        key = {
            "state": lambda j: (_ORDER.get(j.state, 9), -j.priority, j.id),
            "priority": lambda j: (-j.priority, _ORDER.get(j.state, 9), j.id),
            "name": lambda j: j.name,
            "elapsed": lambda j: -((j.ended or now) - j.started if j.started else 0),
            "created": lambda j: -j.id,
        }[self.sort]
        jobs.sort(key=key)
        return jobs, counts

    def refresh(self) -> None:
        """Redraw from the scheduler's jobs (one comm message)."""
        jobs, counts = self.rows()
        pages = max(1, -(-len(jobs) // self.page_size))
        self.page = min(max(0, self.page), pages - 1)
        start = self.page * self.page_size
        now = time.time()
        rows = []
        for j in jobs[start:start + self.page_size]:
            ctx = j.ctx
            rows.append({
                "name": j.name, "state": j.state, "done": ctx.done, "total": ctx.total,
                "elapsed": ((j.ended or now) - j.started) if j.started else None,
                "priority": j.priority, "executor": j.executor,
            })
        link = None
        for ex in self.scheduler.executors.values():
            link = link or ex.describe().get("dashboard_link")
        self.view = {
            "rows": rows, "counts": counts, "total": sum(counts.values()), "matching": len(jobs),
            "first": start + 1 if rows else 0, "last": start + len(rows), "page": self.page,
            "sort": self.sort, "filter": self.filter, "dashboard_link": link,
        }

    def _on_action(self, _widget: Any, content: dict, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        action = content.get("action")
        name = content.get("name")
        try:
            if action == "cancel" and name:
                self.scheduler.cancel(name, "cancelled from the dashboard")
            elif action == "retry" and name:
                self.scheduler.retry(name)
            elif action == "cancel_all":
                self.scheduler.cancel_all("cancelled from the dashboard")
            elif action == "sort" and content.get("by") in ("state", "priority", "name", "elapsed", "created"):
                self.sort = content["by"]
            elif action == "filter":
                self.filter = str(content.get("state", "all"))
            elif action == "page":
                self.page = int(content.get("page", 0))
        except (KeyError, ValueError):
            pass  # a job that went away meanwhile
        self.refresh()
