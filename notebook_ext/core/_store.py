"""Persistent job history in SQLite, written from a thread of its own: the
writing side of the job ledger (`notebook_ext.core._ledger`).

Default location: ``$NOTEBOOK_EXT_HISTORY`` when set (a file path; ``off``
disables the history), else ``$XDG_DATA_HOME/notebook_ext/history.sqlite3``
(``~/.local/share/notebook_ext/history.sqlite3``).

While this process has active jobs, the writer renews its lease (every
``lease / 5`` seconds), writes each running job's live snapshot (at most
once a second), looks for cancel and stop requests other processes left in
the mailbox (every 0.25 s) and records as ``interrupted`` the jobs of owners
whose lease ran out.

A row the reader cannot use (JSON that does not decode, a value of the
wrong type) is skipped, counted and told once in a warning; the rest of the
history is read as usual.

A new file is made private (mode 0600, SQLite gives its ``-wal`` and
``-shm`` files the same mode), and so is each folder the store makes (0700).
A file on a network filesystem, or one a newer notebook_ext wrote, is left
alone: the history is then kept in memory for this session.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sqlite3
import threading
import uuid
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence, Union

from ._clock import SYSTEM_CLOCK, Clock
from ._pace import Backoff
from ._job import describe_error
from ._duties import Due, OwnerDuties
from ._files import create_private
from ._ledger import INSERT_JOB, Ledger, NewerSchema, connect, default_history_path, lease_seconds, network_filesystem
from ._owners import mark_lost, this_owner
from ._records import HistoryRecords, JobRecord
from ._states import ACTIVE_STATES, RUNNING
from ._text import clean

if TYPE_CHECKING:  # pragma: no cover
    from ._job import Job

__all__ = ["HistoryStore", "default_history_path"]

#: Seconds between tries while another connection locks the file: 61 s in
#: all, then every 30 s for as long as the lock lasts.
# a locked database: tried again for about 80 s in all before the writer keeps records in memory
RETRY_DELAYS = Backoff(0.05, 2.0, 30.0).delays(11)


def _busy(exc: Exception) -> bool:
    """Another connection holds the file: worth waiting for."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED and their extended codes
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def _bad_value(exc: Exception) -> bool:
    """A value of one record SQLite cannot take, not a fault of the file."""
    return not isinstance(exc, sqlite3.Error) or isinstance(
        exc, (sqlite3.InterfaceError, sqlite3.ProgrammingError, sqlite3.IntegrityError, sqlite3.DataError))


# What the store's writer thread is given, through its queue:
@dataclass(frozen=True)
class _Moved:
    """A job reached ``state`` at ``t``: its row and a transition."""

    job: Job
    state: str
    t: float


@dataclass(frozen=True)
class _Claimed:
    """This session's resume of ``uid`` is the job ``job`` ("session:id")."""

    uid: str
    job: str


@dataclass(frozen=True)
class _Ended:
    """This session ended at ``t``."""

    t: float


@dataclass(frozen=True)
class _Flush:
    """Set ``done`` once everything queued before is written."""

    done: threading.Event


_Write = Union[_Moved, _Claimed, _Ended]  # what goes into a transaction
_Entry = Union[_Write, _Flush]


