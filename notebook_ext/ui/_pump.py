"""The update pump: the controller between jobs and their widgets.

It receives job snapshots, draws them into cards and dashboards from a
thread of its own (never the kernel's event loop or main thread, so cards
keep moving while a cell blocks), and acts on their buttons (cancel, stop,
retry). All bookkeeping is here: which card shows which job, when it was
last drawn, its display handle; widgets only render.

Per card at most `card_rate` messages a second; all cards and dashboards
together at most `budget` a second (the Jupyter server drops IOPub traffic
past 1,000 messages a second). Final states always go out.
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass
from typing import Any

from ..core import Job, JobSnapshot, Scheduler
from ..core.lowlevel import Throttle, describe_error
from ._frontend import declared_frontend
from ._render import children_summary, dashboard_bundle, static_bundle
from ._widgets import Dashboard, DashboardRow, JobCard


#: seconds a finished card waits, at its cell's end, for a front end's hello
#: before it is saved as a static card; only while the kernel's first cards
#: are young (a page's first hello can take a second), so a run without a
#: front end pays it once at most
FRONTEND_GRACE = 2.0


@dataclass
class _CardEntry:
    card: JobCard
    job: Job
    pace: Throttle  # its updates: at most card_rate a second
    final_sent: bool = False
    display_handle: Any = None
    draw_failed: bool = False
    static: bool = False  # its display shows the static card, not the widget


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
        self.clock = scheduler.clock
        self.card_interval = 1.0 / card_rate
        self.dashboard_interval = 1.0 / dashboard_rate
        self.budget = budget
        self._tokens = budget
        self._last_refill = self.clock.monotonic()
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._entries: dict[int, list[_CardEntry]] = {}  # job id -> its cards
        self._by_card: dict[int, _CardEntry] = {}  # id(card) -> entry
        self._latest: dict[int, JobSnapshot] = {}  # job id -> newest undrawn snapshot
        self._children: dict[str, dict[str, str]] = {}  # parent name -> child name -> state
        # parent name -> a mark bumped whenever its sub-jobs' summary changes
        # (or a card of it appears): a drawing clears only the mark it saw
        self._group_dirty: dict[str, int] = {}
        self._rows: dict[int, DashboardRow] = {}  # every job seen, for dashboards
        self._dashboards: list[Dashboard] = []
        self._dash_saved: dict[int, list] = {}  # id(dashboard) -> [dashboard, display handle, text last saved]
        # Set once a front end that draws widgets says hello (card.js does
        # when it gets a model): until then nobody can draw a widget, and
        # finished cards are saved as their static summary. Set at once when
        # the environment declares one (Voila runs every cell before its page
        # connects, so no hello can come in time).
        self._frontend = threading.Event()
        if declared_frontend() is not None:
            self._frontend.set()
        self._first_card: float | None = None  # when the first card was made
        self._dash_dirty = False
        self._dash_pace = Throttle(self.dashboard_interval, self.clock)  # the dashboards' redraws
        self._closed = False
        self.sent = 0  # widget updates sent, for tests and benchmarks
        self.draw_errors = 0  # updates that raised (each job is told once, on its output)
        for job in scheduler.all_jobs():  # jobs from before this pump
            self._rows[job.id] = DashboardRow.of(job.snapshot())
        self._unsubscribe = scheduler.subscribe(self._on_snapshot)
        self._thread = threading.Thread(target=self._run, name="notebook_ext-ui-pump", daemon=True)
        self._thread.start()

    # -- widgets (any thread) ------------------------------------------------------
    def card(self, job: Job) -> JobCard:
        """A new card for ``job``, kept up to date from now on."""
        card = JobCard(job.snapshot(), on_action=self._card_action, uid=self._uid(job))
        card.on_displayed = self._displayed
        now = self.clock.monotonic()
        entry = _CardEntry(card, job, Throttle(self.card_interval, self.clock))
        entry.pace.mark(now)  # it is drawn as it is shown
        if self._first_card is None:
            self._first_card = now
        with self._lock:
            self._entries.setdefault(job.id, []).append(entry)
            self._by_card[id(card)] = entry
            if job.children:
                self._children[job.name] = {c.name: c.state for c in job.children}
                self._group_dirty[job.name] = self._group_dirty.get(job.name, 0) + 1
            if job.id not in self._latest and job.state != card.last_snapshot.state:
                # It started or ended between the card's first drawing and
                # now: the snapshot saying so went by before this card was
                # registered, and a quiet job may send no other.
                self._latest[job.id] = job.snapshot()
        self._wake.set()
        return card

    def _uid(self, job: Job) -> str:
        return f"{self.scheduler.session}:{job.id}"

    def job_of(self, card: JobCard) -> Job:
        """The job ``card`` shows now (it changes on Retry)."""
        with self._lock:
            return self._by_card[id(card)].job

    def set_display_handle(self, widget: JobCard | Dashboard, handle: Any) -> None:
        """The handle ``widget`` (a card or a dashboard) was displayed with:
        its saved text/HTML is refreshed when the job ends, and without a
        widget front end it becomes the static card (`draw_finished`)."""
        with self._lock:
            late = False
            if isinstance(widget, JobCard):
                entry = self._by_card[id(widget)]
                entry.display_handle = handle
                late = entry.final_sent  # its final drawing went out before its display had a handle
            else:
                self._dash_saved[id(widget)] = [widget, handle, None]
        if late and self._frontend.is_set():
            try:
                _update(handle, widget)
            except Exception:  # noqa: BLE001 - never fail the user's cell for a saved copy
                pass

    def _displayed(self, widget: JobCard | Dashboard, handle: Any) -> None:
        self.set_display_handle(widget, handle)  # looked up now: tests stand in for it

    @property
    def frontend_seen(self) -> bool:
        """True once a front end that draws widgets has shown a card or dashboard."""
        return self._frontend.is_set()

    def dashboard(self, *, title: str = "notebook_ext jobs", only: set[int] | None = None) -> Dashboard:
        """A new dashboard of every job (or of the jobs whose ids are in
        ``only``), kept up to date until it is closed."""
        dash = Dashboard(on_action=self._dashboard_action, title=title, only=only, clock=self.clock)
        dash.on_displayed = self._displayed
        jobs = self.scheduler.all_jobs()
        with self._lock:
            for job in jobs:  # jobs whose first snapshot is still on its way to the pump
                if job.id not in self._rows:
                    self._rows[job.id] = DashboardRow.of(job.snapshot())
            rows = list(self._rows.values())
            self._dashboards.append(dash)
        dash.show(rows, self._dashboard_link())
        return dash

    def add_to_group(self, dash: Dashboard, job: Job) -> None:
        """Show ``job`` in the group card ``dash`` (a dashboard of some jobs)."""
        row = DashboardRow.of(job.snapshot())
        with self._lock:
            self._rows.setdefault(job.id, row)
            assert dash.only is not None
            dash.only.add(job.id)
            self._dash_dirty = True
        self._wake.set()

    def resend(self, jobs: list[Job] | None = None) -> None:
        """Draw the cards of ``jobs`` (default: all) again from the calling
        thread, so their final state is tagged with the cell running now
        (nbclient saves widget state only from the cell it runs)."""
        ids = None if jobs is None else {j.id for j in jobs}
        with self._lock:
            entries = [e for e in self._by_card.values() if ids is None or e.job.id in ids]
            dashboards = list(self._dashboards)
            rows = list(self._rows.values())
        for entry in entries:
            entry.card.show(entry.job.snapshot(), _live_group_summary(entry.job))
            entry.card.send_state("snap")
        for dash in dashboards:
            dash.show(rows, self._dashboard_link())
            dash.send_state("view")

    def draw_finished(self) -> int:
        """Draw, from the calling thread, the final state of every card whose
        job has ended but whose final drawing has not gone out yet; returns
        how many. Run at the end of each cell, it tags those states with the
        cell (nbclient saves widget state only from the cell it runs, and a
        job ending with the cell, as ``predictor.close()`` does, would
        otherwise have its final drawing land after the cell's end)."""
        with self._lock:
            pending = [e for es in self._entries.values() for e in es if e.job.done() and not e.final_sent]
        for entry in pending:
            try:
                entry.card.show(entry.job.snapshot(), _live_group_summary(entry.job))
            except Exception as exc:  # noqa: BLE001 - the pump reports it once; the cell must not fail
                self._draw_failed(entry, exc)
        self._save_static()
        return len(pending)

    def _save_static(self) -> None:
        # Without a front end that draws widgets (nbclient, papermill), a
        # saved widget view is an empty box in every renderer without a
        # widget manager (nbconvert's HTML offline, GitHub, a text reader):
        # a finished card's display becomes its static card, and a dashboard
        # its table, sent from the cell (nbclient keeps only its messages).
        if self._frontend.is_set():
            return
        with self._lock:
            due = [e for e in self._by_card.values()
                   if e.display_handle is not None and not e.static and e.job.done()]
            self._dash_saved = {k: v for k, v in self._dash_saved.items() if not v[0].closed}
            dashes = list(self._dash_saved.values())
        if not due and not dashes:
            return
        now = self.clock.monotonic()
        first = self._first_card if self._first_card is not None else now
        if now - first < FRONTEND_GRACE and self._frontend.wait(FRONTEND_GRACE - (now - first)):
            return  # among the kernel's first cards: a front end's hello may be on its way
        for entry in due:
            try:
                entry.display_handle.update(static_bundle(entry.job.snapshot()), raw=True)
                entry.static = True
            except Exception:  # noqa: BLE001 - never fail the user's cell for a card
                pass
        for saved in dashes:
            dash, handle, last = saved
            bundle = dashboard_bundle(dash.view)
            if bundle["text/plain"] != last:
                try:
                    handle.update(bundle, raw=True)
                    saved[2] = bundle["text/plain"]
                except Exception:  # noqa: BLE001
                    pass

    def close(self) -> None:
        self._unsubscribe()
        self._closed = True
        self._wake.set()
        self._thread.join(2)

    # -- actions (any thread: with subshells, a click comes while a cell runs) -------
    def _card_action(self, card: Any, content: dict) -> None:
        action = content.get("action")
        if action == "hello":
            self._frontend.set()
            return
        with self._lock:
            entry = self._by_card.get(id(card))
        if entry is None:
            return
        job = entry.job
        try:
            if action == "cancel":
                job.cancel("cancelled from its card")
            elif action == "stop":
                job.request_stop()
            elif action == "retry" and job.done():
                self._rebind(entry, self.scheduler.retry(job))
        except Exception:  # noqa: BLE001 - a click must never kill the kernel's comm handler
            traceback.print_exc()

    def _rebind(self, entry: _CardEntry, job: Job) -> None:
        with self._lock:
            old = self._entries.get(entry.job.id, [])
            if entry in old:
                old.remove(entry)
            entry.job = job
            entry.card.uid = self._uid(job)
            entry.final_sent = False
            self._entries.setdefault(job.id, []).append(entry)
            self._latest[job.id] = job.snapshot()
            static, entry.static = entry.static, False
        if static:  # it was saved as the static card: the new run is live again
            try:
                _update(entry.display_handle, entry.card)
            except Exception:  # noqa: BLE001
                pass
        self._wake.set()

    def _follow_retry(self, snap: JobSnapshot) -> None:
        # `%retry` or the dashboard re-ran a job: its cards follow the new run
        # in place (the card's own Retry button did already). A retry of some
        # of its items only (a preprocessing job's failed ones) is a run of its
        # own: the original's cards keep that run's final numbers.
        with self._lock:
            stale = [e for e in self._by_card.values() if e.job.id == snap.id and e.job.retry_with is None]
        if not stale:
            return
        new = next((j for j in self.scheduler.all_jobs() if j.id == snap.retried_as), None)
        if new is not None:
            for entry in stale:
                self._rebind(entry, new)

    def _dashboard_action(self, dash: Any, content: dict) -> None:
        action, name = content.get("action"), content.get("name")
        if action == "hello":
            self._frontend.set()
            return
        try:
            if action == "cancel" and name:
                self.scheduler.cancel(name, "cancelled from the dashboard")
            elif action == "retry" and name:
                self.scheduler.retry(name)
            elif action == "cancel_all" and dash.only is not None:  # a group card: its own jobs
                for job in [j for j in self.scheduler.all_jobs() if j.id in dash.only and not j.done()]:
                    self.scheduler.cancel(job, "cancelled from the dashboard")
            elif action == "cancel_all":
                self.scheduler.cancel_all("cancelled from the dashboard")
        except (KeyError, ValueError):
            pass  # a job that went away or changed meanwhile
        with self._lock:
            self._dash_dirty = True
            self._dash_pace.last = None  # answer a click at once
        self._wake.set()

    # -- input (notifier thread) ---------------------------------------------------
    def _on_snapshot(self, snap: JobSnapshot) -> None:
        if snap.retried_as is not None:
            self._follow_retry(snap)
        with self._lock:
            if snap.id in self._entries:
                self._latest[snap.id] = snap
            if snap.parent is not None:
                self._children.setdefault(snap.parent, {})[snap.name] = snap.state
                self._group_dirty[snap.parent] = self._group_dirty.get(snap.parent, 0) + 1
            self._rows[snap.id] = DashboardRow.of(snap)
            self._dash_dirty = True
        if snap.finished:
            self._wake.set()

    def _group_summary(self, name: str) -> dict[str, int] | None:
        with self._lock:
            kids = self._children.get(name)
            return children_summary(kids.values()) if kids else None

    def _dashboard_link(self) -> str | None:
        for ex in self.scheduler.executors.values():
            try:
                link = ex.describe().get("dashboard_link")
            except Exception:  # noqa: BLE001 - a cluster that went away
                link = None
            if link:
                return link
        return None

    # -- the thread ------------------------------------------------------------------
    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(0.05)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # never let a drawing bug stop the updates
                traceback.print_exc()

    def flush(self, now: float | None = None) -> int:
        """Draw what is due at ``now`` (default: the clock's); returns the
        number of widget updates sent. The pump's thread calls this."""
        now = self.clock.monotonic() if now is None else now
        self._tokens = min(self.budget, self._tokens + (now - self._last_refill) * self.budget)
        self._last_refill = now
        sent = 0
        with self._lock:
            latest = dict(self._latest)
            groups = dict(self._group_dirty)
            entries = {jid: list(es) for jid, es in self._entries.items()}
        for jid, es in entries.items():
            snap = latest.get(jid)
            name = es[0].job.name if es else None
            group = name in groups
            if snap is None and not group:
                continue
            final = snap is not None and snap.finished
            drawn: set[int] = set()
            for entry in es:
                if not final and entry.pace.due_in(now) > 0:
                    continue
                if not final and self._tokens < 1:
                    continue
                try:
                    entry.card.show(snap or entry.job.snapshot(), self._group_summary(entry.job.name))
                except Exception as exc:  # noqa: BLE001 - one undrawable job must not stop the others
                    self._draw_failed(entry, exc)
                drawn.add(id(entry))
                entry.pace.mark(now)
                self._tokens -= 1
                sent += 1
                if final:
                    self._finalize(entry)
            with self._lock:
                # every card of the job now, one made during this drawing too
                if all(id(e) in drawn for e in self._entries.get(jid, ())):
                    if self._latest.get(jid) is snap:
                        self._latest.pop(jid, None)
                    if group and name is not None and self._group_dirty.get(name) == groups[name]:
                        self._group_dirty.pop(name, None)
                if final:
                    left = [e for e in self._entries.get(jid, []) if not e.final_sent]
                    if left:
                        self._entries[jid] = left
                    else:
                        self._entries.pop(jid, None)
        sent += self._flush_dashboards(now)
        self.sent += sent
        return sent

    def _flush_dashboards(self, now: float) -> int:
        with self._lock:
            self._dashboards = [d for d in self._dashboards if not d.closed]  # closed ones are dropped
            if not (self._dashboards and self._dash_dirty and self._dash_pace.due_in(now) == 0):
                return 0
            self._dash_dirty = False
            self._dash_pace.mark(now)
            dashboards = list(self._dashboards)
            rows = list(self._rows.values())
        link = self._dashboard_link()
        for dash in dashboards:
            dash.show(rows, link)
            self._tokens -= 1
        if self._frontend.is_set():
            self._save_dashboards()
        return len(dashboards)

    def _save_dashboards(self) -> None:
        # A front end draws the live dashboard; what the notebook saves (its
        # text/HTML fallback, the extension's last known state) is refreshed
        # whenever a job changes state, not on every progress step.
        with self._lock:
            saved = list(self._dash_saved.values())
        for entry in saved:
            dash, handle, last = entry
            counts = repr(sorted((dash.view.get("counts") or {}).items()))
            if counts != last and not dash.closed:
                try:
                    _update(handle, dash)
                    entry[2] = counts
                except Exception:  # noqa: BLE001 - never fail the pump for a saved copy
                    pass

    def _draw_failed(self, entry: _CardEntry, exc: Exception) -> None:
        # Said once, on the job itself; the pump goes on with the other cards.
        self.draw_errors += 1
        if not entry.draw_failed:
            entry.draw_failed = True
            entry.job.ctx.output.write(f"\n[notebook_ext: this job's card could not be drawn: "
                                       f"{describe_error(exc)}]\n")

    def _finalize(self, entry: _CardEntry) -> None:
        entry.final_sent = True
        # Without a front end, the cell's end saves the static card instead
        # (`_save_static`); a widget bundle from here could land after it.
        if entry.display_handle is not None and self._frontend.is_set():
            # Refresh the saved text/html fallback for viewers without widgets.
            try:
                _update(entry.display_handle, entry.card)
            except Exception:  # noqa: BLE001
                pass


def _update(handle: Any, widget: JobCard | Dashboard) -> None:
    """Refresh what the notebook saves of ``widget``'s display."""
    data, metadata = widget.bundle()
    handle.update(data, metadata=metadata, raw=True)


def _live_group_summary(job: Job) -> dict[str, int] | None:
    # Drawn from the calling thread, ahead of the snapshots still on their way
    # to the pump: the children's states as they are now, not as last seen.
    children = list(job.children)
    return children_summary(c.state for c in children) if children else None
