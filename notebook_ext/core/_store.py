"""Persistent job history in SQLite, written from a thread of its own.

Default location: ``$NOTEBOOK_EXT_HISTORY`` when set (a file path; ``off``
disables the history), else ``$XDG_DATA_HOME/notebook_ext/history.sqlite3``
(``~/.local/share/notebook_ext/history.sqlite3``).

A job that was still active when its kernel died is shown as ``interrupted``
the next time any scheduler opens the history.

A row the reader cannot use (JSON that does not decode, a value of the
wrong type) is skipped, counted and told once in a warning; the rest of the
history is read as usual.

A new file is made private (mode 0600, SQLite gives its ``-wal`` and
``-shm`` files the same mode), and so is each folder the store makes (0700).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import sqlite3
import threading
import time
import uuid
import warnings
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from ._clock import SYSTEM_CLOCK, Clock
from ._job import describe_error
from ._records import decode_row
from ._states import ACTIVE_STATES, INTERRUPTED
from ._text import clean, safe_repr

if TYPE_CHECKING:  # pragma: no cover
    from ._job import Job

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, pid INTEGER, host TEXT, started REAL, ended REAL
);
CREATE TABLE IF NOT EXISTS jobs (
    uid TEXT PRIMARY KEY, session TEXT, job_id INTEGER, name TEXT, kind TEXT,
    executor TEXT, priority INTEGER, params TEXT, code TEXT, state TEXT,
    attempts INTEGER, created REAL, started REAL, ended REAL, error TEXT,
    traceback TEXT, metrics TEXT, artifacts TEXT, parent TEXT
);
CREATE TABLE IF NOT EXISTS transitions (
    uid TEXT, state TEXT, t REAL
);
CREATE INDEX IF NOT EXISTS jobs_session ON jobs(session);
CREATE TABLE IF NOT EXISTS resumable (
    uid TEXT PRIMARY KEY, spec TEXT
);
"""
_INSERT_JOB = "INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
_SELECT_JOBS = ("SELECT jobs.rowid AS row_id, jobs.*, resumable.spec AS resume "
                "FROM jobs LEFT JOIN resumable USING (uid)")

#: Seconds between tries while another connection locks the file: 61 s in
#: all, then every 30 s for as long as the lock lasts.
_SHUTDOWN_ERROR = "the kernel stopped while this job was active"

RETRY_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


def default_history_path() -> Path | None:
    """Where the history lives; None when ``NOTEBOOK_EXT_HISTORY=off``."""
    env = os.environ.get("NOTEBOOK_EXT_HISTORY")
    if env:
        return None if env.strip().lower() in {"off", "none", "0", "false"} else Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "notebook_ext" / "history.sqlite3"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed kernel its parent has not reaped yet is a zombie: dead
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _connect(path: Path, timeout: float = 10) -> sqlite3.Connection:
    con = sqlite3.connect(str(path), timeout=timeout, check_same_thread=False)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.executescript(_SCHEMA)
    except BaseException:
        con.close()
        raise
    return con


def private_folder(folder: Path) -> None:
    """Check that only this user (or root) can put files in ``folder``: one
    that group or others can write is made 0700, with a warning; one another
    user owns raises `PermissionError`. A sticky folder (``/tmp``) is left
    as it is: others may add files there but not replace ours."""
    st = os.stat(folder)
    if st.st_uid not in (os.geteuid(), 0):
        raise PermissionError(f"{folder} belongs to another user (uid {st.st_uid}), who could replace the files "
                              f"notebook_ext keeps there; use a folder of your own")
    if st.st_mode & 0o022 and not st.st_mode & 0o1000:
        try:
            os.chmod(folder, 0o700)
        except OSError as exc:
            raise PermissionError(f"{folder} can be written by others (mode {st.st_mode & 0o777:04o}) and "
                                  f"cannot be made private ({exc.strerror}); use a folder of your own") from None
        warnings.warn(f"notebook_ext: {folder} could be written by group or others "
                      f"(mode {st.st_mode & 0o777:04o}); made private (0700)", RuntimeWarning, stacklevel=2)


