"""The history as records a person can browse, and the folder where jobs
keep their checkpoints.

Checkpoints live in ``checkpoints/`` next to the history file (0700). A job
writes its checkpoint over its previous one, so only the last is kept; a
job that ends ``done`` deletes its own. The folder is capped at
``$NOTEBOOK_EXT_CHECKPOINT_CAP`` bytes (default 2 GiB, suffixes K/M/G
allowed): after each write the oldest checkpoints of jobs not running here
are deleted until the folder fits; those of jobs whose owner is alive, in
this process or another (the ledger says which), are never deleted.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
import threading
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ._states import DONE, INTERRUPTED, STATES
from ._text import safe_repr
from ._tracebacks import require

DEFAULT_CAP = 2 * 1024 ** 3
_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}
_in_use: set[str] = set()  # checkpoint groups a job of this process is writing
_lock = threading.Lock()


@dataclass(frozen=True)
class JobRecord:
    """One job of the history (this session or an earlier one)."""

    name: str
    state: str
    kind: str | None
    session: str
    uid: str
    executor: str | None = None
    priority: int | None = None
    created: float | None = None
    started: float | None = None
    ended: float | None = None
    attempts: int | None = None
    error: str | None = None
    traceback: str | None = None
    code: str | None = None
    parent: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    checkpoint: str | None = None  #: its checkpoint file, when it still exists
    resumable: bool = False  #: `notebook_ext.resume` can pick it up from `checkpoint`

    @property
    def duration(self) -> float | None:
        return self.ended - self.started if self.ended is not None and self.started is not None else None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "JobRecord":
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in row.items() if k in names}
        spec = row.get("resume") or {}
        path = spec.get("path")
        exists = isinstance(path, str) and os.path.exists(path)
        values["checkpoint"] = path if exists else None
        values["resumable"] = exists and row.get("state") != DONE
        return cls(**values)


class HistoryRecords(list):
    """A list of `JobRecord`, newest first, with `to_frame`."""

    def to_frame(self) -> Any:
        """The records as a pandas DataFrame (needs pandas)."""
        pd = require("pandas", "pandas", "history().to_frame()")
        frame = pd.DataFrame([{**asdict(r), "duration": r.duration} for r in self])
        for column in ("created", "started", "ended"):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column], unit="s")
        return frame


def records(rows: list[dict[str, Any]]) -> HistoryRecords:
    return HistoryRecords(JobRecord.from_row(r) for r in rows)


# -- rows of the history file ---------------------------------------------------
_NEEDED_TEXT = ("uid", "session", "name", "state")
_KNOWN_STATES = frozenset((*STATES, INTERRUPTED))
_TEXT = ("kind", "executor", "code", "error", "traceback", "parent")
_INTEGERS = ("job_id", "priority", "attempts")
_TIMES = ("created", "started", "ended", "live_done", "live_total", "rate", "eta", "updated")
_JSON: dict[str, type] = {"params": dict, "metrics": dict, "artifacts": list, "resume": dict,
                          "after_names": list, "live_metrics": dict}


def decode_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """One row of the history's ``jobs`` table (with ``row_id`` and its
    ``resume`` spec) as the store's record: JSON columns decoded, every
    column checked, since another program or a bad disk may have put
    anything there. `ValueError` says which column cannot be used."""
    d = {key: None for key in (*_NEEDED_TEXT, *_TEXT, *_INTEGERS, *_TIMES, *_JSON)} | dict(row)
    del d["row_id"]
    for key in _NEEDED_TEXT + _TEXT:
        if not isinstance(d[key], str) and (d[key] is not None or key in _NEEDED_TEXT):
            raise ValueError(f"`{key}` is {type(d[key]).__name__}, not text")
    if d["state"] not in _KNOWN_STATES:  # a newer release's record
        raise ValueError(f"`state` is {safe_repr(d['state'], 40)}, which this notebook_ext does not know")
    for key in _INTEGERS + _TIMES:
        value = d[key]
        number = (int,) if key in _INTEGERS else (int, float)
        if value is not None and (not isinstance(value, number) or not math.isfinite(value)):
            raise ValueError(f"`{key}` is {safe_repr(value, 40)}, not a number")
    for key, kind in _JSON.items():
        try:
            value = json.loads(d[key]) if d[key] else None
        except (ValueError, TypeError, RecursionError) as exc:
            raise ValueError(f"`{key}` is not JSON ({type(exc).__name__})") from None
        value = kind() if value is None else value
        if not isinstance(value, kind):
            raise ValueError(f"`{key}` is a JSON {type(value).__name__}, not a {kind.__name__}")
        d[key] = value
    if not all(isinstance(a, str) for a in d["artifacts"]):
        raise ValueError("`artifacts` holds something other than paths")
    return d


# -- checkpoint files ---------------------------------------------------------
def checkpoint_folder(history_path: Path | None) -> Path | None:
    """``checkpoints/`` beside the history file, made private; None without a history."""
    if history_path is None:
        return None
    folder = Path(history_path).parent / "checkpoints"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def new_checkpoint(folder: Path, name: str) -> Path:
    """A fresh base path for one job's checkpoint files (``<base>``, ``<base>.items`` …)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40].strip("._") or "job"
    return folder / f"{safe}-{uuid.uuid4().hex[:10]}.ckpt"


