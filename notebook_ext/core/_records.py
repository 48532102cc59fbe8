"""The job's durable record: what the ledger keeps of a job, what
`notebook_ext.history`, ``%jobs --history``, ``python -m notebook_ext jobs``
and `Job.record` give, as one typed record (`JobRecord`) with its schema
version; `to_row` and `from_row` are the one place it meets the ledger's
columns."""

from __future__ import annotations

import json
import math
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from ._states import ACTIVE_STATES, DONE, INTERRUPTED, STATES
from ._text import clean, safe_repr
from ._tracebacks import require

if TYPE_CHECKING:  # pragma: no cover
    from ._job import Job

#: The ledger's schema: the record's fields and the tables around them.
SCHEMA_VERSION = 2
#: What a job that was active when its owner stopped says as its error.
LOST_OWNER = "the kernel stopped while this job was active"


@dataclass(frozen=True)
class Owner:
    """Who runs a job: a process, and the kernel and notebook when known."""

    pid: int | None
    host: str | None
    kernel: str | None = None
    notebook: str | None = None

    def __str__(self) -> str:
        where = f"pid {self.pid} on {self.host}"
        extra = [f"kernel {self.kernel[:8]}" if self.kernel else "", self.notebook or ""]
        return where + (f" ({', '.join(e for e in extra if e)})" if any(extra) else "")


