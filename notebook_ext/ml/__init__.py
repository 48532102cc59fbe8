"""ML workloads on the scheduler: training with live metrics and
Stop-and-keep, hyper-parameter search, preprocessing with back-pressure,
micro-batched serving."""

from ._details import (
    FailedItem,
    LeaderboardRow,
    PreprocessDetail,
    SearchDetail,
    ServingDetail,
    ServingStats,
    TrainDetail,
)
from ._checkpoints import DEFAULT_EVERY as DEFAULT_CHECKPOINT_EVERY
from ._preprocess import PreprocessResult, preprocess, retry_failed
from ._resume import load_artifact, resume
from ._search import SearchResult, search
from ._specs import SPEC_VERSION, PreprocessSpec, ResumeSpec, TrainSpec, read_spec, spec_json
from ._serve import Predictor, learn_stream, serve
from ._train import STRATEGIES, strategy_for, train

__all__ = [
    "DEFAULT_CHECKPOINT_EVERY", "STRATEGIES", "FailedItem", "LeaderboardRow", "Predictor", "PreprocessDetail", "PreprocessResult",
    "SearchDetail", "SearchResult", "ServingDetail", "ServingStats", "TrainDetail", "learn_stream",
    "load_artifact", "preprocess", "resume", "retry_failed", "search", "serve", "strategy_for", "train",
    "SPEC_VERSION", "PreprocessSpec", "ResumeSpec", "TrainSpec", "read_spec", "spec_json",
]
