"""The update pump: moves job snapshots into widgets from a thread of its own.

It never runs on the kernel's event loop or main thread, so cards keep
moving while a cell blocks. Per card at most `card_rate` messages a second;
all cards and dashboards together at most `budget` a second (the Jupyter
server drops IOPub traffic past 1,000 messages a second). Final states always
go out.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any

from ..core import JobSnapshot, Scheduler
from ._render import children_summary
from ._widgets import Dashboard, JobCard


class UpdatePump:
    def __init__(
        self,
        scheduler: Scheduler,
        *,
        card_rate: float = 10.0,
        budget: float = 100.0,
        dashboard_rate: float = 2.0,
    ) -> None:
        self.scheduler = scheduler
        self.card_interval = 1.0 / card_rate
        self.dashboard_interval = 1.0 / dashboard_rate
        self.budget = budget
        self._tokens = budget
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._cards: dict[int, list[JobCard]] = {}  # job id -> cards
        self._latest: dict[int, JobSnapshot] = {}  # job id -> newest undrawn snapshot
        self._children: dict[str, dict[str, str]] = {}  # parent name -> child name -> state
        self._group_dirty: set[str] = set()
        self._dashboards: list[Dashboard] = []
        self._dash_dirty = False
        self._dash_last = 0.0
        self._closed = False
        self.sent = 0  # messages sent, for tests and benchmarks
        self._unsubscribe = scheduler.subscribe(self._on_snapshot)
        self._thread = threading.Thread(target=self._run, name="notebook_ext-ui-pump", daemon=True)
        self._thread.start()

    # -- registration (any thread) ---------------------------------------------
    def card(self, job: Any) -> JobCard:
        """A new card for ``job``, kept up to date from now on."""
        card = JobCard(job, self)
        with self._lock:
            self._cards.setdefault(job.id, []).append(card)
            if job.children:
                self._children[job.name] = {c.name: c.state for c in job.children}
                self._group_dirty.add(job.name)
        self._wake.set()
        return card

    def rebind(self, card: JobCard, job: Any) -> None:
        """Point ``card`` at another job (after Retry)."""
        with self._lock:
            old = self._cards.get(card.job.id, [])
            if card in old:
                old.remove(card)
            card.job = job
            card.final_sent = False
            self._cards.setdefault(job.id, []).append(card)
            self._latest[job.id] = job.snapshot()
        self._wake.set()

    def dashboard(self) -> Dashboard:
        dash = Dashboard(self.scheduler)
        with self._lock:
            self._dashboards.append(dash)
        return dash

    def resend(self, jobs: list[Any] | None = None) -> None:
        """Send the cards of ``jobs`` (default: all) again from the calling
        thread, so their final state is tagged with the cell running now
        (nbclient saves widget state only from the cell it runs)."""
        with self._lock:
            cards = [c for jid, cs in self._cards.items() for c in cs
                     if jobs is None or any(j.id == jid for j in jobs)]
            dashboards = list(self._dashboards)
        for card in cards:
            card.show(card.job.snapshot(), self._group_summary(card.job.name))
            card.send_state("snap")
        for dash in dashboards:
            dash.refresh()
            dash.send_state("view")

    def close(self) -> None:
        self._unsubscribe()
        self._closed = True
        self._wake.set()
        self._thread.join(2)

    # -- input (notifier thread) -------------------------------------------------
    def _on_snapshot(self, snap: JobSnapshot) -> None:
        with self._lock:
            if snap.id in self._cards:
                self._latest[snap.id] = snap
            if snap.parent is not None:
                self._children.setdefault(snap.parent, {})[snap.name] = snap.state
                self._group_dirty.add(snap.parent)
            self._dash_dirty = True
        if snap.finished:
            self._wake.set()

    def _group_summary(self, name: str) -> dict[str, int] | None:
        with self._lock:
            kids = self._children.get(name)
            return children_summary(kids.values()) if kids else None

    # -- the thread --------------------------------------------------------------
    def _run(self) -> None:
        last = time.monotonic()
        while not self._closed:
            self._wake.wait(0.05)
            self._wake.clear()
            now = time.monotonic()
            self._tokens = min(self.budget, self._tokens + (now - last) * self.budget)
            last = now
            try:
                self._flush(now)
            except Exception:  # never let a drawing bug stop the updates
                traceback.print_exc()

    def _flush(self, now: float) -> None:
        with self._lock:
            latest = dict(self._latest)
            groups = set(self._group_dirty)
            cards = {jid: list(cs) for jid, cs in self._cards.items()}
        for jid, cs in cards.items():
            snap = latest.get(jid)
            group = cs[0].job.name in groups if cs else False
            if snap is None and not group:
                continue
            final = snap is not None and snap.finished
            for card in cs:
                if not final and now - card.last_sent < self.card_interval:
                    continue
                if not final and self._tokens < 1:
                    continue
                card.show(snap or card.job.snapshot(), self._group_summary(card.job.name))
                self._tokens -= 1
                self.sent += 1
                if final:
                    self._finalize(card)
            with self._lock:
                if all(c.last_sent >= now - 1e-9 for c in cs):
                    if self._latest.get(jid) is snap:
                        self._latest.pop(jid, None)
                    if group:
                        self._group_dirty.discard(cs[0].job.name)
                if final:
                    self._cards[jid] = [c for c in self._cards.get(jid, []) if not c.final_sent]
                    if not self._cards[jid]:
                        del self._cards[jid]
        if self._dashboards and self._dash_dirty and now - self._dash_last >= self.dashboard_interval:
            self._dash_dirty = False
            self._dash_last = now
            for dash in list(self._dashboards):
                dash.refresh()
                self.sent += 1
                self._tokens -= 1

    def _finalize(self, card: JobCard) -> None:
        card.final_sent = True
        handle = card.display_handle
        if handle is not None:
            # Refresh the saved text/html fallback for viewers without widgets.
            try:
                handle.update(card)
            except Exception:
                pass
