"""Typed facts the ML jobs attach to their `Job` (``job.detail``) for cards
and the history: what used to be an untyped ``info`` bag."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core import FailedItem, ItemsDetail, JobDetail


@dataclass(frozen=True)
class TrainDetail(JobDetail):
    """A training job: how progress is measured and how it ended."""

    strategy: str = "fit"
    estimator: str = ""
    stopped_early: bool = False


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
