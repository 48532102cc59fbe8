"""The job ledger: the history file as the one record every process of a
user shares (schema, owners and their leases, live snapshots, the control
mailbox, resume claims), and `Ledger`, its reader and messenger.

One SQLite file per user in WAL mode (see `default_history_path`). Each
process with live jobs is an *owner*: a ``sessions`` row with its pid, host,
process start time, kernel id and notebook path when it runs in a Jupyter
kernel, and a *lease* its history writer renews every `RENEW` seconds while
it has active jobs. A job whose owner's lease ran out (or, on this host,
whose process is gone) reads ``interrupted`` to every reader, and the first
writer to notice records it so. Nothing relies on a graceful shutdown.

Not supported: a ledger on a network filesystem (SQLite's locking is
unsafe there: refused, the history then stays in memory) and one ledger
shared by several machines (leases compare wall clocks).
"""

from __future__ import annotations

import contextlib
import json
import operator
import os
import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ._clock import SYSTEM_CLOCK
from ._owners import active_owners, effective, owner_alive
from ._records import SCHEMA_VERSION, HistoryRecords, JobRecord, Owner, decode_row
from ._states import ACTIVE_STATES
from ._text import clean


#: Seconds an owner's lease lasts; ``$NOTEBOOK_EXT_LEASE`` changes it.
LEASE_SECONDS = 10.0

ACTIONS = ("cancel", "stop")
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "afs", "ceph", "glusterfs", "lustre", "gpfs",
    "beegfs", "9p", "fuse.sshfs", "fuse.s3fs", "fuse.gcsfuse", "fuse.glusterfs", "fuse.cephfs", "davfs",
    "fuse.davfs2", "ncpfs", "coda", "ocfs2", "gfs2",
})
_ACTIVE = tuple(sorted(ACTIVE_STATES))
_MARKS = ",".join("?" * len(_ACTIVE))

