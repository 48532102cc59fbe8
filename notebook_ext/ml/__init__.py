"""ML workloads on the scheduler: training with live metrics and
Stop-and-keep, hyper-parameter search, preprocessing with back-pressure,
micro-batched serving."""

from ._train import STRATEGIES, strategy_for, train

__all__ = ["STRATEGIES", "strategy_for", "train"]
