"""ML workloads on the scheduler: training with live metrics and
Stop-and-keep, hyper-parameter search, preprocessing with back-pressure,
micro-batched serving."""

from ._preprocess import PreprocessResult, preprocess, retry_failed
from ._serve import Predictor, learn_stream, serve
from ._search import SearchResult, search
from ._train import STRATEGIES, strategy_for, train

__all__ = ["Predictor", "learn_stream", "serve", "PreprocessResult", "preprocess", "retry_failed", "STRATEGIES", "SearchResult", "search", "strategy_for", "train"]
