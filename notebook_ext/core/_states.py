"""What a job is, as data: its states, the errors notebook_ext raises, and
the immutable `JobSnapshot` renderers draw (with `Progress` and the typed
`JobDetail` layers above attach)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

PENDING = "pending"
QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
TIMED_OUT = "timed_out"
#: only found in the history store: the job was active when its kernel stopped
INTERRUPTED = "interrupted"

STATES = (PENDING, QUEUED, RUNNING, DONE, FAILED, CANCELLED, TIMED_OUT)
ACTIVE_STATES = frozenset({PENDING, QUEUED, RUNNING})
FINAL_STATES = frozenset({DONE, FAILED, CANCELLED, TIMED_OUT})

class JobError(Exception):
    """Base class of the errors notebook_ext raises itself."""


class JobCancelled(JobError):
    """Raised inside a job when its cancellation takes effect, and by
    `Job.result()` for a cancelled job."""

    def __init__(self, reason: str = "cancelled") -> None:
        super().__init__(reason)
        self.reason = reason


class JobTimedOut(JobCancelled):
    """Raised by `Job.result()` for a job that ran past its timeout."""


class WorkerDied(JobError):
    """The process (or cluster worker) running a job died under it."""


class LoopDied(JobError):
    """The scheduler's loop thread died while the job was active (user code
    that reached the loop itself ended it); new jobs get a fresh loop."""


class Escaped(Exception):
    """Carries a KeyboardInterrupt / SystemExit / GeneratorExit that user
    code raised out of a task on the scheduler's loop: raised in a task, the
    original would stop the loop itself. ``original`` is what was raised."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(original)
        self.original = original


#: what user code may raise that an event loop does not survive in a task or callback
LOOP_KILLERS = (KeyboardInterrupt, SystemExit)


@dataclass(frozen=True)
class Progress:
    """Progress of a job: ``done`` of ``total`` steps (``total`` may be None)."""

    done: float = 0
    total: float | None = None
    message: str = ""
    rate: float | None = None  # steps per second
    eta: float | None = None  # seconds left

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))


@dataclass(frozen=True)
class JobDetail:
    """Typed facts a layer above the core attaches to a job (training,
    search, preprocessing, serving subclass it); immutable, carried by
    snapshots. ``curve`` names the metric a card plots; ``can_stop`` says
    whether "stop and keep" means something for this job; ``resumed_from``
    is the step (or items done) a resumed job picked up from. ``runs_on``
    names the executor the job's work runs on when its own code only
    coordinates it (a search's folds on Dask, awaited on the loop): cards
    and the history name that one. ``unit`` is what a step counts
    ("requests"), where "steps" would mislead."""

    curve: str | None = None
    can_stop: bool = False
    resumed_from: int | None = None
    runs_on: str | None = None
    unit: str | None = None

    def counts(self) -> "tuple[float, float | None, str] | None":
        """``(done, total, message)`` when this detail carries the job's
        progress, read at once with its other facts (a pipeline's bar, its
        "ok, failed" line and its stage table), else None: the job's own."""
        return None

    # How a detail shows itself: renderers ask these, never the detail's type.

    def card_fields(self, active: bool) -> dict[str, Any]:
        """What this detail adds to a card's JSON, among the keys the card
        draws (`CARD_FIELDS`); ``active``: the job is not final yet."""
        return {}

    def notes(self) -> tuple[str, ...]:
        """Short remarks a job's one-line status and its static card add
        ("stopped early, model kept")."""
        return ()

    def tables(self) -> tuple[str, ...]:
        """Plain-text tables a static card shows under its line (a
        pipeline's stages)."""
        return ()


#: the card's JSON keys a detail may fill (`JobDetail.card_fields`), and
#: what they are when it does not
CARD_FIELDS: Mapping[str, Any] = {
    "strategy": None, "stopped_early": False, "leaderboard": None, "leaderboard_note": None,
    "serving": None, "failed_items": [], "failed_count": 0, "stages": None,
}


@dataclass(frozen=True)
class JobSnapshot:
    """An immutable picture of a job at one moment; what renderers draw."""

    id: int
    name: str
    kind: str
    state: str
    priority: int
    executor: str
    attempts: int
    retries: int
    created: float
    started: float | None
    ended: float | None
    progress: Progress
    metrics: Mapping[str, tuple[tuple[float, float], ...]]
    output: str
    error: str | None
    traceback: str | None
    cancel_requested: bool
    cancel_reason: str | None
    stop_requested: bool
    parent: str | None
    children: tuple[str, ...]
    after: tuple[str, ...]
    sequence: int  # grows with every snapshot of this job
    taken: float  # wall clock when taken
    timed_out: bool = False
    abandoned: bool = False
    cancelled_caught: bool = False
    cancel_note: str | None = None
    retried_as: int | None = None  # the id of the job that re-runs this one
    displays: tuple[dict[str, Any], ...] = ()  # rich outputs: {"data": mime bundle, "metadata", "id"}
    attempt_errors: tuple[str, ...] = ()
    artifacts: tuple[str, ...] = ()
    dashboard_link: str | None = None
    detail: JobDetail | None = None

    @property
    def elapsed(self) -> float | None:
        if self.started is None:
            return None
        end = self.ended if self.ended is not None else self.taken
        return max(0.0, end - self.started)

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def curve(self) -> str | None:
        return self.detail.curve if self.detail is not None else None

    def latest_metrics(self) -> dict[str, float]:
        return {k: v[-1][1] for k, v in self.metrics.items() if v}
