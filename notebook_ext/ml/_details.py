"""Typed facts the ML jobs attach to their `Job` (``job.detail``) for cards
and the history: what used to be an untyped ``info`` bag."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..core import FailedItem, ItemsDetail, JobDetail
from ..core.lowlevel import format_value, json_number

LEADERBOARD_ROWS = 15  # candidates a search card lists, best first


@dataclass(frozen=True)
class TrainDetail(JobDetail):
    """A training job: how progress is measured and how it ended."""

    strategy: str = "fit"
    estimator: str = ""
    stopped_early: bool = False

    def card_fields(self, active: bool) -> dict[str, Any]:
        return {"strategy": self.strategy, "stopped_early": self.stopped_early}

    def notes(self) -> tuple[str, ...]:
        return ("stopped early, model kept",) if self.stopped_early else ()


@dataclass(frozen=True)
class LeaderboardRow:
    params: dict[str, Any]
    mean_score: float
    std_score: float
    rank: int | None
    state: str


@dataclass(frozen=True)
class SearchDetail(JobDetail):
    """A search: its candidates and the leaderboard so far (best first)."""

    candidates: int = 0
    leaderboard: tuple[LeaderboardRow, ...] = ()
    fits_saved: int = 0  # prefix fits a candidate-by-candidate search would have made, not made
    rungs: tuple[str, ...] = ()  # successive halving: one line per rung begun ("rung 1 of 3: 64 candidates, 40 samples")

    def card_fields(self, active: bool) -> dict[str, Any]:
        rows = [{
            "rank": row.rank,
            "params": ", ".join(f"{k}={format_value(v)}" for k, v in row.params.items()),
            "mean": json_number(row.mean_score),
            "std": json_number(row.std_score),
            "state": row.state,
        } for row in self.leaderboard[:LEADERBOARD_ROWS]]
        return {"leaderboard": rows or None, "leaderboard_note": self.leaderboard_note(active)}

    def leaderboard_note(self, active: bool) -> str | None:
        """What the card's leaderboard leaves out ("showing the best 15 of
        16 candidates"), the rung a halving search is on and the fits its
        shared Pipeline prefixes saved; None when there is nothing to say."""
        extra = [*self.rungs[-1:], *([f"{self.fits_saved:,} fits saved by shared pipeline prefixes"]
                                     if self.fits_saved else [])]
        listed = self._listed(active)
        parts = ([listed] if listed else []) + extra
        return " · ".join(parts) or None

    def _listed(self, active: bool) -> str | None:
        if not self.leaderboard:
            return None
        scored, planned = len(self.leaderboard), max(self.candidates, len(self.leaderboard))
        shown = min(scored, LEADERBOARD_ROWS)
        if shown == planned:
            return None
        note = f"showing {'the best ' if shown < scored else ''}{shown} of {planned} candidates"
        if scored < planned:
            note += f" ({planned - scored} not scored yet)" if active else f" ({planned - scored} without a score)"
        return note


@dataclass(frozen=True)
class PreprocessDetail(ItemsDetail):
    """Preprocessing: its stages (one unless it is a pipeline) and the items that failed."""


__all__ = ["FailedItem", "LeaderboardRow", "PreprocessDetail", "SearchDetail", "ServingDetail", "ServingStats",
           "TrainDetail"]


@dataclass(frozen=True)
class ServingStats:
    requests: int = 0
    batches: int = 0
    mean_batch: float = 0.0
    requests_per_s: float = 0.0  # over the last rate_window_s seconds, as `RequestRate` measures it
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    rate_window_s: float = 5.0


@dataclass(frozen=True)
class ServingDetail(JobDetail):
    """A micro-batching predictor's live numbers; its steps are requests."""

    stats: ServingStats = field(default_factory=ServingStats)
    unit: str | None = "requests"

    def card_fields(self, active: bool) -> dict[str, Any]:
        return {"serving": asdict(self.stats) if self.stats.requests else None}