_TABLES = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, pid INTEGER, host TEXT, started REAL, ended REAL,
    proc_start TEXT, kernel TEXT, notebook TEXT, lease REAL
);
CREATE TABLE IF NOT EXISTS jobs (
    uid TEXT PRIMARY KEY, session TEXT, job_id INTEGER, name TEXT, kind TEXT,
    executor TEXT, priority INTEGER, params TEXT, code TEXT, state TEXT,
    attempts INTEGER, created REAL, started REAL, ended REAL, error TEXT,
    traceback TEXT, metrics TEXT, artifacts TEXT, parent TEXT, after_names TEXT
);
CREATE TABLE IF NOT EXISTS transitions (uid TEXT, state TEXT, t REAL);
CREATE TABLE IF NOT EXISTS resumable (uid TEXT PRIMARY KEY, spec TEXT);
CREATE TABLE IF NOT EXISTS live (
    uid TEXT PRIMARY KEY, t REAL, done REAL, total REAL, rate REAL, eta REAL, metrics TEXT
);
CREATE TABLE IF NOT EXISTS mailbox (
    id INTEGER PRIMARY KEY, session TEXT, uid TEXT, action TEXT, reason TEXT, sender TEXT,
    t REAL, taken REAL
);
CREATE TABLE IF NOT EXISTS claims (uid TEXT PRIMARY KEY, session TEXT, job TEXT, t REAL);
CREATE INDEX IF NOT EXISTS jobs_session ON jobs(session);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_name ON jobs(name, created);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created);
CREATE INDEX IF NOT EXISTS mailbox_open ON mailbox(session, taken);
"""
#: Columns the first release's tables lack (its files are migrated in place).
_ADDED = {"sessions": ("proc_start TEXT", "kernel TEXT", "notebook TEXT", "lease REAL"),
          "jobs": ("after_names TEXT",)}

JOB_COLUMNS = JobRecord.COLUMNS
INSERT_JOB = f"INSERT OR REPLACE INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({', '.join('?' * len(JOB_COLUMNS))})"
_JOINED = (
    "resumable.spec AS resume, sessions.pid AS pid, sessions.host AS host, "
    "sessions.kernel AS kernel, sessions.notebook AS notebook, sessions.lease AS lease, "
    "sessions.ended AS session_ended, sessions.proc_start AS proc_start, live.done AS live_done, "
    "live.total AS live_total, live.rate AS rate, live.eta AS eta, live.t AS updated, live.metrics AS live_metrics "
    "FROM jobs LEFT JOIN resumable ON resumable.uid = jobs.uid LEFT JOIN sessions ON sessions.id = jobs.session "
    "LEFT JOIN live ON live.uid = jobs.uid")
SELECT_JOBS = f"SELECT jobs.rowid AS row_id, jobs.*, {_JOINED}"
#: the same without the two long texts (a listing shows neither)
_SELECT_BRIEF = ("SELECT jobs.rowid AS row_id, "
                 + ", ".join(f"NULL AS {c}" if c in ("code", "traceback") else f"jobs.{c}" for c in JOB_COLUMNS)
                 + f", {_JOINED}")


_DECODE = operator.methodcaller("decode", "utf-8", "backslashreplace")
_SELECT_CLAIMS = (
    "SELECT claims.session AS session, claims.job AS job, claims.t AS t, sessions.pid AS pid, "
    "sessions.host AS host, sessions.kernel AS kernel, sessions.notebook AS notebook, "
    "sessions.lease AS lease, sessions.ended AS session_ended, sessions.proc_start AS proc_start, "
    "jobs.state AS job_state")
_JOIN_CLAIMS = "LEFT JOIN sessions ON sessions.id = claims.session LEFT JOIN jobs ON jobs.uid = claims.job"


class NewerSchema(sqlite3.DatabaseError):
    """The file was written by a newer notebook_ext: it is left untouched."""


def default_history_path() -> Path | None:
    """Where the history lives: ``$NOTEBOOK_EXT_HISTORY`` when set (a file
    path; ``off`` disables it), else
    ``$XDG_DATA_HOME/notebook_ext/history.sqlite3``
    (``~/.local/share/notebook_ext/history.sqlite3``); None when off."""
    env = os.environ.get("NOTEBOOK_EXT_HISTORY")
    if env:
        return None if env.strip().lower() in {"off", "none", "0", "false"} else Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "notebook_ext" / "history.sqlite3"


def lease_seconds() -> float:
    try:
        value = float(os.environ.get("NOTEBOOK_EXT_LEASE", LEASE_SECONDS))
    except ValueError:
        return LEASE_SECONDS
    return value if value > 0 else LEASE_SECONDS


def connect(target: str, timeout: float = 10, *, memory: bool = False) -> sqlite3.Connection:
    """A connection to the ledger at ``target``, its schema made or migrated
    to `SCHEMA_VERSION`; `NewerSchema` for a file of a newer release."""
    con = sqlite3.connect(target, timeout=timeout, check_same_thread=False, uri=memory)
    try:
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise NewerSchema(f"it has schema version {version} and this notebook_ext knows only up to "
                              f"{SCHEMA_VERSION} (a newer notebook_ext wrote it)")
        if not memory:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
        if version < SCHEMA_VERSION:
            _migrate(con)
    except BaseException:
        con.close()
        raise
    return con


@contextlib.contextmanager
def immediate(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction that takes the file's write lock at its start
    (``BEGIN IMMEDIATE``): what it read cannot change before it commits."""
    con.isolation_level = None
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            con.execute("ROLLBACK")
        raise
    finally:
        con.isolation_level = "DEFERRED"  # Python's default (""), for the statements that follow


def _migrate(con: sqlite3.Connection) -> None:
    """Make the tables (a new file) or add what the first release's lack, in
    one transaction; a connection that got there first did it already."""
    with immediate(con):
        if con.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            for table, columns in _ADDED.items():
                have = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
                if have:
                    for column in columns:
                        if column.split()[0] not in have:
                            con.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
            for statement in _TABLES.split(";"):
                if statement.strip():
                    con.execute(statement)
            con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def network_filesystem(path: str | os.PathLike[str], mounts: str | None = None) -> str | None:
    """The type of the network filesystem ``path`` is on (``"nfs4"`` …), or
    None for a local one. ``mounts`` is ``/proc/self/mounts``' text (read
    when None; no such file: None)."""
    if mounts is None:
        try:
            with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
                mounts = f.read()
        except OSError:
            return None
    where = os.path.realpath(path)
    best, kind = "", None
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = where == point or where.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, parts[2]
    return kind if kind in NETWORK_FILESYSTEMS or (kind or "").split(".")[0] in NETWORK_FILESYSTEMS else None


@dataclass(frozen=True)
class Pulse:
    """What changed in the ledger, cheaply read (`Ledger.pulse`): whether
    any job's record changed since a reading (``mark``), whether the owners
    of active jobs still run (``owners``), and the live numbers written
    since a time (``numbers``: uid, updated, done, total, rate, eta)."""

    mark: int
    owners: dict[str, bool]
    numbers: list[tuple[str, float, Any, Any, Any, Any]]


class Refused(ValueError):
    """A request the ledger turns down (in one line that says why)."""