@dataclass(frozen=True)
class JobRecord:
    """One job as the ledger keeps it (this session's, or any other
    process's): its durable facts, its owner, and the live snapshot its
    owner last wrote (``done``, ``total``, ``rate``, ``eta`` at ``updated``).

    ``live`` says whether its owner still runs it; a job whose owner is gone
    reads ``interrupted``. ``resume`` is the spec `notebook_ext.resume`
    goes on from (``checkpoint`` is its file while it exists).
    """

    SCHEMA: ClassVar[int] = SCHEMA_VERSION
    #: the ledger's ``jobs`` columns, in order (`to_row`)
    COLUMNS: ClassVar[tuple[str, ...]] = (
        "uid", "session", "job_id", "name", "kind", "executor", "priority", "params", "code", "state", "attempts",
        "created", "started", "ended", "error", "traceback", "metrics", "artifacts", "parent", "after_names")

    name: str
    state: str
    kind: str | None
    session: str
    uid: str
    job_id: int | None = None
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
    after: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    resume: dict[str, Any] | None = None  #: how to go on after a crash (the resume spec), or None
    checkpoint: str | None = None  #: its checkpoint file, when it still exists
    resumable: bool = False  #: `notebook_ext.resume` can pick it up from `checkpoint`
    owner: Owner | None = None  #: the process (kernel, notebook) that ran it
    live: bool = False  #: its owner still runs it (an active job, lease held)
    done: float | None = None  #: progress at `updated` (the live snapshot)
    total: float | None = None
    rate: float | None = None  #: items per second then
    eta: float | None = None  #: seconds left then
    updated: float | None = None

    @property
    def duration(self) -> float | None:
        return self.ended - self.started if self.ended is not None and self.started is not None else None

    def as_json(self, *, brief: bool = False) -> dict[str, Any]:
        """The record as JSON (``python -m notebook_ext jobs --json``, the
        server's ``/notebook-ext/api/jobs``): without its code and traceback;
        a NaN or infinite number (a diverged loss) as null, since JSON has
        none. ``brief`` (a listing of thousands): without metrics and
        ``after``, and only the first line of the error."""
        owner = self.owner
        if brief:
            return {
                "id": self.uid, "name": self.name, "kind": self.kind, "state": self.state, "live": self.live,
                "executor": self.executor, "session": self.session, "created": self.created,
                "started": self.started, "ended": self.ended,
                "error": self.error.split("\n", 1)[0][:300] if self.error else None, "parent": self.parent,
                "progress": live_numbers(self.updated, self.done, self.total, self.rate, self.eta),
                "owner": {"pid": owner.pid if owner else None, "host": owner.host if owner else None,
                          "kernel": owner.kernel if owner else None,
                          "notebook": owner.notebook if owner else None},
                "resumable": self.resumable,
            }
        return {
            "id": self.uid, "name": self.name, "kind": self.kind, "state": self.state, "live": self.live,
            "executor": self.executor, "session": self.session,
            "created": _finite(self.created), "started": _finite(self.started), "ended": _finite(self.ended),
            "error": self.error, "parent": self.parent, "after": list(self.after),
            "progress": live_numbers(self.updated, self.done, self.total, self.rate, self.eta),
            "metrics": {k: _finite(v) for k, v in self.metrics.items()},
            "owner": {"pid": owner.pid if owner else None, "host": owner.host if owner else None,
                      "kernel": owner.kernel if owner else None, "notebook": owner.notebook if owner else None},
            "resumable": self.resumable,
        }

    # -- the one place the record meets the ledger's columns ---------------------
    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "JobRecord":
        """The record of a `decode_row` row (joined with its owner and live snapshot)."""
        spec = row.get("resume") or None
        path = spec.get("path") if spec else None
        exists = isinstance(path, str) and os.path.exists(path)
        pid = row.get("pid")
        owner = (Owner(pid if isinstance(pid, int) else None, _str(row.get("host")), _str(row.get("kernel")),
                       _str(row.get("notebook")))
                 if row.get("pid") is not None or row.get("host") is not None else None)
        values = _ROW_DEFAULTS | {k: v for k, v in row.items() if k in _FROM_ROW}
        values.update(resume=spec, checkpoint=path if exists else None,
                      resumable=exists and row.get("state") != DONE and not row.get("live"),
                      after=tuple(row.get("after_names") or ()), owner=owner, done=row.get("live_done"),
                      total=row.get("live_total"),
                      metrics={**(row.get("metrics") or {}), **(row.get("live_metrics") or {})})
        # Every field is set here from a checked row: filled in directly, as a
        # frozen dataclass's __init__ would (5x faster: a listing makes thousands)
        record = object.__new__(cls)
        record.__dict__.update(values)
        return record

    @classmethod
    def of(cls, job: "Job", session: str, state: str | None = None) -> "JobRecord":
        """The record of a live `Job` of ``session``; ``state`` when the
        ledger must keep another (a job the shutdown stopped is
        ``interrupted``, whatever its executor made of the stop)."""
        interrupted = state == INTERRUPTED
        ctx = job.ctx
        done, total, _ = job.counts()
        return cls(
            name=clean(job.name), state=INTERRUPTED if interrupted else job.state, kind=_text(job.kind),
            session=session, uid=f"{session}:{job.id}", job_id=job.id, executor=_text(job.runs_on),
            priority=job.priority, created=job.created, started=job.started, ended=job.ended,
            attempts=job.attempts, error=LOST_OWNER if interrupted else _text(job.error),
            traceback=_text(job.traceback), code=_text(job.code),
            parent=clean(job.parent.name) if job.parent else None, after=tuple(clean(a.name) for a in job.after),
            params={_key(k): safe_repr(v) for k, v in list(job.params.items())},
            metrics=last_metrics(ctx),
            artifacts=[clean(a) for a in job.artifacts], resume=job.resume_spec,
            live=job.state in ACTIVE_STATES and not interrupted, done=done, total=total,
        )

    def to_row(self) -> tuple[Any, ...]:
        """The ledger's ``jobs`` row (`COLUMNS`)."""
        return (self.uid, self.session, self.job_id, self.name, self.kind, self.executor, self.priority,
                json.dumps(self.params), self.code, self.state, self.attempts, self.created, self.started,
                self.ended, self.error, self.traceback, json.dumps(self.metrics, default=str),
                json.dumps(list(self.artifacts)), self.parent, json.dumps(list(self.after)))


