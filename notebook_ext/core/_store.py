"""Persistent job history in SQLite, written from a thread of its own.

Default location: ``$NOTEBOOK_EXT_HISTORY`` when set (a file path; ``off``
disables the history), else ``$XDG_DATA_HOME/notebook_ext/history.sqlite3``
(``~/.local/share/notebook_ext/history.sqlite3``).

A job that was still active when its kernel died is shown as ``interrupted``
the next time any scheduler opens the history.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import sqlite3
import threading
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._clock import SYSTEM_CLOCK, Clock
from ._states import ACTIVE_STATES, INTERRUPTED

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
"""


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
    return True


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(str(path), timeout=10, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.executescript(_SCHEMA)
    return con


class HistoryStore:
    """Job records that survive a kernel restart.

    Writes go through a queue to a writer thread (batched, one transaction
    per batch), never on the scheduler's loop. If the file cannot be written,
    jobs still run and one warning says why.
    """

    def __init__(self, path: str | os.PathLike | None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = Path(path) if path is not None else None
        self.clock = clock
        self.session = uuid.uuid4().hex[:12]
        self.enabled = False
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = _connect(self.path)
            with con:
                self._mark_interrupted(con)
                con.execute(
                    "INSERT INTO sessions VALUES (?, ?, ?, ?, NULL)",
                    (self.session, os.getpid(), socket.gethostname(), self.clock.time()),
                )
            con.close()
        except (OSError, sqlite3.Error) as exc:
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

    def _mark_interrupted(self, con: sqlite3.Connection) -> None:
        host = socket.gethostname()
        for sid, pid, shost in con.execute(
            "SELECT id, pid, host FROM sessions WHERE ended IS NULL"
        ).fetchall():
            if shost != host or _pid_alive(pid):
                continue  # alive, or on another machine: cannot tell
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

    def _row(self, job: Job) -> tuple:
        artifacts = job.artifacts
        metrics = {k: v[-1][1] for k, v in list(job.ctx.metrics.items()) if v}
        params = {k: repr(v)[:500] for k, v in job.params.items()}
        return (
            f"{self.session}:{job.id}", self.session, job.id, job.name, job.kind, job.executor,
            job.priority, json.dumps(params), job.code, job.state, job.attempts, job.created,
            job.started, job.ended, job.error, job.traceback, json.dumps(metrics),
            json.dumps([str(a) for a in artifacts]), job.parent.name if job.parent else None,
        )

    def _writer(self) -> None:
        assert self.path is not None
        con = _connect(self.path)
        try:
            while True:
                item = self._queue.get()
                batch = [item]
                while True:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = False
                with con:
                    for entry in batch:
                        if entry is None:
                            stop = True
                            continue
                        if entry[0] == "job":
                            _, job, state, t = entry
                            con.execute(
                                "INSERT OR REPLACE INTO jobs VALUES "
                                "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                self._row(job),
                            )
                            con.execute(
                                "INSERT INTO transitions VALUES (?, ?, ?)",
                                (f"{self.session}:{job.id}", state, t),
                            )
                        elif entry[0] == "end":
                            con.execute("UPDATE sessions SET ended=? WHERE id=?", (entry[1], self.session))
                        elif entry[0] == "flush":
                            entry[1].set()
                for entry in batch:
                    if entry is not None and entry[0] == "flush":
                        entry[1].set()
                if stop:
                    return
        except sqlite3.Error as exc:
            self.enabled = False
            warnings.warn(f"notebook_ext: job history stopped ({exc})", RuntimeWarning, stacklevel=1)
        finally:
            con.close()

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
        or ``"earlier"``."""
        if self.path is None or not self.path.exists():
            return []
        self.flush()
        where, args = "", ()  # type: tuple[str, tuple[str, ...]]
        if sessions == "current":
            where, args = "WHERE session=?", (self.session,)
        elif sessions == "earlier":
            where, args = "WHERE session!=?", (self.session,)
        con = _connect(self.path)
        try:
            con.row_factory = sqlite3.Row
            rows = con.execute(
                f"SELECT * FROM jobs {where} ORDER BY created DESC LIMIT ?", (*args, limit)
            ).fetchall()
            out = []
            for r in rows:
                d = dict(r)
                for key in ("params", "metrics", "artifacts"):
                    d[key] = json.loads(d[key]) if d[key] else ({} if key != "artifacts" else [])
                out.append(d)
            return out
        finally:
            con.close()

    def transitions(self, uid: str) -> list[tuple[str, float]]:
        if self.path is None or not self.path.exists():
            return []
        self.flush()
        con = _connect(self.path)
        try:
            return [tuple(r) for r in con.execute(
                "SELECT state, t FROM transitions WHERE uid=? ORDER BY rowid", (uid,)
            )]
        finally:
            con.close()