class Ledger:
    """Reading the ledger, and writing to it what a process that does not own
    a job may: control requests and resume claims.

    ``path``: the history file, e.g. `default_history_path()` (None: no ledger).

    Examples
    --------
    >>> ledger = Ledger(default_history_path())                                 # doctest: +SKIP
    >>> [(r["name"], r["state"]) for r in ledger.jobs()]
    >>> ledger.request(ledger.resolve("fit")["uid"], "cancel")
    """

    def __init__(self, path: str | os.PathLike[str] | None, *, me: str | None = None,
                 memory: str | None = None, clock: Any = None) -> None:
        self.path = Path(path) if path is not None else None
        self._target = memory if memory is not None else (str(self.path) if self.path is not None else None)
        self._memory = memory is not None
        self.me = me  #: the session reading (its own jobs are alive whatever its lease)
        self.clock = clock

    def now(self) -> float:
        return (self.clock if self.clock is not None else SYSTEM_CLOCK).time()

    @property
    def exists(self) -> bool:
        return self._target is not None and (self._memory or (self.path is not None and self.path.exists()))

    @contextlib.contextmanager
    def connection(self, timeout: float = 10) -> Iterator[sqlite3.Connection]:
        """A connection; a file SQLite cannot read raises one `sqlite3.DatabaseError` that names it."""
        assert self._target is not None
        try:
            with contextlib.closing(connect(self._target, timeout, memory=self._memory)) as con:
                con.row_factory = sqlite3.Row
                # text another program wrote in another encoding: shown escaped, like ours
                con.text_factory = _DECODE
                yield con
        except sqlite3.Error as exc:
            raise sqlite3.DatabaseError(
                f"job history file {clean(str(self.path))} is unreadable ({exc}); "
                "move it aside or set NOTEBOOK_EXT_HISTORY to another file") from None

    # -- reading -------------------------------------------------------------
    def rows(self, tail: str = "", args: tuple[Any, ...] = (), limit: int | None = None,
             bad: dict[int, str] | None = None, *, brief: bool = False) -> list[dict[str, Any]]:
        """Decoded, `effective` rows of ``SELECT_JOBS + tail`` (the storage
        side; readers want `records`); rows that cannot be used go to
        ``bad`` (rowid -> why)."""
        out: list[dict[str, Any]] = []
        if not self.exists:
            return out
        now = self.now()
        known: dict[Any, bool] = {}  # each owner judged once per reading
        with self.connection() as con:
            cursor = con.cursor()
            cursor.row_factory = None  # plain tuples, zipped with the names once: 3x faster than sqlite3.Row
            cursor.execute(f"{_SELECT_BRIEF if brief else SELECT_JOBS} {tail}", args)
            names = [column[0] for column in cursor.description]
            for values in cursor:
                if limit is not None and len(out) >= limit:
                    break
                row = dict(zip(names, values))
                try:
                    out.append(effective(decode_row(row), now, self.me, known))
                except ValueError as exc:
                    if bad is not None:
                        bad[row["row_id"]] = str(exc)
        return out

    def records(self, tail: str = "", args: tuple[Any, ...] = (), limit: int | None = None,
                bad: dict[int, str] | None = None, *, brief: bool = False) -> HistoryRecords:
        """`rows` as `JobRecord`s (``brief``: without their code and traceback)."""
        return HistoryRecords(JobRecord.from_row(r) for r in self.rows(tail, args, limit, bad, brief=brief))

    def jobs(self, *, ended: int | None = 50, since: float | None = None,
             bad: dict[int, str] | None = None) -> HistoryRecords:
        """Every active job (live or just found interrupted) and the ``ended``
        most recent others (None: all of them; ``since``: ended after that
        time), newest first; without their code and traceback (`resolve`
        and `notebook_ext.history` give those)."""
        active = self.records(f"WHERE jobs.state IN ({_MARKS}) ORDER BY jobs.created DESC", _ACTIVE, bad=bad,
                              brief=True)
        where = f"WHERE jobs.state NOT IN ({_MARKS})"
        args: tuple[Any, ...] = _ACTIVE
        if since is not None:
            where += " AND jobs.ended >= ?"
            args += (since,)
        limit = "" if ended is None else f" LIMIT {int(ended)}"
        rest = self.records(f"{where} ORDER BY jobs.created DESC{limit}", args, bad=bad, brief=True)
        return HistoryRecords(sorted(active + rest, key=lambda r: -(r.created or 0)))

    def pulse(self, since: float) -> Pulse:
        """The ledger's `Pulse`: a record written (any state change, a new
        job) moves ``mark``; the live numbers are those written at or after
        ``since``. A reader that keeps `jobs` brings them up to date from
        this alone while ``mark`` and ``owners`` stay the same."""
        if not self.exists:
            return Pulse(0, {}, [])
        now = self.now()
        with self.connection() as con:
            # every record written comes with a row here (append only): its last rowid moves
            mark = con.execute("SELECT max(rowid) FROM transitions").fetchone()[0] or 0
            owners = {row["session"]: owner_alive(row, now, self.me) for row in active_owners(con)}
            cursor = con.cursor()
            cursor.row_factory = None
            numbers = cursor.execute("SELECT uid, t, done, total, rate, eta FROM live WHERE t >= ?",
                                     (since,)).fetchall()
        return Pulse(mark, owners, numbers)

    def resolve(self, name_or_uid: str, *, live: bool = True) -> JobRecord:
        """The one job ``name_or_uid`` names (its uid, or its name among the
        live jobs when ``live``); `Refused` when none or several do, with
        the candidates listed."""
        found = self.records("WHERE jobs.uid=?", (name_or_uid,))
        if not found:
            found = self.records("WHERE jobs.name=? ORDER BY jobs.created DESC", (name_or_uid,))
            if live:
                found = HistoryRecords([r for r in found if r.live] or found[:1])
        if not found:
            raise Refused(f"no job named {name_or_uid!r} in the ledger ({clean(str(self.path))})")
        if len(found) > 1:
            listed = "; ".join(f"{r.uid} ({r.state}, {r.owner})" for r in found[:10])
            raise Refused(f"{len(found)} running jobs are named {name_or_uid!r}: give one's id: {listed}")
        return found[0]

    # -- control ---------------------------------------------------------------
    def request(self, uid: str, action: str = "cancel", reason: str | None = None,
                sender: str | None = None) -> JobRecord:
        """Ask the owner of job ``uid`` (an id, or a running job's name) to
        ``"cancel"`` it or ``"stop"`` it (stop and keep); its kernel acts
        within about a second. Returns the job's record; `Refused` when it
        does not run any more."""
        if action not in ACTIONS:
            raise Refused(f"`action` must be one of {', '.join(ACTIONS)}, got {action!r}")
        record = self.resolve(uid)
        if not record.live:
            raise Refused(f"job {record.name!r} is {record.state}: nothing to {action}")
        me = sender or f"pid {os.getpid()} on {socket.gethostname()}"
        with self.connection() as con, con:
            con.execute("INSERT INTO mailbox (session, uid, action, reason, sender, t) VALUES (?,?,?,?,?,?)",
                        (record.session, record.uid, action, reason, me, self.now()))
        return record

    def live_checkpoints(self) -> set[str]:
        """The checkpoint paths of every job whose owner is alive (running, or
        claimed for a resume): pruning must leave them."""
        paths = set()
        for r in self.rows(f"WHERE jobs.state IN ({_MARKS})", _ACTIVE):
            if r["live"] and isinstance(r["resume"].get("path"), str):
                paths.add(r["resume"]["path"])
        with self.connection() as con:
            for held in con.execute(f"{_SELECT_CLAIMS}, resumable.spec AS spec FROM claims {_JOIN_CLAIMS} "
                                    "JOIN resumable ON resumable.uid = claims.uid").fetchall():
                if self._claim_live(dict(held)):
                    with contextlib.suppress(ValueError, TypeError, KeyError):
                        paths.add(json.loads(held["spec"])["path"])
        return {p for p in paths if isinstance(p, str)}

    def claim(self, record: JobRecord, session: str, lease: float) -> None:
        """Take job ``record``'s resume for ``session`` (whose lease is set to
        ``lease``); `Refused`, naming the process, when another live one
        holds it."""
        uid = record.uid
        with self.connection(timeout=30) as con, immediate(con):
            held = con.execute(f"{_SELECT_CLAIMS} FROM claims {_JOIN_CLAIMS} WHERE claims.uid=?",
                               (uid,)).fetchone()
            if held is not None and held["session"] != session and self._claim_live(dict(held)):
                owner = Owner(held["pid"], held["host"], held["kernel"], held["notebook"])
                raise Refused(f"job {record.name!r} is being resumed by {owner}; "
                              f"one resume at a time (cancel that one first)")
            con.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, NULL, ?)", (uid, session, self.now()))
            con.execute("UPDATE sessions SET lease=? WHERE id=?", (lease, session))

    def _claim_live(self, held: dict[str, Any]) -> bool:
        if held["session_ended"] is not None or held["session"] is None:
            return False
        now = self.now()
        if not owner_alive(held, now):
            return False
        if held["job"] is None:  # claimed, the new job not submitted yet
            return (held["t"] or 0) >= now - lease_seconds()
        return held["job_state"] is None or held["job_state"] in ACTIVE_STATES

    def unclaim(self, uid: str, session: str) -> None:
        with self.connection(timeout=30) as con, con:
            con.execute("DELETE FROM claims WHERE uid=? AND session=?", (uid, session))