def _create_private(path: Path) -> None:
    """Make the missing folders of ``path`` (0700) and the file (0600);
    existing folders are left as they are, but the file's own folder must
    be private (`private_folder`)."""
    missing = []
    folder = path.parent
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    private_folder(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


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


def _text(value: object) -> str | None:
    """``value`` as text any reader can decode (None stays None)."""
    if value is None:
        return None
    return clean(value) if isinstance(value, str) else safe_repr(value)


class HistoryStore:
    """Job records that survive a kernel restart.

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
    """

    def __init__(self, path: str | os.PathLike | None, clock: Clock = SYSTEM_CLOCK, *,
                 retry_delays: Sequence[float] = RETRY_DELAYS, backlog_limit: int = 10_000) -> None:
        self.path = Path(path) if path is not None else None
        self.clock = clock
        self.session = uuid.uuid4().hex[:12]
        self.enabled = False
        self.retry_delays = retry_delays
        self.backlog_limit = backlog_limit
        self.retries = 0  #: failed tries on a locked file since the last write
        self.dropped = 0  #: records dropped because the backlog was full
        self.skipped = 0  #: rows of the file that could not be read (each skipped, told once)
        self._reported = 0  # of `dropped`, told in a warning
        self._skipped_rows: set[int] = set()  # rowids of the rows counted in `skipped`
        self._skipped_lock = threading.Lock()
        self._opened_at = clock.time()
        self._opened = False  # this session is on disk (after __init__, the writer thread's)
        self._queue: queue.Queue = queue.Queue()
        self._specs_written: set[int] = set()  # jobs whose resume spec is on disk (writer thread only)
        self._thread: threading.Thread | None = None
        if self.path is None:
            return
        try:
            _create_private(self.path)
            # One try, without waiting: a file another connection locks is
            # opened by the writer thread when the lock goes (retry_delays).
            with contextlib.closing(_connect(self.path, timeout=0)) as con:
                self._open(con)
        except (OSError, sqlite3.Error) as exc:
            if not _busy(exc):
                warnings.warn(
                    f"notebook_ext: job history disabled, cannot write {self.path} ({exc}); "
                    "set NOTEBOOK_EXT_HISTORY to a writable file",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return
        self.enabled = True
        self._thread = threading.Thread(target=self._writer, name="notebook_ext-history", daemon=True)
        self._thread.start()

    def _open(self, con: sqlite3.Connection) -> None:
        """Close the sessions of dead kernels and add this one, in one
        transaction (none of it when the file is locked)."""
        with con:
            self._mark_interrupted(con)
            con.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, NULL)",
                (self.session, os.getpid(), socket.gethostname(), self._opened_at),
            )
        self._opened = True

    def _mark_interrupted(self, con: sqlite3.Connection) -> None:
        host = socket.gethostname()
        for sid, pid, shost in con.execute(
            "SELECT id, pid, host FROM sessions WHERE ended IS NULL"
        ).fetchall():
            if shost != host or not isinstance(pid, int) or _pid_alive(pid):
                continue  # alive, on another machine or unreadable: cannot tell
            now = self.clock.time()
            marks = ",".join("?" * len(ACTIVE_STATES))
            rows = con.execute(
                f"SELECT uid FROM jobs WHERE session=? AND state IN ({marks})",
                (sid, *ACTIVE_STATES),
            ).fetchall()
            for (uid,) in rows:
                con.execute(
                    "UPDATE jobs SET state=?, ended=COALESCE(ended, ?), "
                    "error=COALESCE(error, 'the kernel stopped while this job was active') WHERE uid=?",
                    (INTERRUPTED, now, uid),
                )
                con.execute("INSERT INTO transitions VALUES (?, ?, ?)", (uid, INTERRUPTED, now))
            con.execute("UPDATE sessions SET ended=? WHERE id=?", (now, sid))

    # -- writing -----------------------------------------------------------
    def record(self, job: Job, state: str | None = None) -> None:
        """Note a state change of ``job``; cheap (a queue put), the writer
        thread builds and writes the row."""
        if self.enabled:
            self._queue.put(("job", job, state or job.state, self.clock.time()))

    def _row(self, job: Job, state: str) -> tuple:
        metrics = {clean(k): v[-1][1] for k, v in list(job.ctx.metrics.items()) if v}
        params = {_text(k): safe_repr(v) for k, v in list(job.params.items())}
        # A job the shutdown stopped is `interrupted` (as after a kernel crash),
        # whatever its executor made of the stop.
        row_state, error = (state, _SHUTDOWN_ERROR) if state == INTERRUPTED else (job.state, _text(job.error))
        return (
            f"{self.session}:{job.id}", self.session, job.id, _text(job.name), _text(job.kind),
            _text(job.executor), job.priority, json.dumps(params), _text(job.code), row_state, job.attempts,
            job.created, job.started, job.ended, error, _text(job.traceback), json.dumps(metrics),
            json.dumps([_text(a) for a in job.artifacts]), _text(job.parent.name) if job.parent else None,
        )

    def _partial_row(self, job: Job, state: str, exc: Exception) -> tuple:
        """What can be kept of a job whose full row SQLite refused."""
        error = f"notebook_ext could not store this job's full record: {describe_error(exc)}"
        return (f"{self.session}:{job.id}", self.session, job.id, _text(job.name), None, None, None, None,
                None, state, None, None, None, None, error, None, None, None, None)

    def _writer(self) -> None:
        assert self.path is not None
        pending: deque[tuple] = deque()
        flushes: list[threading.Event] = []
        con: sqlite3.Connection | None = None
        stop = False
        try:
            while True:
                stop = self._take(pending, flushes, wait=not (pending or stop) and self._opened) or stop
                if pending or not self._opened:
                    try:
                        if con is None:
                            con = _connect(self.path, timeout=0)  # waiting is ours: retry_delays
                        if not self._opened:  # the file was locked at open
                            self._open(con)
                        self._write(con, pending)
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

    def _take(self, pending: deque[tuple], flushes: list[threading.Event], wait: bool) -> bool:
        """Move the queued entries to ``pending``, waiting for a first one
        when ``wait``; True when `close` asked to stop."""
        stop = False
        try:
            item = self._queue.get(wait)
            while True:
                stop = self._sort(item, pending, flushes) or stop
                item = self._queue.get_nowait()
        except queue.Empty:
            return stop

    def _hold(self, pending: deque[tuple], flushes: list[threading.Event], seconds: float) -> bool:
        """Wait ``seconds`` before the next try, taking new entries
        meanwhile and keeping at most `backlog_limit` (the oldest go);
        True, at once, when `close` asked to stop."""
        deadline = time.monotonic() + seconds
        while True:
            excess = len(pending) - self.backlog_limit
            for _ in range(excess):
                pending.popleft()
            self.dropped += max(excess, 0)
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                item = self._queue.get(timeout=left)
            except queue.Empty:
                return False
            if self._sort(item, pending, flushes):
                return True

    @staticmethod
    def _sort(item: tuple | None, pending: deque[tuple], flushes: list[threading.Event]) -> bool:
        if item is None:
            return True
        if item[0] == "flush":
            flushes.append(item[1])
        else:
            pending.append(item)
        return False

    def _write(self, con: sqlite3.Connection, entries: Iterable[tuple]) -> None:
        """``entries`` in one transaction: all of them or, raising, none."""
        latest: dict[int, tuple] = {}  # a job's row is written once per batch, however often it moved
        specs: list[int] = []
        with con:
            for entry in entries:
                if entry[0] == "end":
                    con.execute("UPDATE sessions SET ended=? WHERE id=?", (entry[1], self.session))
                    continue
                _, job, state, t = entry
                latest[job.id] = entry
                con.execute("INSERT INTO transitions VALUES (?, ?, ?)", (f"{self.session}:{job.id}", state, t))
            for _, job, state, _t in latest.values():
                try:
                    con.execute(_INSERT_JOB, self._row(job, state))
                except Exception as exc:  # noqa: BLE001 - one odd job must not stop the history
                    if not _bad_value(exc):
                        raise
                    con.execute(_INSERT_JOB, self._partial_row(job, state, exc))
                if job.resume_spec is not None and job.id not in self._specs_written:
                    con.execute("INSERT OR REPLACE INTO resumable VALUES (?, ?)",
                                (f"{self.session}:{job.id}", json.dumps(job.resume_spec, default=str)))
                    specs.append(job.id)
        self._specs_written.update(specs)  # committed: a job's spec (it never changes) is written once

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
        self._queue.put(("flush", done))
        done.wait(timeout)

    def close(self) -> None:
        if not self.enabled:
            return
        self._queue.put(("end", self.clock.time()))
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.enabled = False

    # -- reading -----------------------------------------------------------
    def load(self, *, sessions: str = "all", limit: int = 1000) -> list[dict[str, Any]]:
        """Job records, newest first. ``sessions``: ``"all"``, ``"current"``
        or ``"earlier"``. A file SQLite cannot read raises one
        `sqlite3.DatabaseError` that names it."""
        if self.path is None or not self.path.exists():
            return []
        self.flush()
        where, args = "", ()  # type: tuple[str, tuple[str, ...]]
        if sessions == "current":
            where, args = "WHERE session=?", (self.session,)
        elif sessions == "earlier":
            where, args = "WHERE session!=?", (self.session,)
        return self._records(f"{where} ORDER BY created DESC", args, limit)

    def find(self, name: str) -> dict[str, Any] | None:
        """The newest record of a job named ``name``, of any session (None if none)."""
        if self.path is None or not self.path.exists():
            return None
        self.flush()
        found = self._records("WHERE name=? ORDER BY created DESC, jobs.rowid DESC", (name,), 1)
        return found[0] if found else None

    def _records(self, tail: str, args: tuple, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` readable records; the rows that are not are
        skipped (and told once, in `_skip`)."""
        out: list[dict[str, Any]] = []
        bad: dict[int, str] = {}
        with self._reading() as con:
            for row in con.execute(f"{_SELECT_JOBS} {tail}", args):
                if len(out) >= limit:
                    break
                try:
                    out.append(decode_row(row))
                except ValueError as exc:
                    bad[row["row_id"]] = str(exc)
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
        if self.path is None or not self.path.exists():
            return []
        self.flush()
        rows = self._read("SELECT state, t FROM transitions WHERE uid=? ORDER BY rowid", (uid,))
        return [tuple(r) for r in rows]

    def _read(self, sql: str, args: tuple) -> list[sqlite3.Row]:
        with self._reading() as con:
            return con.execute(sql, args).fetchall()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A connection for reading; a file SQLite cannot read raises one
        `sqlite3.DatabaseError` that names it."""
        assert self.path is not None
        try:
            with contextlib.closing(_connect(self.path)) as con:
                con.row_factory = sqlite3.Row
                # text another program wrote in another encoding: shown escaped, like ours
                con.text_factory = lambda data: data.decode("utf-8", "backslashreplace")
                yield con
        except sqlite3.Error as exc:
            raise sqlite3.DatabaseError(
                f"job history file {clean(str(self.path))} is unreadable ({exc}); "
                "move it aside or set NOTEBOOK_EXT_HISTORY to another file") from None

