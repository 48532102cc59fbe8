"""What the history writer does for this process as the owner of live
jobs, besides writing their records: renew its lease (every ``lease / 5``
seconds), write each running job's live snapshot (at most once a second per
job, looked at four times a second: a step after a pause is written at once),
and take the cancel and stop requests other processes left in the mailbox
(every 0.25 s). Only while this process has active jobs: an idle one
wakes nobody."""

from __future__ import annotations

import json
import sqlite3
import weakref
from typing import TYPE_CHECKING, Any

from ._clock import Clock
from ._records import last_metrics
from ._states import RUNNING

if TYPE_CHECKING:  # pragma: no cover
    from ._job import Job

#: Stop-and-keep and cancel requests of other processes are looked for this often.
MAILBOX_SECONDS = 0.25
#: A running job's live snapshot (progress, rate, ETA, metrics) is written at most this often.
SNAPSHOT_SECONDS = 1.0
#: Running jobs are looked at this often for a snapshot due (each job keeps its own second).
SNAPSHOT_LOOK_SECONDS = 0.25


class Due:
    """What the writer does in this round besides the queued records."""

    __slots__ = ("lease", "snapshots", "mailbox")

    def __init__(self, lease: bool = False, snapshots: bool = False, mailbox: bool = False) -> None:
        self.lease, self.snapshots, self.mailbox = lease, snapshots, mailbox

    def __bool__(self) -> bool:
        return self.lease or self.snapshots or self.mailbox


class OwnerDuties:
    """When each duty falls due, and the two that touch the ledger
    (`snapshot`, `take_requests`); the writer thread's alone."""

    def __init__(self, session: str, lease: float, clock: Clock) -> None:
        self.session = session
        self.clock = clock
        self.every = {"lease": lease / 5, "snapshots": SNAPSHOT_LOOK_SECONDS, "mailbox": MAILBOX_SECONDS}
        self.last = dict.fromkeys(self.every, 0.0)
        self.live_writes = 0
        self.mailbox_looks = 0
        self._data_version: int | None = None
        # job -> its last live snapshot written: (t, done, total, metrics)
        self._written: weakref.WeakKeyDictionary[Job, tuple[float, float, float | None, dict[str, float]]] = (
            weakref.WeakKeyDictionary())

    def next_in(self) -> float:
        """Seconds until the next duty falls due."""
        now = self.clock.monotonic()
        return max(0.0, min(self.last[k] + every - now for k, every in self.every.items()))

    def due(self, live: bool) -> Due:
        if not live:
            return Due()
        now = self.clock.monotonic()
        return Due(**{k: now - self.last[k] >= every for k, every in self.every.items()})

    def did(self, due: Due) -> None:
        now = self.clock.monotonic()
        for key in self.every:
            if getattr(due, key):
                self.last[key] = now

    def snapshot(self, con: sqlite3.Connection, job: Job, now: float, *, final: bool = False) -> None:
        """Write ``job``'s live numbers (progress, rate, ETA, last metrics)
        when they changed since the last time, and a second or more went by
        since then (``final``: its last numbers, whenever)."""
        last = self._written.get(job)
        if last is not None and not final and now - last[0] < SNAPSHOT_SECONDS:
            return
        ctx = job.ctx
        done, total, _ = job.counts()
        metrics = last_metrics(ctx)
        if last is not None and last[1:] == (done, total, metrics):
            return
        rate = eta = None
        if last is not None and now > last[0] and job.state == RUNNING:
            rate = max(done - last[1], 0) / (now - last[0])
            eta = (total - done) / rate if rate and total is not None and total > done else None
        self._written[job] = (now, done, total, metrics)
        con.execute("INSERT OR REPLACE INTO live VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (f"{self.session}:{job.id}", now, done, total, rate, eta, json.dumps(metrics, default=str)))
        self.live_writes += 1

    def take_requests(self, con: sqlite3.Connection) -> list[Any]:
        """The requests other processes left for this session's jobs, marked
        taken (looked for only when another connection wrote since the last
        look: SQLite's ``data_version``)."""
        self.mailbox_looks += 1
        version = con.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return []
        self._data_version = version
        with con:
            rows = con.execute("SELECT id, uid, action, reason, sender FROM mailbox "
                               "WHERE session=? AND taken IS NULL ORDER BY id", (self.session,)).fetchall()
            if rows:
                con.execute(f"UPDATE mailbox SET taken=? WHERE id IN ({','.join('?' * len(rows))})",
                            (self.clock.time(), *(r[0] for r in rows)))
        return rows