def write_atomic(path: str | os.PathLike, write: Callable[[str], Any]) -> str:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it over
    ``path``: readers (and a crash) see the old file or the new, never half."""
    path = os.path.abspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _group(path: str | os.PathLike) -> str:
    """The checkpoint a file belongs to: ``x.ckpt``, ``x.ckpt.items`` and ``x.ckpt.part-3`` are one."""
    name = os.path.basename(path)
    head, sep, _ = name.partition(".ckpt")
    return head + sep


def hold(path: str | os.PathLike) -> None:
    """Mark a checkpoint as being written by a job here: pruning leaves it."""
    with _lock:
        _in_use.add(_group(path))


def release(path: str | os.PathLike, *, delete: bool) -> None:
    """The job writing ``path`` ended; ``delete`` removes all its files."""
    with _lock:
        _in_use.discard(_group(path))
    if delete:
        folder = os.path.dirname(os.path.abspath(path))
        group = _group(path)
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                if _group(entry.name) == group:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)


def cap_bytes() -> int:
    text = os.environ.get("NOTEBOOK_EXT_CHECKPOINT_CAP", "").strip().upper().removesuffix("B").removesuffix("I")
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)", text)
    if not match:
        return DEFAULT_CAP
    return int(float(match[1]) * _UNITS[match[2]])


def prune(folder: "str | os.PathLike[str]", cap: int | None = None, keep: "Iterable[str]" = ()) -> list[str]:
    """Delete the oldest checkpoints not in use here, nor among ``keep`` (paths
    of checkpoints other processes' live jobs use), until ``folder`` holds
    at most ``cap`` bytes; returns the groups deleted."""
    cap = cap_bytes() if cap is None else cap
    groups: dict[str, list[os.DirEntry]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(os.fspath(folder)):
            if ".ckpt" in entry.name and not entry.name.startswith(".tmp-"):
                groups.setdefault(_group(entry.name), []).append(entry)
    sizes = {g: sum(_size(e) for e in entries) for g, entries in groups.items()}
    total = sum(sizes.values())
    deleted = []
    with _lock:
        busy = set(_in_use) | {_group(path) for path in keep}
    for group in sorted(groups, key=lambda g: max(_mtime(e) for e in groups[g])):
        if total <= cap:
            break
        if group in busy:
            continue
        for entry in groups[group]:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
        total -= sizes[group]
        deleted.append(group)
    return deleted


def _size(entry: os.DirEntry) -> int:
    try:
        return entry.stat().st_size
    except OSError:
        return 0


def _mtime(entry: os.DirEntry) -> float:
    try:
        return entry.stat().st_mtime
    except OSError:
        return 0.0
