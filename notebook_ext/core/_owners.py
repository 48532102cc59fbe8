"""A job's owner, as every reader of the ledger judges it: a process of
this host runs (its pid, not a reused one: its start time), or its lease
holds; an active job whose owner is gone reads ``interrupted``
(`effective`), and writers record it so (`mark_lost`)."""

from __future__ import annotations

import os
import socket
import sqlite3
import sys
from typing import Any

from ._records import LOST_OWNER, Owner
from ._states import ACTIVE_STATES, INTERRUPTED

_ACTIVE = tuple(sorted(ACTIVE_STATES))
_MARKS = ",".join("?" * len(_ACTIVE))


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, Linux), to tell
    it from a later process given the same pid; None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _process_state(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def pid_alive(pid: int, start: str | None = None) -> bool:
    """Process ``pid`` of this host runs (not a zombie; the same process
    when its ``start`` is known)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    if _process_state(pid) == b"Z":  # killed, not reaped yet by its parent: dead
        return False
    now = process_start(pid)
    return start is None or now is None or now == start


def this_owner() -> tuple[Owner, str | None]:
    """This process as an owner (kernel id from the kernel's connection file
    on its command line, notebook path from ``$JPY_SESSION_NAME``, which
    Jupyter Server sets), and its start time."""
    kernel = None
    for arg in sys.argv:
        name = os.path.basename(arg)
        if name.startswith("kernel-") and name.endswith(".json"):
            kernel = name[len("kernel-"):-len(".json")]
    notebook = os.environ.get("JPY_SESSION_NAME") or None
    return Owner(os.getpid(), socket.gethostname(), kernel, notebook), process_start(os.getpid())


def owner_alive(row: Any, now: float, me: str | None = None) -> bool:
    """The owner of a joined record (``pid``, ``host``, ``lease``,
    ``session_ended``, ``proc_start``) still runs: its lease holds and, on
    this host, its process is there. A first-release owner (no lease) is
    judged by its process alone; an unreadable one is taken as alive."""
    if me is not None and row["session"] == me:
        return True
    if row["session_ended"] is not None or row["pid"] is None and row["lease"] is None:
        return row["session_ended"] is None  # no owner row: cannot tell
    pid, lease = row["pid"], row["lease"]
    if isinstance(lease, (int, float)) and lease < now:
        return False
    if isinstance(pid, int) and row["host"] == socket.gethostname():
        start = row["proc_start"] if isinstance(row["proc_start"], str) else None
        return pid_alive(pid, start)
    return True  # another host (its lease holds, or it has none) or an unreadable row: cannot tell


def effective(row: dict[str, Any], now: float, me: str | None = None,
              known: dict[Any, bool] | None = None) -> dict[str, Any]:
    """``row`` as every reader must see it: an active job whose owner is
    gone is ``interrupted``; ``live`` says whether it still runs.
    ``known``: owners already judged in this reading ({session: alive}):
    a thousand jobs of one kernel look at its process once."""
    active = row["state"] in ACTIVE_STATES
    alive = False
    if active:
        session = row["session"]
        if known is not None and session in known:
            alive = known[session]
        else:
            alive = owner_alive(row, now, me)
            if known is not None:
                known[session] = alive
    if active and not alive:
        row["state"] = INTERRUPTED
        row["error"] = row["error"] or LOST_OWNER
    row["live"] = alive
    return row


def active_owners(con: sqlite3.Connection) -> list[dict[str, Any]]:
    """The owners of the active jobs, as `owner_alive` reads them."""
    rows = con.execute(
        f"SELECT DISTINCT sessions.id, sessions.pid, sessions.host, sessions.lease, sessions.ended, "
        f"sessions.proc_start FROM jobs JOIN sessions ON sessions.id = jobs.session WHERE jobs.state IN ({_MARKS})",
        _ACTIVE).fetchall()
    return [{"session": sid, "pid": pid, "host": host, "lease": lease, "session_ended": ended, "proc_start": start}
            for sid, pid, host, lease, ended, start in rows]


def mark_lost(con: sqlite3.Connection, now: float, me: str | None) -> int:
    """Record as ``interrupted`` the active jobs of every owner that is gone
    (lease run out, or its process gone from this host), and close those
    sessions; returns how many jobs. Call inside a transaction."""
    marked = 0
    for row in active_owners(con):
        sid, lease, host = row["session"], row["lease"], row["host"]
        if sid == me or owner_alive(row, now, me) or (lease is None and host != socket.gethostname()):
            continue
        uids = [u for (u,) in con.execute(f"SELECT uid FROM jobs WHERE session=? AND state IN ({_MARKS})",
                                          (sid, *_ACTIVE))]
        for uid in uids:
            con.execute("UPDATE jobs SET state=?, ended=COALESCE(ended, ?), error=COALESCE(error, ?) WHERE uid=?",
                        (INTERRUPTED, now, LOST_OWNER, uid))
            con.execute("INSERT INTO transitions VALUES (?, ?, ?)", (uid, INTERRUPTED, now))
        con.execute("UPDATE sessions SET ended=COALESCE(ended, ?) WHERE id=?", (now, sid))
        marked += len(uids)
    return marked
