"""ML workloads on the scheduler: training with live metrics and
Stop-and-keep, hyper-parameter search, preprocessing with back-pressure,
micro-batched serving."""

from ._preprocess import PreprocessResult, preprocess, retry_failed
from ._search import SearchResult, search
from ._train import STRATEGIES, strategy_for, train

__all__ = ["PreprocessResult", "preprocess", "retry_failed", "STRATEGIES", "SearchResult", "search", "strategy_for", "train"]