#: the row's columns that are fields as they are
_FROM_ROW = frozenset(f.name for f in fields(JobRecord)) - {"resume", "done", "metrics"}
#: every field's default (a row lacks some, e.g. a first-release file's)
_ROW_DEFAULTS = {f.name: f.default for f in fields(JobRecord) if f.default is not MISSING}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def last_metrics(ctx: Any) -> dict[str, float]:
    """Each metric's latest value, from a job's context (any thread may read it)."""
    return {clean(k): v[-1][1] for k, v in list(ctx.metrics.items()) if v}


def _key(value: object) -> str:
    return clean(value) if isinstance(value, str) else safe_repr(value)


def _text(value: object) -> str | None:
    """``value`` as text any reader can decode (None stays None)."""
    if value is None:
        return None
    return clean(value) if isinstance(value, str) else safe_repr(value)


class HistoryRecords(list[JobRecord]):
    """A list of `JobRecord`, newest first, with `to_frame`."""

    def to_frame(self) -> Any:
        """The records as a pandas DataFrame (needs pandas)."""
        pd = require("pandas", "pandas", "history().to_frame()")
        frame = pd.DataFrame([{**asdict(r), "duration": r.duration} for r in self])
        for column in ("created", "started", "ended", "updated"):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column], unit="s")
        return frame


# -- rows of the history file ---------------------------------------------------
_NEEDED_TEXT = ("uid", "session", "name", "state")
_KNOWN_STATES = frozenset((*STATES, INTERRUPTED))
_TEXT = ("kind", "executor", "code", "error", "traceback", "parent")
_INTEGERS = ("job_id", "priority", "attempts")
_TIMES = ("created", "started", "ended", "live_done", "live_total", "rate", "eta", "updated")
_JSON: dict[str, type] = {"params": dict, "metrics": dict, "artifacts": list, "resume": dict,
                          "after_names": list, "live_metrics": dict}


_EMPTY: dict[type, str] = {dict: "{}", list: "[]"}
_DEFAULTS: dict[str, Any] = dict.fromkeys((*_NEEDED_TEXT, *_TEXT, *_INTEGERS, *_TIMES, *_JSON))


def decode_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """One row of the ledger's ``jobs`` table (with ``row_id``, its
    ``resume`` spec, its owner's and its live snapshot's columns) with the
    JSON columns decoded and every column checked, since another program
    or a bad disk may have put anything there. `ValueError` says which
    column cannot be used (a state this release does not know, too)."""
    d = _DEFAULTS | dict(row)
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
        text = d[key]
        if not text or text == _EMPTY[kind]:  # most rows: no need to parse
            value = None
        else:
            try:
                value = json.loads(text)
            except (ValueError, TypeError, RecursionError) as exc:
                raise ValueError(f"`{key}` is not JSON ({type(exc).__name__})") from None
        value = kind() if value is None else value
        if not isinstance(value, kind):
            raise ValueError(f"`{key}` is a JSON {type(value).__name__}, not a {kind.__name__}")
        d[key] = value
    if not all(isinstance(a, str) for a in d["artifacts"]):
        raise ValueError("`artifacts` holds something other than paths")
    if not all(isinstance(a, str) for a in d["after_names"]):
        raise ValueError("`after_names` holds something other than names")
    return d


def live_numbers(updated: Any, done: Any, total: Any, rate: Any, eta: Any) -> dict[str, Any]:
    """A job's live snapshot as its JSON's ``progress`` (`JobRecord.as_json`)."""
    return {"done": _whole(_finite(done)), "total": _whole(_finite(total)), "rate": _finite(rate),
            "eta": _finite(eta), "at": _finite(updated)}


def _finite(value: Any) -> Any:
    """A number as JSON can write it: NaN and infinities as None (`json.dumps`
    would write ``NaN`` / ``Infinity``, which strict parsers, JavaScript's
    ``JSON.parse`` among them, refuse)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _whole(value: float | None) -> float | int | None:
    """A count as an int when it is whole (the ledger keeps numbers as REAL)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value