class HistoryStore:
    """Job records that survive a kernel restart, shared with every process
    of this user through the ledger.

    Writes go through a queue to a writer thread (batched, one transaction
    per batch), never on the scheduler's loop. If the file cannot be written,
    jobs still run and one warning says why.

    While another connection locks the file (from the start too: then the
    store opens it, with this session's start time by ``clock``, once the
    lock goes) the writer waits ``retry_delays`` between tries (the last
    delay repeats as long as the lock lasts) and keeps at most ``backlog_limit`` records in memory: the
    oldest go first, `dropped` counts them and one warning tells how many
    once the file is written again. A record that cannot be stored as it
    is (a value SQLite refuses) is stored in part, with the reason as its
    ``error``. Both limits may be changed on a running store. A row read
    back that cannot be used is skipped; `skipped` counts them.

    ``on_request(job_id, action, reason, sender)`` is called (on the writer
    thread) for each cancel or stop request another process left for one of
    this session's jobs.
    """

    def __init__(self, path: str | os.PathLike[str] | None, clock: Clock = SYSTEM_CLOCK, *,
                 retry_delays: Sequence[float] = RETRY_DELAYS, backlog_limit: int = 10_000) -> None:
        self.path = Path(path) if path is not None else None
        self.clock = clock
        self.session = uuid.uuid4().hex[:12]
        self.enabled = False
        self.in_memory = False  #: the file could not be used safely: this session's history is in memory
        self.retry_delays = retry_delays
        self.backlog_limit = backlog_limit
        self.retries = 0  #: failed tries on a locked file since the last write
        self.dropped = 0  #: records dropped because the backlog was full
        self.skipped = 0  #: rows of the file that could not be read (each skipped, told once)
        self.commits = 0  #: write transactions committed by the writer
        self.lease = lease_seconds()  #: seconds this process's lease lasts once renewed
        self.busy_timeout = 1.0  #: seconds SQLite itself waits for another writer, each try
        self.close_timeout = 30.0  #: seconds `close` waits for the records still queued to be written
        self.on_request: Callable[[int, str, str | None, str | None], Any] | None = None
        self.owner, self._proc_start = this_owner()
        self._reported = 0  # of `dropped`, told in a warning
        self._skipped_rows: set[int] = set()  # rowids of the rows counted in `skipped`
        self._skipped_lock = threading.Lock()
        self._opened_at = clock.time()
        self._opened = False  # this session is on disk (after __init__, the writer thread's)
        self._queue: queue.Queue[_Entry | None] = queue.Queue()
        self._specs_written: set[int] = set()  # jobs whose resume spec is on disk (writer thread only)
        self._live: dict[int, Job] = {}  # this session's active jobs (writer thread only)
        self._duties = OwnerDuties(self.session, self.lease, clock)
        self._thread: threading.Thread | None = None
        self._keeper: sqlite3.Connection | None = None  # holds an in-memory history open
        self._target: str | None = None
        self.ledger = Ledger(self.path, me=self.session, clock=clock)  # reads even a file it cannot write
        if self.path is None:
            return
        try:
            kind = network_filesystem(self.path.parent)
            if kind is not None:
                self._in_memory(f"{clean(str(self.path))} is on a network filesystem ({kind}), where SQLite's "
                                f"locking is unsafe", "set NOTEBOOK_EXT_HISTORY to a file on a local disk")
            else:
                create_private(self.path)
                self._target = str(self.path)
                # One try, without waiting: a file another connection locks is
                # opened by the writer thread when the lock goes (retry_delays).
                with contextlib.closing(connect(self._target, timeout=0)) as con:
                    self._open(con)
        except NewerSchema as exc:
            self._in_memory(f"{clean(str(self.path))}: {exc}", "the file is left as it is; upgrade notebook_ext, "
                            "or set NOTEBOOK_EXT_HISTORY to another file")
        except (OSError, sqlite3.Error) as exc:
            if not _busy(exc):
                warnings.warn(
                    f"notebook_ext: job history disabled, cannot write {self.path} ({exc}); "
                    "set NOTEBOOK_EXT_HISTORY to a writable file",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return
        self.ledger = Ledger(self.path if not self.in_memory else None, me=self.session, clock=clock,
                             memory=self._target if self.in_memory else None)
        self.enabled = True
        self._thread = threading.Thread(target=self._writer, name="notebook_ext-history", daemon=True)
        self._thread.start()

    def _in_memory(self, why: str, fix: str) -> None:
        warnings.warn(f"notebook_ext: job history kept in memory for this session: {why}; {fix}",
                      RuntimeWarning, stacklevel=4)
        self.in_memory = True
        self.path = None  # checkpoints then need `save=` (nothing of ours goes beside that file)
        self._target = f"file:notebook_ext-{self.session}?mode=memory&cache=shared"
        self._keeper = connect(self._target, memory=True)
        self._open(self._keeper)

    def _connect(self, timeout: float) -> sqlite3.Connection:
        assert self._target is not None
        return connect(self._target, timeout, memory=self.in_memory)

    def _open(self, con: sqlite3.Connection) -> None:
        """Close the sessions of dead owners and add this one, in one
        transaction (none of it when the file is locked)."""
        with con:
            mark_lost(con, self.clock.time(), self.session)
            owner = self.owner
            con.execute(
                "INSERT INTO sessions (id, pid, host, started, ended, proc_start, kernel, notebook, lease) "
                "VALUES (?, ?, ?, ?, NULL, ?, ?, ?, NULL)",
                (self.session, owner.pid, owner.host, self._opened_at, self._proc_start, owner.kernel,
                 owner.notebook),
            )
        self._opened = True

    # -- writing -----------------------------------------------------------
    def record(self, job: Job, state: str | None = None) -> None:
        """Note a state change of ``job``; cheap (a queue put), the writer
        thread builds and writes the row."""
        if self.enabled:
            self._queue.put(_Moved(job, state or job.state, self.clock.time()))

    def _row(self, job: Job, state: str) -> tuple[Any, ...]:
        return JobRecord.of(job, self.session, state).to_row()

    def _partial_row(self, job: Job, state: str, exc: Exception) -> tuple[Any, ...]:
        """What can be kept of a job whose full row SQLite refused."""
        error = f"notebook_ext could not store this job's full record: {describe_error(exc)}"
        return JobRecord(name=clean(job.name), state=state, kind=None, session=self.session,
                         uid=f"{self.session}:{job.id}", job_id=job.id, error=error).to_row()

    def _writer(self) -> None:
        pending: deque[_Write] = deque()
        flushes: list[threading.Event] = []
        con: sqlite3.Connection | None = None
        stop = False
        duties = self._duties
        try:
            while True:
                wait = not (pending or stop) and self._opened
                stop = self._take(pending, flushes, wait, duties.next_in() if self._live else None) or stop
                due = duties.due(bool(self._live))
                if pending or not self._opened or due:
                    try:
                        if con is None:
                            # SQLite's busy handler waits out short locks (20 writers at
                            # once); a long lock is ours to wait, by retry_delays
                            con = self._connect(timeout=self.busy_timeout)
                        if not self._opened:  # the file was locked at open
                            self._open(con)
                        changes = con.total_changes
                        self._write(con, pending, due)
                        if due.mailbox:
                            self._pass_on(duties.take_requests(con))
                    except sqlite3.Error as exc:
                        if not _busy(exc):
                            raise
                        if stop and self.retries >= len(self.retry_delays):
                            self.dropped += len(pending)
                            self._report_drops(f"{self.path} was still locked when the scheduler shut down")
                            return
                        delay = self.retry_delays[min(self.retries, len(self.retry_delays) - 1)]
                        self.retries += 1
                        stop = self._hold(pending, flushes, delay) or stop
                        continue
                    duties.did(due)
                    self.commits += con.total_changes != changes  # (a round that only looked writes nothing)
                    pending.clear()
                    self.retries = 0
                    self._report_drops(f"{self.path} was locked by another connection and at most "
                                       f"backlog_limit={self.backlog_limit} records wait in memory")
                for done in flushes:
                    done.set()
                flushes.clear()
                if stop:
                    return
        except Exception as exc:  # noqa: BLE001 - the file is unusable: history off, jobs go on
            self.enabled = False
            warnings.warn(f"notebook_ext: job history stopped ({exc})", RuntimeWarning, stacklevel=1)
        finally:
            if con is not None:
                con.close()
            for done in flushes:
                done.set()

    def _take(self, pending: deque[_Write], flushes: list[threading.Event], wait: bool,
              timeout: float | None) -> bool:
        """Move the queued entries to ``pending``, waiting for a first one
        when ``wait`` (at most ``timeout`` seconds); True when `close`
        asked to stop."""
        stop = False
        try:
            item = self._queue.get(wait, timeout)
            while True:
                stop = self._sort(item, pending, flushes) or stop
                item = self._queue.get_nowait()
        except queue.Empty:
            return stop

    def _hold(self, pending: deque[_Write], flushes: list[threading.Event], seconds: float) -> bool:
        """Wait ``seconds`` before the next try, taking new entries
        meanwhile and keeping at most `backlog_limit` (the oldest go);
        True, at once, when `close` asked to stop."""
        deadline = self.clock.monotonic() + seconds
        while True:
            excess = len(pending) - self.backlog_limit
            for _ in range(excess):
                pending.popleft()
            self.dropped += max(excess, 0)
            left = deadline - self.clock.monotonic()
            if left <= 0:
                return False
            try:
                item = self._queue.get(timeout=left)
            except queue.Empty:
                return False
            if self._sort(item, pending, flushes):
                return True

    @staticmethod
    def _sort(item: _Entry | None, pending: deque[_Write], flushes: list[threading.Event]) -> bool:
        if item is None:
            return True
        if isinstance(item, _Flush):
            flushes.append(item.done)
        else:
            pending.append(item)
        return False

    def _write(self, con: sqlite3.Connection, entries: Iterable[_Write], due: Due) -> None:
        """``entries`` and the duties ``due`` in one transaction: all of
        them or, raising, none."""
        latest: dict[int, _Moved] = {}  # a job's row is written once per batch, however often it moved
        specs: list[int] = []
        now = self.clock.time()
        with con:
            for entry in entries:
                if isinstance(entry, _Ended):
                    con.execute("UPDATE sessions SET ended=? WHERE id=?", (entry.t, self.session))
                    continue
                if isinstance(entry, _Claimed):
                    con.execute("UPDATE claims SET job=? WHERE uid=? AND session=?",
                                (entry.job, entry.uid, self.session))
                    continue
                latest[entry.job.id] = entry
                con.execute("INSERT INTO transitions VALUES (?, ?, ?)",
                            (f"{self.session}:{entry.job.id}", entry.state, entry.t))
            became_live = False
            for job, state in ((e.job, e.state) for e in latest.values()):
                try:
                    con.execute(INSERT_JOB, self._row(job, state))
                except Exception as exc:  # noqa: BLE001 - one odd job must not stop the history
                    if not _bad_value(exc):
                        raise
                    con.execute(INSERT_JOB, self._partial_row(job, state, exc))
                if job.resume_spec is not None and job.id not in self._specs_written:
                    con.execute("INSERT OR REPLACE INTO resumable VALUES (?, ?)",
                                (f"{self.session}:{job.id}", json.dumps(job.resume_spec, default=str)))
                    specs.append(job.id)
                if state in ACTIVE_STATES and job.state in ACTIVE_STATES:
                    became_live = became_live or job.id not in self._live
                    self._live[job.id] = job
                elif self._live.pop(job.id, None) is not None:
                    self._duties.snapshot(con, job, now, final=True)  # the final numbers, always
            if became_live or due.lease:
                con.execute("UPDATE sessions SET lease=? WHERE id=?", (now + self.lease, self.session))
            if due.lease:
                mark_lost(con, now, self.session)
            if due.snapshots:
                for job in list(self._live.values()):
                    if job.state == RUNNING:
                        self._duties.snapshot(con, job, now)
        self._specs_written.update(specs)  # committed: a job's spec (it never changes) is written once

    def _pass_on(self, requests: list[tuple[Any, ...]]) -> None:
        """Hand the cancel and stop requests of other processes to `on_request`."""
        for _, uid, action, reason, sender in requests:
            handler = self.on_request
            if handler is None:
                continue
            try:
                handler(int(str(uid).rpartition(":")[2]), str(action), reason, sender)
            except Exception as exc:  # noqa: BLE001 - the writer serves on
                warnings.warn(f"notebook_ext: a {clean(str(action))} request from {clean(str(sender))} "
                              f"failed ({describe_error(exc)})", RuntimeWarning, stacklevel=1)

    @property
    def live_writes(self) -> int:
        """Live snapshots written (at most one per running job per second)."""
        return self._duties.live_writes

    @property
    def mailbox_looks(self) -> int:
        """Times the writer looked for requests of other processes."""
        return self._duties.mailbox_looks

    def claimed(self, uid: str, job: Job) -> None:
        """The resume claimed on ``uid`` runs as ``job`` (see `claim`)."""
        if self.enabled:
            self._queue.put(_Claimed(uid, f"{self.session}:{job.id}"))

    def claim(self, record: JobRecord) -> None:
        """Take the resume of ``record`` for this session; `Refused` (a
        ValueError) naming the process that holds it."""
        self.flush()
        self.ledger.claim(record, self.session, self.clock.time() + self.lease)

    def unclaim(self, record: JobRecord) -> None:
        self.ledger.unclaim(record.uid, self.session)

    def live_checkpoints(self) -> set[str]:
        """Checkpoint paths pruning must leave: those of jobs whose owner lives."""
        if not self.enabled:
            return set()
        self.flush()
        return self.ledger.live_checkpoints()

    def _report_drops(self, why: str) -> None:
        lost = self.dropped - self._reported
        if lost:
            self._reported = self.dropped
            warnings.warn(f"notebook_ext: job history dropped {lost} record(s), the oldest first: {why}",
                          RuntimeWarning, stacklevel=1)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything recorded so far is on disk."""
        if not self.enabled:
            return
        done = threading.Event()
        self._queue.put(_Flush(done))
        done.wait(timeout)

    def close(self) -> None:
        if not self.enabled:
            return
        self._queue.put(_Ended(self.clock.time()))
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=self.close_timeout)
        self.enabled = False
        if self._keeper is not None:
            self._keeper.close()  # an in-memory history ends with its session
            self._keeper = None

    # -- reading -----------------------------------------------------------
    def load(self, *, sessions: str = "all", limit: int = 1000) -> HistoryRecords:
        """Job records, newest first. ``sessions``: ``"all"``, ``"current"``
        or ``"earlier"``. A file SQLite cannot read raises one
        `sqlite3.DatabaseError` that names it."""
        if not self.ledger.exists:
            return HistoryRecords()
        self.flush()
        where, args = "", ()  # type: tuple[str, tuple[str, ...]]
        if sessions == "current":
            where, args = "WHERE jobs.session=?", (self.session,)
        elif sessions == "earlier":
            where, args = "WHERE jobs.session!=?", (self.session,)
        return self._records(f"{where} ORDER BY jobs.created DESC", args, limit)

    def find(self, name: str) -> JobRecord | None:
        """The newest record of a job named ``name``, of any session (None if none)."""
        if not self.ledger.exists:
            return None
        self.flush()
        found = self._records("WHERE jobs.name=? ORDER BY jobs.created DESC, jobs.rowid DESC", (name,), 1)
        return found[0] if found else None

    def _records(self, tail: str, args: tuple[Any, ...], limit: int) -> HistoryRecords:
        """Up to ``limit`` readable records; the rows that are not are
        skipped (and told once, in `_skip`)."""
        bad: dict[int, str] = {}
        out = self.ledger.records(tail, args, limit, bad)
        self._skip(bad)
        return out

    def _skip(self, bad: dict[int, str]) -> None:
        with self._skipped_lock:
            new = {k: why for k, why in bad.items() if k not in self._skipped_rows}
            self._skipped_rows.update(new)
            self.skipped = len(self._skipped_rows)
        if new:
            warnings.warn(
                f"notebook_ext: skipped {len(new)} unreadable record(s) of the job history "
                f"{clean(str(self.path))} ({next(iter(new.values()))}); the other records are shown. "
                "Move the file aside (or set NOTEBOOK_EXT_HISTORY) to start a new history",
                RuntimeWarning, stacklevel=4)

    def transitions(self, uid: str) -> list[tuple[str, float]]:
        if not self.ledger.exists:
            return []
        self.flush()
        with self.ledger.connection() as con:
            rows = con.execute("SELECT state, t FROM transitions WHERE uid=? ORDER BY rowid", (uid,)).fetchall()
        return [tuple(r) for r in rows]
